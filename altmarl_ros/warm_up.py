"""Compile the numba kernels a first `altmarl demo` needs (training, then the nodes), before it needs them.

numba compiles a kernel on its first call and caches it beside its source: on a fresh clone that
was about 45 CPU-s of one core at the start of the demo's training. scripts/bootstrap.sh runs this
module in the background while the ROS interfaces build (cmake, mostly one core each), so the
compiling overlaps set-up instead of following it. Run as `python -m altmarl_ros.warm_up`; no ROS
import (the interfaces are being built meanwhile). Nothing here checks results: the tests do.
"""
import contextlib
import io
import sys
from pathlib import Path

# The train command on the shipped ring with tiny sizes: every kernel of `train --scenario` (the simulator's
# sampler, G-LEARN, L-LEARN, the rollouts and the observer selection) at the types the real runs use.
TINY_TRAINING = ["--scenario", "warehouse_ring", "--k", "2", "--samples", "5", "--rounds", "1",
                 "--select-n", "10", "--select-rollouts", "2", "--quiet"]


def run_quietly(*argv) -> None:
    """`altmarl ARGV` with what it prints kept back; SystemExit with the end of it if it fails."""
    from altmarl_ros.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(list(argv))
    if code != 0:
        raise SystemExit(f"warm-up: `altmarl {' '.join(argv)}` exited {code}: {printed.getvalue()[-2000:]}")


def warm_up_training(out: Path) -> Path:
    """`altmarl train` with TINY_TRAINING, the policy written to `out` (which it returns)."""
    run_quietly("train", *TINY_TRAINING, "--out", str(out))
    return out


@contextlib.contextmanager
def scratch_directory():
    """A temporary working directory (the commands write runs/ under the current one), left before it goes:
    numba reads the working directory when it compiles."""
    import os
    import tempfile

    home = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="altmarl-warm-") as root:
        os.chdir(root)
        try:
            yield Path(root)
        finally:
            os.chdir(home)


def main() -> int:
    from altmarl_ros.nodes._kernels import warm_up_kernels

    with scratch_directory() as root:
        warm_up_training(root / "policy.npz")
    warm_up_kernels()
    return 0


if __name__ == "__main__":
    sys.exit(main())
