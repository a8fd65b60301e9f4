"""One schema check for the YAML files users write (scenario, fleet and sweep files).

A spec maps each allowed key to `(check, default)`: `check(error, field, value)`
returns the checked value (the range checks of core/_checks.py have this form) and
`default` is used when the key is absent, or REQUIRED. An unknown key or section is
an error naming it and the allowed ones, since YAML (and ROS) would otherwise
silently ignore a typo. `error` is any AltmarlError class: it is raised as
`error(field, detail)`, printed "<field>: <detail>"; `in_file` puts the file in front.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Mapping

REQUIRED = object()  # a spec default: the key must be given

Spec = Mapping[str, "tuple[Callable[[type, str, Any], Any], Any]"]


def mapping(value, error: type, where: str, allowed: Iterable[str] | None = None) -> dict:
    """`value` as a dict; with `allowed`, every key must be one of them."""
    if not isinstance(value, dict):
        what = f"a mapping of {', '.join(allowed)}" if allowed is not None else "a mapping"
        raise error(where or "(top level)", f"must be {what}, got {value!r}")
    if allowed is not None:
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                raise error(_join(where, key), f"unknown key (allowed: {', '.join(map(str, allowed))})")
    return value


def fields(value, spec: Spec, error: type, where: str = "") -> dict:
    """Every key of `spec`, checked, with defaults filled in; unknown or missing keys are errors."""
    value = mapping(value, error, where, spec)
    checked = {}
    for key, (check, default) in spec.items():
        if key in value:
            checked[key] = check(error, _join(where, key), value[key])
        elif default is REQUIRED:
            raise error(_join(where, key), "missing (required)")
        else:
            checked[key] = default
    return checked


def given(error, field, value):
    """The check of a key taken as it is (checked later, or by its user)."""
    return value


@contextmanager
def in_file(label: str, error: type):
    """Field errors raised inside name the file: "<label>: <field>: <detail>"."""
    try:
        yield
    except error as err:
        if err.field is None:
            raise
        raise error(f"{label}: {err.field}", err.detail) from None


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)
