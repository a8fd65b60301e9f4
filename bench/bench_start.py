"""Deployed welfare of ALTERNATING-MARL from its two starts, next to the baselines.

    .venv/bin/python bench/bench_start.py [--k 1 5 10 20 40] [--seeds 5] [--rollouts 20]

For each k: alternating_marl with start="uniform" and start="best_constant",
each evaluated by n = 1000-agent rollouts with fresh k-subsampling (horizon
100, uniform mu0), then the uniform-random and best-constant-global baselines.
The numbers behind the start choice in docs/training.md.
"""
import argparse
import time

from altmarl_ros.core.alternating import alternating_marl
from altmarl_ros.core.evaluate import baselines, rollout_welfare
from altmarl_ros.core.model import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    parser.add_argument("--model", default="config/models/warehouse.yaml")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rollouts", type=int, default=20)
    args = parser.parse_args()
    game = load_model(args.model)
    runs = dict(n=1000, horizon=100, seeds=args.seeds, rollouts=args.rollouts)
    print(f"{args.model}, n=1000, horizon 100, {args.seeds} seeds x {args.rollouts} rollouts; "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{'k':>3} {'start':>13} {'welfare':>16} {'surrogate':>9} {'gap':>8} {'rounds':>6} {'train s':>7}")
    for k in args.k:
        for start in ("uniform", "best_constant"):
            result = alternating_marl(game, k, start=start)
            welfare = rollout_welfare(game, result.pi_g, result.pi_l, k, **runs)
            print(f"{k:>3} {start:>13} {welfare.mean:>8.2f} +- {welfare.ci95:<5.2f} "
                  f"{result.welfare_estimate:>9.2f} {result.nash_gap:>8.3g} {len(result.rounds):>6} "
                  f"{result.seconds:>7.1f}", flush=True)
    for name, estimate in baselines(game, args.k[0], **runs).items():
        print(f"baseline {name}: {estimate.mean:.2f} +- {estimate.ci95:.2f}")


if __name__ == "__main__":
    main()
