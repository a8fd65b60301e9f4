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

import re
import zipfile
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
    """yaml.safe_load of `text`; errors start with `source`."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        written, expanded = _node_counts(node)
        if expanded > written + MAX_ALIAS_NODES:
            raise error(f"{source}: its aliases expand {written} YAML nodes to {expanded:.3g} "
                                  f"(at most {MAX_ALIAS_NODES} more are allowed); write the values out "
                                  f"instead of nesting anchors")
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        where = " ".join(re.sub(r'\s*in "<unicode string>"', "", str(err)).split())
        raise error(f"{source}: not valid YAML ({where})") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


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


def npz_members(path, what: str = ".npz file", error=FileFormatError) -> dict:
    """{name: (shape, dtype)} of every array in an .npz, read from the headers only.

    Refuses members that are not plain .npy arrays of numbers (or one short string),
    and a total declared size over the memory budget, before any array is loaded.
    """
    path = Path(path)
    members = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with archive.open(info) as stream:
                    version = np.lib.format.read_magic(stream)
                    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = reader(stream)
                members[name] = (tuple(int(d) for d in shape), dtype)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise error(f"{path}: not a readable {what} ({' '.join(str(exc).split())}); it is corrupt or "
                    f"truncated: write it again") from None
    for name, (shape, dtype) in members.items():
        if dtype.hasobject:
            raise error(f"{path}: {name} holds Python objects (a pickle); they are never loaded: "
                        f"save plain numeric arrays")
        if dtype.kind == "U":
            if shape != () or dtype.itemsize > MAX_TEXT_BYTES:
                raise error(f"{path}: {name} is a string array of shape {shape} ({dtype}); only one "
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
