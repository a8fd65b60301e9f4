"""A process-wide ceiling set by a flag, else an environment variable, else a default (core.budget, core.work)."""
from __future__ import annotations

import contextlib
import os
from typing import Callable


class ProcessLimit:
    """The value in force: set() by a command's flag, else `env_var` parsed, else default(); `limited` for tests."""

    def __init__(self, env_var: str, parse: Callable[[str, str], float], default: Callable[[], float], kind=float):
        self.env_var, self._parse, self._default, self._kind = env_var, parse, default, kind
        self.flag_value = None  # set by the flag; None: the environment variable or the default

    def get(self):
        if self.flag_value is not None:
            return self.flag_value
        text = os.environ.get(self.env_var)
        return self._default() if not text else self._parse(text, self.env_var)

    def set(self, value=None) -> None:
        """Set the ceiling for this process (None: back to the environment variable or the default)."""
        self.flag_value = None if value is None else self._kind(value)

    @contextlib.contextmanager
    def limited(self, value):
        """The ceiling is `value` inside the block."""
        saved, self.flag_value = self.flag_value, self._kind(value)
        try:
            yield
        finally:
            self.flag_value = saved

    def source(self, flag: str) -> str:
        """Where the value in force comes from, for error messages."""
        return flag if self.flag_value is not None else self.env_var if os.environ.get(self.env_var) else "default"
