"""Same decisions whichever way the coordinator hears the fleet: the demo policy in ROS under
state_sampling request and subscribe_all, paired by fleet seed.

    .venv/bin/python bench/bench_sampling_modes.py [--seeds 1 2 3 4 5 6] [--n 200] [--epochs 60]
                                                   [--policy runs/warehouse_ring_hard/policy.npz]

For each fleet seed: two ROS runs of the demo's fleet (config/fleet.yaml, all nodes in one process at
real time, as ./run.sh runs it, its own ROS domain) from the same start, one per mode. Prints each run's
welfare, what the coordinator received per decision, the replies it missed and the states' age at the
decision (p50), then the mean paired difference request - subscribe_all with a 95% t CI over seeds.
Run ./run.sh once first: it trains the policy. Figures: docs/integration.md, "How the coordinator hears
k robots".
"""
import os
import time

from _demo_fleet import fleet_arguments, prepare_ros, run_demo_fleet

MODES = ("request", "subscribe_all")


def main():
    args = fleet_arguments(__doc__, seeds=(1, 2, 3, 4, 5, 6)).parse_args()
    prepare_ros()
    from altmarl_ros.commands.demo import _coordinator_heard
    from altmarl_ros.core.evaluate import mean_ci95

    print(f"n = {args.n}, {args.epochs} epochs, policy {args.policy}; ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}",
          flush=True)
    print(f"{'seed':>5} {'mode':<14} {'welfare':>9} {'msgs/decision':>14} {'missed':>7} {'age p50 s':>10} "
          f"{'late':>7} {'wall s':>7}", flush=True)
    welfare = {mode: [] for mode in MODES}
    for seed in args.seeds:
        for mode in MODES:
            started = time.monotonic()
            result = run_demo_fleet(args, f"seed {seed} {mode}", policy=args.policy, seed=seed, state_sampling=mode)
            status = result["coordinator"]
            heard = _coordinator_heard(status)
            missed = int(status.get("replies_missed", 0)) / max(1, int(status.get("replies_requested", 0)))
            welfare[mode].append(result["monitor"].welfare)
            per_decision = heard.get("per_decision", float("nan"))
            print(f"{seed:>5} {mode:<14} {result['monitor'].welfare:9.3f} {per_decision:14.1f} "
                  f"{100 * missed:6.1f}% {status.get('state_age_p50_s', '-'):>10} "
                  f"{result['late_command_fraction']:7.4f} {time.monotonic() - started:7.1f}", flush=True)
    print()
    for mode in MODES:
        mean, ci = mean_ci95(welfare[mode])
        print(f"{mode:<14}: mean welfare {mean:.3f} +- {ci:.3f} (95% CI over {len(welfare[mode])} seeds)")
    diff, ci = mean_ci95([a - b for a, b in zip(*(welfare[mode] for mode in MODES))])
    print(f"request - subscribe_all: {diff:+.3f} +- {ci:.3f} (paired by seed; equal within CI: {abs(diff) <= ci})")


if __name__ == "__main__":
    main()
