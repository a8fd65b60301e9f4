#!/usr/bin/env bash
# One mutant's test run (scripts/mutation.py): pytest -x on the given tests with a numba cache of
# its own, so every kernel, and every njit function it calls from another file, is compiled from
# the source as it is now (numba's cache checks only the stamp of a kernel's own file).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
NUMBA_CACHE_DIR="$cache" "$ROOT/.venv/bin/python" -m pytest -n 0 -x -q -p no:cacheprovider "$@"
