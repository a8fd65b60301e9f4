"""G-LEARN cost vs k: time to tolerance, sweeps, backups/s, memory; the authors' optimizer in the same run.

    .venv/bin/python bench/bench_glearn.py [--k 10 20 30 40 50] [--k100] [--m 30] [--tol 1e-4]
        [--max-memory MB | --table-mb 1024] [--model config/models/warehouse.yaml]
        [--ring8] [--plain] [--authors CHECKOUT] [--authors-k 10 20 30 40]

One G-LEARN call per k against uniform locals (ALTERNATING-MARL's first round),
cold start, in a fresh subprocess so that peak RSS belongs to that k alone
(numba kernels come from the on-disk cache; a k = 2 call loads them first).
Columns: setup = alias tables + stored draws; iterate = the sweeps; a backup
is one (s_g, F) state (m gathers, all actions); CPU = user+system seconds of
all threads; arrays = what the memory plan counts (alias tables, two V, draws,
Q and pi_g); RSS = the process's peak (VmHWM). The plan line under each row is
what G-LEARN printed up front (layout, stored share, recomputation cost); the answer
line is the exact value, residual and a SHA-256 of Q and pi_g, so a refactor can show
that it gives the same answer bit for bit.
--k100 adds k = 100 (4.6 M count vectors). --plain turns off the slow-mode
extrapolation (plain McQueen-shifted value iteration, as before it). --max-memory: a budget in MiB for
G-LEARN's arrays (plan_memory picks the layout); otherwise --table-mb bounds the
stored draws. --ring8: also the 8-zone ring model below at k = 20 (888,030 count
vectors). --authors: a checkout of github.com/emiletimothy/alternating-marl
(default: $ALTMARL_AUTHORS_CODE); their GlobalAgentOptimizer is timed on the same
model with their hyperparameters (30 samples, 100 sweeps, tol 1e-6), uniform locals.
"""
import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def ring8_model():
    """8 robot zones on a ring, a depot docking at 4 of them: |S_l| = 8, |S_g| = |A_g| = 4, |A_l| = 3.

    Written for this bench (the warehouse model's logits, on a larger ring):
    the depot heads for its target dock (logit 3) with inertia (0.5); a robot stays
    (3.5), steps to the commanded neighbour (1.5) and drifts to the depot's zone (0.3).
    """
    from altmarl_ros.core.model import make_game

    zones, docks = 8, (0, 2, 4, 6)
    n_sg = len(docks)
    softmax = lambda logits: np.exp(logits) / np.exp(logits).sum()  # noqa: E731
    P_g = np.array([[softmax(3.0 * (np.arange(n_sg) == a) + 0.5 * (np.arange(n_sg) == g))
                     for a in range(n_sg)] for g in range(n_sg)])
    P_l = np.zeros((zones, n_sg, 3, zones))
    r_l = np.zeros((zones, n_sg, 3))
    for s in range(zones):
        for g, dock in enumerate(docks):
            distance = min(abs(s - dock), zones - abs(s - dock))
            for a, step in enumerate((0, 1, -1)):
                logits = np.full(zones, 0.1)
                logits[s] += 3.5
                if step:
                    logits[(s + step) % zones] += 1.5
                logits[dock] += 0.3
                P_l[s, g, a] = softmax(logits)
                r_l[s, g, a] = (10.0 if distance == 0 else 2.0 / (1 + distance)) + (0.0, 0.5, -0.3)[a]
    return make_game(P_g=P_g, P_l=P_l, r_g=np.ones((n_sg, n_sg)), r_l=r_l, gamma=0.95, name="ring8")


def _load(model):
    from altmarl_ros.core.model import load_model

    return ring8_model() if model == "ring8" else load_model(model)


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ours(k, model, m, tol, table_mb, max_memory_mb, extrapolate=True):
    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.glearn import g_learn
    from altmarl_ros.core.glearn_memory import plan_memory
    from altmarl_ros.experiments.glearn_probe import peak_rss_mb

    game = _load(model)
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    g_learn(game, uniform, 2, m=m)  # load the compiled kernels
    rss_before = peak_rss_mb()
    budget = dict(table_bytes=table_mb << 20, max_memory=None if max_memory_mb is None else max_memory_mb << 20)
    plan = plan_memory(game, k, m, pi_l=uniform, **budget)
    print(f"k = {k}: {plan.describe()}", file=sys.stderr, flush=True)
    cpu_before = _cpu_seconds()
    result = g_learn(game, uniform, k, m=m, tol=tol, extrapolate=extrapolate, **budget)
    n_f = n_count_vectors(k, game.n_sl)
    iterate = result.seconds - result.setup_seconds
    return dict(k=k, n_f=n_f, setup=result.setup_seconds, iterate=iterate, total=result.seconds,
                sweeps=result.sweeps, residual=result.residual, converged=result.converged,
                backups_per_s=result.sweeps * game.n_sg * n_f / iterate,
                cpu=_cpu_seconds() - cpu_before, cached=result.table_fraction,
                arrays_mb=result.plan.peak_bytes / 2**20, rss_mb=peak_rss_mb(), rss_before_mb=rss_before,
                value=result.value, plan=result.plan.describe(),
                answer_sha256=hashlib.sha256(result.Q.tobytes() + result.pi_g.tobytes()).hexdigest())


def authors(k, model, checkout):
    """Their GlobalAgentOptimizer on our model with uniform locals: wall, CPU, peak RSS of this process."""
    from altmarl_ros.experiments.glearn_probe import peak_rss_mb

    sys.path.insert(0, str(Path(checkout) / "scripts"))
    from global_agent_optimizer import GlobalAgentOptimizer

    hyper = json.loads((Path(checkout) / "scripts" / "hyperparameters.json").read_text())["global_agent"]
    game = _load(model)
    P_l_pi = game.P_l.mean(axis=2)  # uniform locals: [s_l, s_g, s_l']
    r_l_pi = game.r_l.mean(axis=2)
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    GlobalAgentOptimizer(game.n_sg, game.n_sl, game.n_ag, k, game.gamma,
                         P_g=lambda s, a: game.P_g[s, a], P_l_pi=lambda s, g: P_l_pi[s, g],
                         r_g=lambda s, a: game.r_g[s, a], r_l_pi=lambda s, g: r_l_pi[s, g],
                         n_mc=hyper["n_mc_samples"], max_iter=hyper["max_vi_iterations"],
                         tol=hyper["convergence_threshold"])
    return dict(k=k, total=time.perf_counter() - started, cpu=_cpu_seconds() - cpu_before, rss_mb=peak_rss_mb())


def _run(args, which, k, model):
    command = [sys.executable, __file__, "--one", which, str(k), "--m", str(args.m), "--tol", str(args.tol),
               "--table-mb", str(args.table_mb), "--model", model]
    if args.max_memory is not None:
        command += ["--max-memory", str(args.max_memory)]
    if args.plain:
        command.append("--plain")
    if which == "authors":
        command += ["--authors", args.authors]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ours_table(args, ks, model):
    print(f"\nG-LEARN, {model}, m={args.m}, tol={args.tol:g}, uniform pi_l, cold start, "
          + (f"max memory {args.max_memory} MiB" if args.max_memory is not None else f"draw store {args.table_mb} MiB")
          + (", plain iteration" if args.plain else "")
          + f"; {time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'k':>4} {'N_F':>9} {'setup s':>8} {'iter s':>8} {'total s':>8} {'sweeps':>6} "
          f"{'residual':>9} {'backups/s':>10} {'CPU s':>7} {'stored':>6} {'arrays MB':>9} "
          f"{'RSS MB':>7} {'value':>9}")
    for k in ks:
        r = _run(args, "ours", k, model)
        print(f"{r['k']:>4} {r['n_f']:>9} {r['setup']:>8.2f} {r['iterate']:>8.2f} {r['total']:>8.2f} "
              f"{r['sweeps']:>6} {r['residual']:>9.2e} {r['backups_per_s']:>10.3e} {r['cpu']:>7.1f} "
              f"{r['cached']:>6.0%} {r['arrays_mb']:>9.0f} {r['rss_mb']:>7.0f} {r['value']:>9.4f}", flush=True)
        print(f"     plan: {r['plan']}", flush=True)
        print(f"     answer: value {r['value']!r}, residual {r['residual']!r}, Q and pi_g sha256 "
              f"{r['answer_sha256'][:16]}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 20, 30, 40, 50])
    parser.add_argument("--k100", action="store_true", help="also run k = 100")
    parser.add_argument("--m", type=int, default=30)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--table-mb", type=int, default=1024)
    parser.add_argument("--max-memory", type=int, default=None, metavar="MB")
    parser.add_argument("--model", default=str(ROOT / "config" / "models" / "warehouse.yaml"))
    parser.add_argument("--ring8", action="store_true", help="also the 8-zone ring model at k = 20")
    parser.add_argument("--plain", action="store_true", help="no slow-mode extrapolation (the previous iteration)")
    parser.add_argument("--authors", default=os.environ.get("ALTMARL_AUTHORS_CODE"),
                        help="checkout of emiletimothy/alternating-marl (default $ALTMARL_AUTHORS_CODE)")
    parser.add_argument("--authors-k", type=int, nargs="+", default=[10, 20, 30, 40])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        which, k = args.one[0], int(args.one[1])
        if which == "authors":
            print(json.dumps(authors(k, args.model, args.authors)))
        else:
            print(json.dumps(ours(k, args.model, args.m, args.tol, args.table_mb, args.max_memory, not args.plain)))
        return
    _ours_table(args, args.k + ([100] if args.k100 else []), args.model)
    if args.ring8:
        _ours_table(args, [20], "ring8")
    if args.authors is None:
        print("\nauthors' optimizer: not timed (pass --authors CHECKOUT or set ALTMARL_AUTHORS_CODE)")
        return
    if not (Path(args.authors) / "scripts" / "global_agent_optimizer.py").is_file():
        sys.exit(f"--authors {args.authors}: no scripts/global_agent_optimizer.py there; "
                 "pass a checkout of github.com/emiletimothy/alternating-marl")
    print(f"\nauthors' GlobalAgentOptimizer ({args.authors}), same model, uniform locals, their hyperparameters")
    print(f"{'k':>4} {'total s':>8} {'CPU s':>7} {'RSS MB':>7}")
    for k in args.authors_k:
        r = _run(args, "authors", k, args.model)
        print(f"{r['k']:>4} {r['total']:>8.2f} {r['cpu']:>7.2f} {r['rss_mb']:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
