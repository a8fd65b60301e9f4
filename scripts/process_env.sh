# Sourced by ./run.sh, ./test.sh and scripts/bootstrap.sh's numba warm-up: how the processes they start run.
# numba's parallel kernels run on GNU OpenMP here, whose idle threads spin before they sleep: beside node
# processes, test workers or cmake on 2 cores, spinning was 30% of the G-LEARN and sweep tests' CPU (54 -> 38
# CPU-s, 31 -> 22 s wall for test_sweep, test_alternating, test_glearn*). PASSIVE: idle threads sleep at once.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# Python may cache compiled bytecode (.pyc) in the venv and the checkout even where PYTHONDONTWRITEBYTECODE is
# set: pip installs without it, so every process (each node a test or the demo starts) recompiled numba's,
# numpy's and rclpy's sources: 1.4 CPU-s to import the coordinator's module instead of 0.56 (docs/testing.md).
unset PYTHONDONTWRITEBYTECODE
