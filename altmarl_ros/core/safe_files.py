"""Reading user files without trusting them: YAML and .npz checked before they are built.

A 400-byte YAML file of nested aliases ("billion laughs") expands into billions
of nodes, and a few MB of compressed .npz can declare a multi-GB array. Both
are refused here before anything input-sized is built: YAML is composed into
its node graph first and the size it would expand to is counted (aliases
shared, so counting is linear in the file); each .npz member's header (shape
and dtype) is read from the zip before any array is loaded and checked
against the memory budget. Non-UTF-8 text and pickles (never loaded) get a
named one-line error, like every other problem.
"""
from __future__ import annotations

import contextlib
import re
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from altmarl_ros.core import budget
from altmarl_ros.errors import AltmarlError

# Nodes that aliases may add beyond those written in the file: generous for a
# hand-written anchor or merge key, far below what an alias bomb expands to.
MAX_ALIAS_NODES = 100_000
# Python objects built per byte of YAML, a bound used for the budget before parsing.
YAML_BYTES_PER_BYTE = 200
NUMERIC_KINDS = "biuf"  # bool, int, unsigned, float: what model and policy arrays may hold
MAX_TEXT_BYTES = 1 << 20  # a string member (a name, JSON metadata)


class FileFormatError(AltmarlError):
    """A file is not text/YAML/.npz of the form expected; the message names the file."""


def read_text(path, what: str = "file", error=FileFormatError) -> str:
    """The file as UTF-8 text, or a one-line error naming the first undecodable byte."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: the {what} is not UTF-8 text (byte {err.start} is "
                              f"{data[err.start:err.start + 1]!r}); save it as UTF-8") from None


def load_yaml(path, what: str = "YAML file", error=FileFormatError):
    """yaml.safe_load of a file, refusing non-UTF-8 text, alias bombs and runaway nesting;
    problems raise `error` (a class taking one message)."""
    path = Path(path)
    text = read_text(path, what, error)
    budget.require(f"{path}: parsing this {what} of {budget.format_bytes(len(text))}",
                   len(text) * YAML_BYTES_PER_BYTE, "use a smaller file (or an .npz for big arrays)")
    return parse_yaml(text, f"{path}", error)


def parse_yaml(text: str, source: str, error=FileFormatError):
    """yaml.safe_load of `text` through the one YAML guard (_GuardedLoader); errors start with `source`."""
    import yaml

    if "\0" in text:
        raise error(f"{source}: holds a NUL byte at character {text.index(chr(0))}; save it as plain text")
    loader = None
    try:
        loader = _guarded_loader()(text)
        node = loader.get_single_node()
        if node is None:
            return None
        written, expanded = _node_counts(node)
        if expanded > written + MAX_ALIAS_NODES:
            raise error(f"{source}: its aliases expand {written} YAML nodes to {expanded:.3g} "
                        f"(at most {MAX_ALIAS_NODES} more are allowed); write the values out "
                        f"instead of nesting anchors")
        return loader.construct_document(node)
    except AltmarlError:
        raise
    except _Refused as err:
        raise error(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        where = " ".join(re.sub(r'\s*in "<unicode string>"', "", str(err)).split())
        raise error(f"{source}: not valid YAML ({clip_text(where)})") from None
    except (ValueError, KeyError, TypeError, OverflowError) as err:  # a value that does not fit its tag
        raise error(f"{source}: not valid YAML (a value does not fit its tag: {clip_text(str(err))})") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to read; flatten it") from None
    finally:
        if loader is not None:
            loader.dispose()


# YAML tags a user file may use: text, numbers, booleans, null, lists and mappings. Dates
# (`2024-01-01` is a date in YAML 1.1) stay text, so a date where a number belongs is named
# by the field's own check; binary, sets, ordered maps and Python tags are refused.
ALLOWED_TAGS = tuple(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map",
                                                                "merge"))
MAX_YAML_DEPTH = 64  # nesting of lists and mappings; a 4-D array needs 5
MAX_INT_DIGITS = 30  # longer integer literals are refused before Python converts them
INT64_RANGE = (-(2 ** 63), 2 ** 63 - 1)
_LOADER = None


def _guarded_loader():
    """The SafeLoader subclass every user YAML file is read with (built once, on first use)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class GuardedLoader(yaml.SafeLoader):
        yaml_implicit_resolvers = {
            first: [(tag, regexp) for tag, regexp in resolvers if tag in ALLOWED_TAGS]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        yaml_constructors = {tag: constructor for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
                             if tag in ALLOWED_TAGS}

        def compose_node(self, parent, index):
            self._depth = getattr(self, "_depth", 0) + 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    raise _Refused(self.peek_event().start_mark,
                                   f"nested more than {MAX_YAML_DEPTH} levels deep; flatten it")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_undefined(self, node):
            raise _Refused(node.start_mark, f"the tag {clip_text(node.tag)} is not allowed (only text, numbers, "
                                            f"booleans, null, lists and mappings)")

        def construct_yaml_int(self, node):
            digits = re.sub(r"[^0-9a-fA-F]", "", str(node.value))
            if len(digits) > MAX_INT_DIGITS:
                raise _Refused(node.start_mark, f"an integer of {len(digits)} digits; integers must fit in 64 bits")
            value = super().construct_yaml_int(node)
            if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
                raise _Refused(node.start_mark, f"the integer {value} does not fit in 64 bits")
            return value

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    if not isinstance(key, str):
                        raise _Refused(key_node.start_mark, f"the key {clip_text(repr(key))} is not text (YAML "
                                                            f"reads yes/no/on/off, numbers and null as such); quote it")
                    if key in seen:
                        raise _Refused(key_node.start_mark, f"the key {clip_text(key)!r} is given again (first at "
                                                            f"line {seen[key].line + 1}); YAML would silently keep "
                                                            f"the last: keep one")
                    seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    GuardedLoader.add_constructor("tag:yaml.org,2002:int", GuardedLoader.construct_yaml_int)
    GuardedLoader.add_constructor(None, GuardedLoader.construct_undefined)
    _LOADER = GuardedLoader
    return _LOADER


class _Refused(Exception):
    """A YAML file uses something the guard refuses; the message starts with the line and column."""

    def __init__(self, mark, problem: str):
        super().__init__(f"line {mark.line + 1}, column {mark.column + 1}: {problem}")


def clip_text(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters: error lines quote user input, which may be huge."""
    return text if len(text) <= limit else text[:limit] + "..."


def _node_counts(root) -> tuple[int, float]:
    """(distinct nodes, nodes after expanding every alias) of a composed YAML graph.

    Iterative (a deep file must not exhaust the stack); an alias cycle counts once.
    """
    import yaml

    expanded: dict[int, float] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in expanded and not children_done:
            continue
        children = _children(node, yaml)
        if children_done:
            expanded[key] = 1.0 + sum(expanded.get(id(child), 1.0) for child in children)
            continue
        expanded[key] = 1.0  # provisional: a cycle back to this node counts as one
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in expanded)
    return len(expanded), expanded[id(root)]


def _children(node, yaml) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


# What reading a hostile .npz can raise: a bad zip (BadZipFile, LargeZipFile), an encrypted
# member (RuntimeError), an unknown compression method (NotImplementedError), corrupt deflate
# data (zlib.error), a bad .npy header (ValueError, SyntaxError, tokenize.TokenError), short data
# (EOFError, OSError).
_NPZ_FAILURES = (OSError, ValueError, EOFError, KeyError, TypeError, OverflowError, RuntimeError,
                 NotImplementedError, SyntaxError, RecursionError, MemoryError, zlib.error, zipfile.BadZipFile,
                 zipfile.LargeZipFile, tokenize.TokenError)
MAX_NPZ_MEMBERS = 64


@contextlib.contextmanager
def _npz_guard(path: Path, what: str, error):
    """Any failure of the zip or .npy layer inside the block becomes one named `error`."""
    try:
        yield
    except AltmarlError:
        raise
    except _NPZ_FAILURES as exc:
        detail = clip_text(" ".join(f"{type(exc).__name__}: {exc}".split()))
        raise error(f"{path}: not a readable {what} ({detail}); it is corrupt, truncated, encrypted or "
                    f"compressed in a way numpy does not write: write it again") from None


def npz_members(path, what: str = ".npz file", error=FileFormatError) -> dict:
    """{name: (shape, dtype)} of every array in an .npz, read from the headers only.

    Refuses members that are not plain .npy arrays of numbers (or one short string),
    and a total declared size over the memory budget, before any array is loaded.
    """
    path = Path(path)
    members = {}
    with _npz_guard(path, what, error), zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise error(f"{path}: holds {len(infos)} members (at most {MAX_NPZ_MEMBERS}); it is not a {what}")
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, _, dtype = reader(stream)
            if any(int(d) < 0 for d in shape):
                raise error(f"{path}: {clip_text(name)} declares the shape {clip_text(str(shape))}; sizes are >= 0")
            members[name] = (tuple(int(d) for d in shape), dtype)
    for name, (shape, dtype) in members.items():
        if dtype.hasobject:
            raise error(f"{path}: {name} holds Python objects (a pickle); they are never loaded: "
                        f"save plain numeric arrays")
        if dtype.kind == "U":
            if shape != () or dtype.itemsize > MAX_TEXT_BYTES:
                raise error(f"{path}: {name} is a string array of shape {clip_text(str(shape))} ({dtype}); only one "
                            f"string of at most {budget.format_bytes(MAX_TEXT_BYTES)} is allowed")
        elif dtype.kind not in NUMERIC_KINDS:
            kind = "complex numbers" if dtype.kind == "c" else f"dtype {dtype}"
            raise error(f"{path}: {name} holds {kind}; save real numbers (float64 or integers)")
    total = sum(budget.array_bytes(shape, dtype.itemsize) for shape, dtype in members.values())
    # Loading converts to float64, which can double what the file declares (float32 -> float64).
    declared = sum(budget.array_bytes(shape, max(8, dtype.itemsize)) for shape, dtype in members.values())
    budget.require(f"{path}: the arrays this file declares ({budget.format_bytes(total)} stored)",
                   declared, "check the shapes in the file")
    return members


def load_npz(path, what: str = ".npz file", error=FileFormatError) -> dict:
    """{name: array} of an .npz, after npz_members' checks; the one reader of user .npz files."""
    path = Path(path)
    members = npz_members(path, what, error)
    with _npz_guard(path, what, error), np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    if sorted(arrays) != sorted(members):
        raise error(f"{path}: its members changed while it was read; it is being written: try again")
    return arrays


MAX_JSON_DEPTH = 32  # policy metadata and sweep results nest 4-5 levels


def parse_json(text: str, source: str, error=FileFormatError, max_depth: int = MAX_JSON_DEPTH):
    """json.loads of `text` with nesting bounded by `max_depth`; every failure is one named `error`."""
    import json

    if len(text) > MAX_TEXT_BYTES * 64:
        raise error(f"{source}: {budget.format_bytes(len(text))} of JSON is more than this file ever holds")
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
        depth_exceeded = True
    except ValueError as err:  # JSONDecodeError, and integers beyond Python's digit limit
        raise error(f"{source}: not valid JSON ({clip_text(str(err))})") from None
    else:
        depth_exceeded = _depth_exceeds(value, max_depth)
    if depth_exceeded:
        raise error(f"{source}: JSON nested more than {max_depth} levels deep; it was not written by altmarl")
    return value


def _depth_exceeds(value, max_depth: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False
