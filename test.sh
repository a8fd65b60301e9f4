#!/usr/bin/env bash
# The test suite: set up (first time only), then pytest on ALTMARL_TEST_WORKERS pytest-xdist workers
# (default 4: most tests wait on ROS graphs in real time, so 4 share 2 cores well). Extra arguments
# go to pytest and win (`./test.sh -n 0` runs in one process).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The suite exercises the FA learners (JAX), lints (ruff) and runs `sweep --cluster` (dask.distributed).
ALTMARL_FA=1 ALTMARL_TEST=1 ALTMARL_CLUSTER=1 bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
. "$ROOT/scripts/process_env.sh"  # OMP_WAIT_POLICY=PASSIVE, bytecode cached
# numba compiles a kernel on first use and caches it next to its source. On an empty cache every
# worker would compile the same kernels at once; compile them once here instead, again only after
# a source change (ALTMARL_WARM_KERNELS=0 skips this).
KEY="$(cat altmarl_ros/*.py altmarl_ros/*/*.py sim/*.py test/_warm_kernels.py test/_tiny_model.py requirements.txt \
       | sha256sum | cut -c1-16)"
STAMP="$ROOT/build/numba-warm.stamp"
if [ "${ALTMARL_WARM_KERNELS:-1}" != 0 ] && [ "$(cat "$STAMP" 2>/dev/null)" != "$KEY" ]; then
  printf '\033[1m[setup]\033[0m compiling the numba kernels once (about 1.5 CPU-min on an empty cache)\n' >&2
  "$ROOT/.venv/bin/python" test/_warm_kernels.py
  mkdir -p "$ROOT/build" && echo "$KEY" > "$STAMP"
fi
# JAX's compiled steps (the FA learners' tests) are kept beside numba's: the second run skips compiling.
export ALTMARL_JAX_CACHE="${ALTMARL_JAX_CACHE-$ROOT/build/jax-cache}"
exec "$ROOT/.venv/bin/python" -m pytest -n "${ALTMARL_TEST_WORKERS:-4}" --dist loadgroup "$@"
