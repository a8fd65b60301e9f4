"""Named registries (baselines, observers): name -> entry, in registration order.

Its own module so that both core.baselines (which needs the learners) and
core.observer (which core.policy needs) can use it without an import cycle.
"""
from __future__ import annotations

from altmarl_ros.core.safe_files import clip_text
from altmarl_ros.errors import LearnError


class RegistryError(LearnError):
    """An unknown name was asked of a registry; the message lists the known ones."""


class Registry(dict):
    """name -> entry, in registration order (every result table follows that order)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str, entry):
        if name in self:
            raise RegistryError("name", f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def check(self, names, error: type[LearnError] = RegistryError, field: str = "names") -> tuple:
        """`names` as a tuple; an unknown one raises `error` listing the known ones."""
        unknown = [name for name in names if not isinstance(name, str) or name not in self]
        if unknown:
            raise error(field, f"unknown {self.kind}(s) {clip_text(repr(unknown))}; choose from {list(self)}")
        return tuple(names)
