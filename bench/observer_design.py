"""Observer design attempts (docs/training.md, "Observers"): n-agent welfare of each design at small k.

For one model and sample size k it trains ALTERNATING-MARL pairs at k and at each
--resolution K (cached under runs/observer_design/), then deploys with n robots:
  fresh k            the paper: pi_g at k reads each k-sample;
  fresh K            the reference: pi_g at K reading K fresh samples (what the filter imitates);
  oracle K           pi_g at K reading the whole fleet, rounded to K (an upper bound for any observer);
  pool               filter without the prediction step (identity model): a fading-memory mean of samples;
  filter             predict + correct, prior 0 (first sample) or W on mu0_l;
for gains 0.5, 0.25, 0.1, 0.05. Each row: mean +- 95% CI and the estimate's mean TV error.

    .venv/bin/python bench/observer_design.py --model config/models/warehouse.yaml --k 5 --resolution 45
"""
import argparse
import time
from pathlib import Path

import numpy as np

from altmarl_ros.core.alternating import alternating_marl
from altmarl_ros.core.evaluate import _estimate, rollout_welfare
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.model import load_model
from altmarl_ros.core.observer import still_model
from altmarl_ros.core.observers import ObserverSpec

GAINS = (0.5, 0.25, 0.1, 0.05)


def trained_pair(game, model_path, K, cache):
    path = cache / f"{Path(model_path).stem}_{game.content_hash()}_K{K}.npz"
    if path.exists():
        with np.load(path) as stored:
            return stored["pi_g"], stored["pi_l"]
    started = time.perf_counter()
    result = alternating_marl(game, K)
    print(f"# trained K = {K} in {time.perf_counter() - started:.1f} s ({result.stop_reason})")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pi_g=result.pi_g, pi_l=result.pi_l)
    return result.pi_g, result.pi_l


def row(label, estimate):
    print(f"{label:<52} {estimate.mean:9.3f} +- {estimate.ci95:<6.3f} TV {estimate.estimation_error:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--resolution", type=int, nargs="+", default=[45])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7, help="root of the rollout streams (default 7)")
    parser.add_argument("--dirichlet-alpha", type=float, default=None)
    parser.add_argument("--cache", type=Path, default=Path("runs/observer_design"))
    args = parser.parse_args()
    game = load_model(args.model)
    runs = dict(n=args.n, horizon=100, seeds=args.seeds, rollouts=args.rollouts, seed=args.seed,
                dirichlet_alpha=args.dirichlet_alpha)
    print(f"# {args.model}, k = {args.k}, n = {args.n}, {args.seeds} x {args.rollouts} rollouts, "
          f"seed {args.seed}, Dirichlet {args.dirichlet_alpha}")
    pi_g, pi_l = trained_pair(game, args.model, args.k, args.cache)
    row(f"fresh k = {args.k} (the paper)", rollout_welfare(game, pi_g, pi_l, args.k, **runs))
    for K in args.resolution:
        pi_g, pi_l = trained_pair(game, args.model, K, args.cache)
        row(f"fresh K = {K}", rollout_welfare(game, pi_g, pi_l, K, **runs))
        row(f"oracle: the whole fleet rounded to {K}",
            rollout_welfare(game, pi_g, pi_l, args.n, observer=ObserverSpec("filter", 1.0, K), **runs))
        P_fused, r_fused = fold_local_policy(game, pi_l)
        still = still_model(game.n_sg, game.n_sl)
        for gain in GAINS:
            W = args.k * (1 - gain) / gain
            pooled = _estimate(game, pi_g, P_fused, r_fused, game.P_g, game.r_g, args.k, args.n, 100, args.seeds,
                               args.rollouts, args.seed, args.dirichlet_alpha, ObserverSpec("filter", gain, K),
                               P_observer=still)
            row(f"pool (no prediction) gain {gain}, K = {K}", pooled)
            for prior in (0.0, W):
                spec = ObserverSpec("filter", gain, K, prior)
                row(f"filter gain {gain}, K = {K}, prior {prior:g}",
                    rollout_welfare(game, pi_g, pi_l, args.k, observer=spec, **runs))


if __name__ == "__main__":
    main()
