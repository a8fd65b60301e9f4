"""Time to rest for every stop cause and command type: {twist, twist_stamped, goal_pose, navigate_to_pose} x
{e-stop, stale coordinator, coordinator killed, local agents SIGINT}.

    .venv/bin/python bench/bench_stop.py [--n 50] [--trials 3] [--command-types goal_pose,navigate_to_pose]

Each trial runs test/_stop_table.py's fleet on warehouse_ring (fleet_sim in this process, coordinator and
local agents in their own processes, every worker's local action `next`, so all of them always drive)
and applies the four causes in turn. Time to rest: from the e-stop call, the signal, or the last
GlobalCommand the fleet received (stale, killed) until every worker is commanded to rest (zero cmd_vel, a
hold goal at its pose, or its NavigateToPose goal's cancel received by its navigator). "after" counts
messages that told a robot to move once it was at rest (steps of a non-zero cmd_vel, zone goals), or with
navigate_to_pose the goals its navigator still held uncancelled 1 s later (must be 0).
Targets: e-stop <= 100 ms; a lost coordinator <= command_timeout + 0.2 s. Figures: docs/operations.md.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _demo_fleet import prepare_ros

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
from _stop_table import CAUSES, COMMAND_TIMEOUT, COMMAND_TYPES, StopTrial  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--command-types", default=",".join(COMMAND_TYPES),
                        help="comma-separated rows to run (default: every command type)")
    args = parser.parse_args()
    kinds = args.command_types.split(",")
    unknown = sorted(set(kinds) - set(COMMAND_TYPES))
    if unknown:
        parser.error(f"--command-types: {', '.join(unknown)} not among {', '.join(COMMAND_TYPES)}")

    prepare_ros()
    import rclpy
    from rclpy.context import Context

    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.policy import build_policy, save_policy
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario("warehouse_ring")
    z = scenario.ring.n_zones
    pi_l = np.zeros((z, z, 3))
    pi_l[..., 1] = 1.0  # next: every worker always drives
    policy = save_policy(build_policy(np.zeros((z, n_count_vectors(5, z)), int), pi_l, 5, n_ag=z,
                                      scenario=(scenario.name, scenario.content_hash())),
                         Path(tempfile.mkdtemp()) / "next.npz")
    print(f"n = {args.n} workers, command_timeout {COMMAND_TIMEOUT:g} s, {args.trials} trial(s) per command type, "
          f"{time.strftime('%Y-%m-%d')}", flush=True)
    seconds = {(kind, cause): [] for kind in kinds for cause in CAUSES}
    after = {key: 0 for key in seconds}
    for kind in kinds:
        for _ in range(args.trials):
            context = Context()
            rclpy.init(context=context)
            trial = StopTrial(context, "warehouse_ring", str(policy), kind, n=args.n)
            try:
                for row in trial.run():
                    seconds[kind, row.cause].append(row.seconds_to_rest)
                    after[kind, row.cause] += row.commanded_after_stop
            finally:
                trial.close()
                rclpy.try_shutdown(context=context)
        print(f"{kind}: done", flush=True)
    print(f"\n| command type | {' | '.join(CAUSES)} |\n|---|{'---|' * len(CAUSES)}")
    for kind in kinds:
        cells = [f"{1000 * np.median(seconds[kind, c]):.0f} ms (max {1000 * max(seconds[kind, c]):.0f}), "
                 f"after {after[kind, c]}" for c in CAUSES]
        print(f"| {kind} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
