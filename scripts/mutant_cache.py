"""Which of a warm numba cache's entries a module's mutants make stale, and their removal (scripts/mutation.py).

    python scripts/mutant_cache.py CACHE_DIR MUTATED_FILE   # delete the stale entries from CACHE_DIR

numba checks a cached kernel against the hash of its own source file only; a kernel that calls an
njit function of another file keeps that function's old code compiled in. So when one file is
mutated, the entries that can be stale are those of that file and of every file that imports it,
directly or through others (found here from the sources' import statements, by ast). The rest of
a cache warmed on the unmutated sources is still exact for every mutant of that file, so it is
pruned once per module and each mutant starts from a copy of it (scripts/mutant_tests.sh).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

# Source folders -> the importable name of their top package ("" = the folder is on sys.path: test/).
PACKAGES = {"altmarl_ros": "altmarl_ros", "sim": "altmarl_sim", "test": ""}


def module_files(root: Path) -> dict:
    """{module name: file} for every Python file under the source folders of root."""
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(([package] if package else []) + parts)
            if name:
                modules[name] = path
    return modules


def imported(path: Path, name: str, modules: dict) -> set:
    """The modules (of `modules`) that the file of module `name` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1] if package else []
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` names a module; `from mod import f` names something in mod
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    return found


def stale_sources(root: Path, mutated: Path) -> set:
    """The mutated file and every source file importing it, transitively."""
    modules = module_files(root)
    users = {}
    for name, path in modules.items():
        for target in imported(path, name, modules):
            users.setdefault(modules[target], set()).add(path)
    stale, todo = set(), [mutated.resolve()]
    users = {path.resolve(): {user.resolve() for user in found} for path, found in users.items()}
    while todo:
        path = todo.pop()
        if path not in stale:
            stale.add(path)
            todo.extend(users.get(path, ()))
    return stale


def stale_entries(cache_dir: Path, sources) -> list:
    """The cache files (index .nbi and data .nbc) of the kernels defined in `sources`."""
    from numba.core.caching import _CacheLocator  # where numba puts a file's entries under NUMBA_CACHE_DIR

    entries = []
    for source in sources:
        folder = cache_dir / _CacheLocator.get_suitable_cache_subpath(str(source))
        if folder.is_dir():
            entries += sorted(entry for entry in folder.iterdir() if entry.name.startswith(source.stem + "."))
    return entries


def main(argv) -> int:
    cache_dir, mutated = Path(argv[0]), Path(argv[1])
    root = Path(__file__).resolve().parents[1]
    for entry in stale_entries(cache_dir, stale_sources(root, mutated)):
        entry.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
