#!/usr/bin/env bash
# The test suite: set up (first time only), then pytest on ALTMARL_TEST_WORKERS pytest-xdist workers
# (default 4: most tests wait on ROS graphs in real time, so 4 share 2 cores well). Extra arguments
# go to pytest and win (`./test.sh -n 0` runs in one process).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -n "${ALTMARL_TEST_WORKERS:-4}" --dist loadgroup "$@"
