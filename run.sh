#!/usr/bin/env bash
# The main job: set up (first time only), train on the default scenario if no
# policy exists yet, run the simulated fleet under ROS 2 with the learned
# policy, and print the welfare it achieved. Extra arguments go to `altmarl demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
. "$ROOT/scripts/process_env.sh"  # OMP_WAIT_POLICY=PASSIVE, bytecode cached
exec "$ROOT/.venv/bin/altmarl" demo "$@"
