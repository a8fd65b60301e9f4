#!/usr/bin/env bash
# The main job: set up (first time only), train on the default scenario if no
# policy exists yet, run the simulated fleet under ROS 2 with the learned
# policy, and print the welfare it achieved. Extra arguments go to `altmarl demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
# The demo runs one process per node beside its offline evaluation: idle OpenMP threads (numba's parallel
# kernels) sleep at once instead of spinning on cores the other processes need.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# Python may cache compiled bytecode (.pyc) in the venv and the checkout even where PYTHONDONTWRITEBYTECODE is set:
# pip installs without it, so every process (each node a test or the demo starts) recompiled numba's, numpy's and
# rclpy's sources: 1.4 CPU-s to import the coordinator's module instead of 0.56 (docs/testing.md).
unset PYTHONDONTWRITEBYTECODE
exec "$ROOT/.venv/bin/altmarl" demo "$@"
