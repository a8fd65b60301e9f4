"""G-LEARN cost vs k on the paper-size warehouse model: time to tolerance, sweeps, backups/s, memory.

    .venv/bin/python bench/bench_glearn.py [--k 10 20 30 40 50] [--k100] [--m 30] [--tol 1e-4]
                                           [--table-mb 1024] [--model config/models/warehouse.yaml]

One G-LEARN call per k against uniform locals (ALTERNATING-MARL's first round),
cold start, in a fresh subprocess so that peak RSS belongs to that k alone
(numba kernels come from the on-disk cache; a k = 2 call loads them first).
Columns: setup = alias tables + cached draws; iterate = the sweeps; a backup
is one (s_g, F) state (m gathers, all actions); CPU = user+system seconds of
all threads; arrays = table + 2 V + Q + pi_g; RSS = the process's peak.
--k100 adds k = 100 (4.6 M count vectors; --table-mb bounds the draw cache,
draws beyond it are recomputed every sweep).
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def one(k, model, m, tol, table_mb):
    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.glearn import g_learn
    from altmarl_ros.core.model import load_model
    from altmarl_ros.experiments.glearn_probe import peak_rss_mb

    game = load_model(model)
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    g_learn(game, uniform, 2, m=m)  # load the compiled kernels
    rss_before = peak_rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    result = g_learn(game, uniform, k, m=m, tol=tol, table_bytes=table_mb << 20)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    n_f = n_count_vectors(k, game.n_sl)
    iterate = result.seconds - result.setup_seconds
    arrays = (result.table_fraction * n_f * game.n_sg * m * 4 + 2 * n_f * game.n_sg * 8
              + result.Q.nbytes + result.pi_g.nbytes)
    return dict(k=k, n_f=n_f, setup=result.setup_seconds, iterate=iterate, total=result.seconds,
                sweeps=result.sweeps, residual=result.residual, converged=result.converged,
                backups_per_s=result.sweeps * game.n_sg * n_f / iterate,
                cpu=usage.ru_utime + usage.ru_stime - cpu_before, cached=result.table_fraction,
                arrays_mb=arrays / 2**20, rss_mb=peak_rss_mb(), rss_before_mb=rss_before,
                value=result.value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 20, 30, 40, 50])
    parser.add_argument("--k100", action="store_true", help="also run k = 100")
    parser.add_argument("--m", type=int, default=30)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--table-mb", type=int, default=1024)
    parser.add_argument("--model", default=str(ROOT / "config" / "models" / "warehouse.yaml"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.model, args.m, args.tol, args.table_mb)))
        return
    ks = args.k + ([100] if args.k100 else [])
    print(f"G-LEARN, {args.model}, m={args.m}, tol={args.tol:g}, uniform pi_l, cold start, "
          f"draw cache {args.table_mb} MB; {time.strftime('%Y-%m-%d')}")
    print(f"{'k':>4} {'N_F':>9} {'setup s':>8} {'iter s':>8} {'total s':>8} {'sweeps':>6} "
          f"{'residual':>9} {'backups/s':>10} {'CPU s':>7} {'cached':>6} {'arrays MB':>9} "
          f"{'RSS MB':>7} {'value':>9}")
    for k in ks:
        out = subprocess.run([sys.executable, __file__, "--one", str(k), "--m", str(args.m),
                              "--tol", str(args.tol), "--table-mb", str(args.table_mb),
                              "--model", args.model], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['k']:>4} {r['n_f']:>9} {r['setup']:>8.2f} {r['iterate']:>8.2f} {r['total']:>8.2f} "
              f"{r['sweeps']:>6} {r['residual']:>9.2e} {r['backups_per_s']:>10.3e} {r['cpu']:>7.1f} "
              f"{r['cached']:>6.0%} {r['arrays_mb']:>9.0f} {r['rss_mb']:>7.0f} {r['value']:>9.4f}",
              flush=True)


if __name__ == "__main__":
    main()
