"""G-LEARN's fill and sweep in isolation, the best of a few repeats: for comparing two versions of the kernels.

    .venv/bin/python bench/bench_glearn_sweep.py [--k 40] [--layout ranks|codes] [--model ring8|PATH]
        [--sweeps 5] [--repeats 5] [--m 30]

One surrogate (uniform locals, seed 0) per repeat: `fill` is its construction (alias tables,
sampled costs, the stored draws), `sweep` the seconds of one Jacobi sweep that gathers (from
V = 1, averaged over --sweeps); wall seconds, and `_cpu` the process's CPU seconds (all threads),
which waiting for a busy CPU does not inflate. Each figure is the minimum over --repeats, the
least disturbed by other jobs on a shared machine. `codes` stores every row as 16-bit codes with room for the
escaped ranks (as the k = 100 bench does under --max-memory 2048). To time another version of
the code in the same session, run this script with PYTHONPATH=<that checkout> (its numba cache
is its own, beside its sources) and interleave the runs. Prints one JSON line.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_glearn import _load  # noqa: E402


def _table_bytes(game, k, m, layout):
    from altmarl_ros.core.counts import n_count_vectors

    n_f = n_count_vectors(k, game.n_sl)
    if layout == "ranks":
        return n_f * game.n_sg * m * 4
    return n_f * (game.n_sg * m * 2 + 8) + n_f * game.n_sg * m  # codes + room for escapes up to 25%


def measure(k, model, layout, m, sweeps, repeats):
    import altmarl_ros
    from altmarl_ros.core.glearn import _Surrogate

    game = _load(model)
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    table_bytes = _table_bytes(game, k, m, layout)
    warm = _Surrogate(game, uniform, 2, m, 0, table_bytes)  # load the kernels
    warm.iterate(np.ones((warm.n_f, game.n_sg)), 0.0, 2)
    fills, sweep_times, fill_cpu, sweep_cpu = [], [], [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        surrogate = _Surrogate(game, uniform, k, m, 0, table_bytes)
        fills.append(time.perf_counter() - started)
        fill_cpu.append(time.process_time() - cpu)
        V = np.ones((surrogate.n_f, game.n_sg))
        started, cpu = time.perf_counter(), time.process_time()
        surrogate.iterate(V, 0.0, sweeps)
        sweep_times.append((time.perf_counter() - started) / sweeps)
        sweep_cpu.append((time.process_time() - cpu) / sweeps)
    plan = surrogate.plan
    return dict(k=k, model=Path(model).stem, layout=plan.layout, stored=plan.cached_fraction,
                escapes_stored=plan.escapes_stored, fill=min(fills), sweep=min(sweep_times),
                fill_cpu=min(fill_cpu), sweep_cpu=min(sweep_cpu),
                fills=[round(t, 3) for t in fills], sweeps=[round(t, 4) for t in sweep_times],
                code=str(Path(altmarl_ros.__file__).parent))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--layout", choices=("ranks", "codes"), default="ranks")
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "config" / "models"
                                               / "warehouse.yaml"))
    parser.add_argument("--m", type=int, default=30)
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.k, args.model, args.layout, args.m, args.sweeps, args.repeats)))


if __name__ == "__main__":
    main()
