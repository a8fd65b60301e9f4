"""ROS parity: the demo policy and the best constant dispatcher run in ROS, paired with offline rollouts
from the same start.

    .venv/bin/python bench/bench_parity.py [--seeds 1 2 3 4 5] [--n 200] [--epochs 60] [--rollouts 100]
                                            [--policy runs/warehouse_ring_hard/policy.npz]

For each fleet seed and each policy: one ROS run of the demo's fleet (config/fleet.yaml, all nodes in
one process at real time, as ./run.sh runs it, its own ROS domain) and two offline means over --rollouts
rollouts each:
- twin: the ROS run's offline twin, FleetSim(seed) itself (rollout.same_noise_as): the same start, stalls
  and actuation noise as the ROS fleet_sim node of that seed; only the k-subsets and local action draws
  are the rollouts' own. The paired gap ROS - twin is the deployment's alone.
- same start: rollouts that start where the ROS run started with their own noise (rollout.starting_like).
Prints each paired gap, the mean gap per policy with a 95% t CI over seeds, and the learned - constant
difference in ROS and offline (paired by seed) with CIs. The best constant dispatcher is the constant
a_g (with the locals' exact best response on the estimated model) whose offline welfare from random
starts is highest. Run ./run.sh once first: it trains the policy. Figures: docs/results.md, "ROS parity".
"""
import os
import tempfile
import time
from pathlib import Path

from _demo_fleet import fleet_arguments, prepare_ros, run_demo_fleet


def best_constant(scenario, game, k, n, epochs, rollouts):
    """The constant dispatcher's PolicyArtifact: the best blind constant (chosen from random starts)."""
    from altmarl_ros.core.policy import build_policy
    from altmarl_sim.rollout import best_blind_constant

    winner, _ = best_blind_constant(scenario, game, k, 0, n=n, horizon=epochs, seeds=1, rollouts=rollouts, seed=0)
    print(f"best constant dispatcher: {winner.detail} (chosen by offline welfare from random starts)", flush=True)
    return build_policy(winner.pi_g, winner.pi_l, k, n_ag=scenario.sizes[1],
                        scenario=(scenario.name, scenario.content_hash())), winner.detail


def main():
    parser = fleet_arguments(__doc__, seeds=(1, 2, 3, 4, 5))
    parser.add_argument("--rollouts", type=int, default=100)
    args = parser.parse_args()

    prepare_ros()
    from altmarl_ros import fleet_plan
    from altmarl_ros.core.evaluate import mean_ci95
    from altmarl_ros.core.policy import load_policy, save_policy
    from altmarl_sim.estimate import DEFAULT_RUNS_DIR, DEFAULT_SAMPLES_PER_PAIR, estimate_model
    from altmarl_sim.rollout import policy_sim_welfare, same_noise_as, starting_like
    from altmarl_sim.scenario import load_scenario

    fleet = fleet_plan.load_fleet(None, {"n_robots": args.n})
    scenario = load_scenario(fleet.common["scenario"])
    learned = load_policy(args.policy, scenario_hash=scenario.content_hash())
    game, _ = estimate_model(scenario, samples_per_pair=learned.meta["config"].get("samples_per_pair",
                                                                                   DEFAULT_SAMPLES_PER_PAIR),
                             runs_dir=DEFAULT_RUNS_DIR)
    constant, detail = best_constant(scenario, game, learned.k, args.n, args.epochs, args.rollouts)
    files = {"learned": str(Path(args.policy).resolve()),
             "constant": str(save_policy(constant, Path(tempfile.mkdtemp()) / "constant.npz"))}
    policies = {"learned": learned, "constant": constant}
    rows = {name: [] for name in policies}  # (seed, ros, twin mean, same-start mean)
    print(f"n = {args.n}, k = {learned.k}, {args.epochs} epochs, offline {args.rollouts} rollouts per start; "
          f"ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}", flush=True)
    print(f"{'policy':<9} {'seed':>5} {'ROS':>9} {'twin':>9} {'+-':>6} {'gap':>8} {'start':>9} {'+-':>6} "
          f"{'gap':>8} {'late':>7} {'rtf':>5} {'wall s':>7}", flush=True)
    for seed in args.seeds:
        for name, policy in policies.items():
            started = time.monotonic()
            result = run_demo_fleet(args, f"seed {seed} {name}", policy=files[name], seed=seed)
            ros = result["monitor"].welfare
            twin, start = (policy_sim_welfare(scenario, policy, n=args.n, horizon=args.epochs, seeds=1,
                                              rollouts=args.rollouts, seed=seed, fleet=fleet(seed))
                           for fleet in (same_noise_as, starting_like))
            rows[name].append((seed, ros, twin.mean, start.mean))
            print(f"{name:<9} {seed:>5} {ros:9.3f} {twin.mean:9.3f} {twin.ci95:6.3f} {ros - twin.mean:+8.3f} "
                  f"{start.mean:9.3f} {start.ci95:6.3f} {ros - start.mean:+8.3f} "
                  f"{result['late_command_fraction']:7.4f} {result['real_time_factor']:5.2f} "
                  f"{time.monotonic() - started:7.1f}", flush=True)
    print()
    for name in policies:
        for against, column in (("twin", 2), ("same start", 3)):
            gap, ci = mean_ci95([row[1] - row[column] for row in rows[name]])
            print(f"{name:<9} ({detail if name == 'constant' else learned.policy_id}): mean paired gap ROS - "
                  f"{against:<10} {gap:+.3f} +- {ci:.3f} (95% CI over {len(rows[name])} seeds)")
    for where, column in (("ROS", 1), ("twin", 2), ("start", 3)):
        diff, ci = mean_ci95([a[column] - b[column] for a, b in zip(rows["learned"], rows["constant"])])
        print(f"learned - constant, {where:<7}: {diff:+.3f} +- {ci:.3f} (paired by seed)")


if __name__ == "__main__":
    main()
