"""Wall time of a sweep grid run serially against `--cluster local:N`, and whether their cells agree.

    .venv/bin/python bench/bench_cluster_sweep.py [--grid quick] [--workers 2] [--serial-threads 1] [--out DIR]

Runs `altmarl sweep --grid G` twice from empty result directories, as a user would: serially, in
one process with --serial-threads numba threads, and with `--cluster local:N`, N worker processes
of one numba thread each (on 2 cores). The default is one serial thread: on the shared 2-core
machine two made the tiny grid slower (58 s wall, 28 CPU-s against 18 s, 9 CPU-s with one; the
kernels' threads wait for each other under load). The simulator scenarios' estimated models are
cached first, so neither run pays for that. Prints each run's wall time (the cluster's includes
starting its workers), the CPU seconds its units report, the load average, and whether every cell
(sweep.result_cells: all but the measured seconds and MB) of the two results.json is equal, with
the count of welfare cells compared.
docs/results.md ("On a cluster") quotes it for the quick grid; the suite checks the tiny grid.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from altmarl_ros.experiments.sweep import _load_game, load_grid, result_cells

REPO = Path(__file__).resolve().parents[1]


def _run(grid, out, env, *flags):
    """(wall seconds, results.json) of one CLI sweep in a fresh process."""
    command = [sys.executable, "-m", "altmarl_ros.cli", "sweep", "--grid", grid, "--out", str(out), "--quiet", *flags]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, json.loads((out / "results.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--serial-threads", type=int, default=1, help="NUMBA_NUM_THREADS of the serial run")
    parser.add_argument("--out", help="keep both runs' results here (default: a temporary directory)")
    args = parser.parse_args()
    grid = load_grid(REPO / "config" / "sweep.yaml", args.grid)
    for spec in grid.models:
        _load_game(spec)  # a scenario's model estimate, cached under runs/ for both runs
    cores = len(os.sched_getaffinity(0))
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_NUM_THREADS"}
    with tempfile.TemporaryDirectory(prefix="altmarl-bench-cluster-") as scratch:
        root = Path(args.out or scratch)
        print(f"{cores} cores, load average {os.getloadavg()[1]:.1f} (5 min)", flush=True)
        serial_wall, serial = _run(args.grid, root / "serial", dict(env, NUMBA_NUM_THREADS=str(args.serial_threads)))
        print(f"serial ({args.serial_threads} numba threads): {serial_wall:.1f} s wall, "
              f"{serial['cpu_seconds']:.1f} CPU-s in units; load average {os.getloadavg()[1]:.1f}", flush=True)
        cluster_wall, cluster = _run(args.grid, root / "cluster", env, "--cluster", f"local:{args.workers}")
        print(f"local:{args.workers} ({max(1, cores // args.workers)} numba thread per worker): {cluster_wall:.1f} s "
              f"wall, {cluster['cpu_seconds']:.1f} CPU-s in units; {serial_wall / cluster_wall:.2f}x the serial speed; "
              f"load average {os.getloadavg()[1]:.1f}")
    same = result_cells(serial["rows"]) == result_cells(cluster["rows"])
    welfare = sum(row["welfare"] is not None for row in serial["rows"])
    print(f"grid {args.grid}: {len(serial['units'])} units, {len(serial['rows'])} rows, {welfare} welfare cells; "
          f"cells identical: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
