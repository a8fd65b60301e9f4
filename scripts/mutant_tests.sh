#!/usr/bin/env bash
# One mutant's test run (scripts/mutation.py): pytest -x on the given tests, on this checkout's sources,
# with a numba cache of its own that starts as a copy of TEMPLATE: a cache warmed on the unmutated
# sources less every entry the mutated file can make stale (scripts/mutant_cache.py), so whatever
# the mutant can change is compiled from the mutated source and nothing one mutant compiles
# reaches the next. Usage: mutant_tests.sh TEMPLATE PYTEST_ARGS...
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
template="$1"; shift
if [[ "${MUTANT_WARM_IN_PLACE:-0}" == 1 ]]; then  # the unmutated run (scripts/mutation.py): fill TEMPLATE itself
    cache="$template"
else
    cache="$(mktemp -d)"
    trap 'rm -rf "$cache"' EXIT
    cp -a "$template/." "$cache/"
fi
# This checkout's altmarl_ros and sim (as altmarl_sim), ahead of whatever checkout is installed editable.
links="$ROOT/build/mutation/pythonpath"
mkdir -p "$links" && ln -sfn "$ROOT/sim" "$links/altmarl_sim"
# No .pyc written from a mutant: Python validates one by the source's size and mtime in whole seconds, which two
# same-size mutants can share.
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$ROOT:$links${PYTHONPATH:+:$PYTHONPATH}" NUMBA_CACHE_DIR="$cache" \
    "${ALTMARL_VENV:-$ROOT/.venv}/bin/python" -m pytest -n 0 -x -q -p no:cacheprovider "$@"
