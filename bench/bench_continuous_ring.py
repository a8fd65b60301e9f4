"""The continuous ring against its tabular twin: an FA policy on positions against the tabular zone policy, both
at the same k, scored in the same simulator on the same streams.

    .venv/bin/python bench/bench_continuous_ring.py --fa runs/compare/fa_k5.npz --tabular runs/compare/tabular_k5.npz
        [--continuous warehouse_ring_continuous] [--n 1000] [--horizon 100] [--seeds 5] [--rollouts 20] [--seed 0]

Make the two policies first (docs/continuous.md, The continuous ring):
    altmarl train --scenario warehouse_ring_continuous --k 5 --train-seeds 1 --out runs/compare/fa_k5.npz
    altmarl train --scenario warehouse_ring            --k 5 --out runs/compare/tabular_k5.npz
Rollout r of seed s of every row starts where, and draws the stalls and actuation noise that, the same
rollout of the other rows does (altmarl_sim.rollout's streams), so the paired difference per rollout is the
policies' alone. Prints each row's welfare +- 95% CI, the paired FA - tabular difference with its CI, the
best constant dispatcher (the best population-blind baseline) for scale, and the seconds each took.
Figures: docs/results.md, "The continuous ring".
"""
import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the FA networks' small matmuls: threads only contend
import numpy as np  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fa", required=True, help="FA policy file (altmarl train --scenario <continuous>)")
    parser.add_argument("--tabular", required=True, help="tabular policy file (altmarl train --scenario <zones>)")
    parser.add_argument("--continuous", default="warehouse_ring_continuous", help="the continuous scenario")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from altmarl_ros.core.evaluate import mean_ci95
    from altmarl_ros.core.fa_policy import load_fa_policy
    from altmarl_sim.continuous_ring import ContinuousRing
    from altmarl_sim.rollout import decider_of, fa_sim_rollout_welfare, policy_sim_welfare, sim_baselines
    from altmarl_sim.scenario import load_scenario
    from altmarl_sim.world import ScenarioWorld

    game = ContinuousRing(load_scenario(args.continuous))
    fa = load_fa_policy(args.fa, game=game)
    world = ScenarioWorld(game.scenario)  # the tabular twin: same physics, so the same content hash
    tabular = world.load_policy(args.tabular)
    if tabular.k != fa.k:
        raise SystemExit(f"the policies' k differ: FA {fa.k}, tabular {tabular.k}")
    sizes = dict(n=args.n, horizon=args.horizon, seeds=args.seeds, rollouts=args.rollouts, seed=args.seed)
    print(f"scenario {game.scenario.name} (hash {game.scenario.content_hash()}), k = {fa.k}, n = {args.n}, "
          f"horizon {args.horizon}, {args.seeds} x {args.rollouts} rollouts from seed {args.seed}", flush=True)
    rows = {}
    started = time.perf_counter()
    rows["FA (positions)"] = fa_sim_rollout_welfare(game.scenario, decider_of(fa, game.scenario), **sizes)
    rows[f"tabular (zones, {tabular.observer.name})"] = policy_sim_welfare(world.scenario, tabular, **sizes)
    world = world.of_policy(tabular)
    constant = sim_baselines(world.scenario, world.game, fa.k, names=("best_constant_global",), **sizes)
    rows[f"best constant ({constant['best_constant_global'].detail})"] = constant["best_constant_global"]
    for name, estimate in rows.items():
        print(f"{name:<34} {estimate.mean:9.3f} +- {estimate.ci95:<6.3f} ({estimate.seconds:5.0f} s)")
    fa_returns, tabular_returns = (estimate.returns for estimate in list(rows.values())[:2])
    diff, ci = mean_ci95(fa_returns - tabular_returns)
    print(f"paired FA - tabular: {diff:+.3f} +- {ci:.3f} (95% CI over {fa_returns.size} rollouts on the same "
          f"streams); {time.perf_counter() - started:.0f} s in all")
    print(f"FA / tabular: {np.mean(fa_returns) / np.mean(tabular_returns):.4f}")


if __name__ == "__main__":
    main()
