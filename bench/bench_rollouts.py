"""Rollout throughput of the evaluator: agent-steps per second on the paper-size warehouse model.

An agent-step is one local agent for one decision epoch: its expected reward,
one uniform and a draw of its next zone (plus, per epoch, the k-subset, the
rank lookup of pi_g and the depot's move). Uses every numba thread:

    .venv/bin/python bench/bench_rollouts.py [--k 10 40] [--n 100 1000 2000] [--repeats 3]

Policy: the depot heads for the most crowded sampled zone (pi_g[s_g, F] = argmax F,
a good hand-made policy for this model), locals uniform. Throughput does not
depend on the policy's values. Target: >= 5e7 agent-steps/s at n = 1000 on 2 cores.
On a shared machine the wall-clock rate undercounts; the CPU column is the rate
per CPU-second of this process (all threads), i.e. what one free core delivers.
"""
import argparse
import time

import numba
import numpy as np

from altmarl_ros.core.counts import enumerate_count_vectors
from altmarl_ros.core.evaluate import rollout_welfare
from altmarl_ros.models.warehouse import paper_warehouse_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000, 2000])
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="timings; the best is reported")
    args = parser.parse_args()
    game = paper_warehouse_model()
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    print(f"paper warehouse model ({game.content_hash()}), horizon {args.horizon}, "
          f"{args.seeds} seeds x {args.rollouts} rollouts, {numba.get_num_threads()} numba threads")
    print(f"{'k':>4} {'n':>6} {'agent-steps':>12} {'best s':>8} {'agent-steps/s':>14} {'per CPU-s':>10} "
          f"{'welfare':>18}")
    for k in args.k:
        crowded = np.argmax(enumerate_count_vectors(k, game.n_sl), axis=1).astype(np.int32)
        pi_g = np.tile(crowded, (game.n_sg, 1))
        rollout_welfare(game, pi_g, uniform, k, n=k, horizon=2, seeds=1, rollouts=2)  # compile
        for n in args.n:
            runs = []
            for _ in range(args.repeats):
                cpu = time.process_time()
                estimate = rollout_welfare(game, pi_g, uniform, k, n=n, horizon=args.horizon,
                                           seeds=args.seeds, rollouts=args.rollouts)
                runs.append((estimate, time.process_time() - cpu))
            best, cpu = min(runs, key=lambda run: run[0].seconds)
            print(f"{k:>4} {n:>6} {best.agent_steps:>12.3g} {best.seconds:>8.3f} "
                  f"{best.agent_steps_per_second:>14.3g} {best.agent_steps / cpu:>10.3g} "
                  f"{best.mean:>9.3f} +- {best.ci95:.3f}")


if __name__ == "__main__":
    main()
