#!/usr/bin/env bash
# Branch coverage (docs/testing.md, Branch coverage): opt-in, not part of ./test.sh or CI.
#
#   bash scripts/coverage.sh            suite, then kernels, then report (the figures in docs/testing.md)
#   bash scripts/coverage.sh suite      1. ./test.sh under pytest-cov: numba's compiled kernels are not traced,
#                                          everything else is, in the test workers and in every process they
#                                          start (.coveragerc: patch = subprocess)
#   bash scripts/coverage.sh kernels    2. the tests marked `kernels` (tiny sizes) with NUMBA_DISABLE_JIT=1:
#                                          the kernels run as Python, so their branches are traced; appends
#   bash scripts/coverage.sh report     3. combine, then scripts/coverage_report.py (exit 1 below the targets)
#
# Arguments after the stage go to pytest (`scripts/coverage.sh suite test/test_counts.py`). The data stays
# in build/coverage/ between stages, so a loaded machine can run them one at a time. Set-up: ./test.sh's
# bootstrap, plus requirements-coverage.txt (ALTMARL_COVERAGE=1, ~1 MB into .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAGE="${1:-all}"
[ $# -gt 0 ] && shift
case "$STAGE" in all|suite|kernels|report) ;; *) echo "usage: $0 [all|suite|kernels|report] [pytest args]" >&2; exit 2;; esac
export ALTMARL_COVERAGE=1  # test.sh's bootstrap then installs requirements-coverage.txt
export COVERAGE_FILE="$ROOT/build/coverage/data"  # absolute: node processes run in their own directories
export NUMBA_NUM_THREADS="${NUMBA_NUM_THREADS:-1}"
COV=(--cov --cov-config="$ROOT/.coveragerc" --cov-report= -p no:cacheprovider)
PY="$ROOT/.venv/bin/python"
FAILED=0  # a failing test still leaves its coverage: report it, then exit 1
if [ "$STAGE" = kernels ] || [ "$STAGE" = report ]; then  # (the suite's set-up is ./test.sh's)
  ALTMARL_FA=1 ALTMARL_TEST=1 ALTMARL_CLUSTER=1 bash "$ROOT/scripts/bootstrap.sh"
fi

if [ "$STAGE" = all ] || [ "$STAGE" = suite ]; then
  rm -rf build/coverage && mkdir -p build/coverage
  "$ROOT/test.sh" "${COV[@]}" "$@" || FAILED=1
fi
if [ "$STAGE" = all ] || [ "$STAGE" = kernels ]; then
  mkdir -p build/coverage
  # xoshiro and splitmix wrap around uint64 on purpose; as numpy scalars that warns.
  NUMBA_DISABLE_JIT=1 "$PY" -m pytest -n "${ALTMARL_TEST_WORKERS:-2}" -m kernels --cov-append "${COV[@]}" \
    -W "ignore:overflow encountered:RuntimeWarning" "$@" || FAILED=1
fi
if [ "$STAGE" = all ] || [ "$STAGE" = report ]; then
  if compgen -G "build/coverage/data.*" >/dev/null; then  # processes whose data pytest-cov did not combine
    "$PY" -m coverage combine --append --rcfile=.coveragerc -q
  fi
  "$PY" -m coverage json --rcfile=.coveragerc -q -o build/coverage/coverage.json
  "$PY" -m coverage html --rcfile=.coveragerc -q -d build/coverage/html
  "$PY" "$ROOT/scripts/coverage_report.py" build/coverage/coverage.json || FAILED=1
fi
exit "$FAILED"
