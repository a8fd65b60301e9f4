"""Actuation lag of the ROS fleet: control steps from a decision until the simulator applies its goals.

An in-process graph (fleet_sim, coordinator, local_agents on one EventsExecutor, as `altmarl demo`
runs them; private ROS domain, localhost only) on the demo's scenario and policy. After every
simulator step it records the poses the step started from, the cmd_vel it applied, and the goals
the local agents and the coordinator hold, and classifies each robot's applied command: the ring
controller towards the epoch's new goal or the previous epoch's, from the pose the step started
from or one step older; counted for the robots whose goal the decision changed. Offline
(FleetSim.step_epoch) every step is "new goals, this pose".

    .venv/bin/python bench/bench_goal_lag.py [--n 20] [--epochs 20] [--policy runs/warehouse_ring_hard/policy.npz]

prints robot-step counts per kind, for the first, second and later control steps of the epochs.
"""
import argparse
import os
import random
import time
from collections import Counter

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 200)))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402

from altmarl_ros.nodes._ros import make_executor  # noqa: E402
from altmarl_ros.nodes.coordinator import CoordinatorNode  # noqa: E402
from altmarl_ros.nodes.fleet_sim import FleetSimNode  # noqa: E402
from altmarl_ros.nodes.local_agents import LocalAgentsNode  # noqa: E402
from altmarl_sim.ring import steer_to_zone  # noqa: E402


STEP_ROWS = ("step 1", "step 2", "steps 3+")  # of each epoch
KINDS = ("new goals, this pose", "old goals, this pose", "new goals, older pose", "old goals, older pose", "other")


def classify(applied, poses, older_poses, goals, old_goals, scenario) -> np.ndarray:
    """Per robot, which KINDS entry its applied command is: the ring controller towards its new or old
    goal, from the pose this step started from or one step older (first match; 'other' if none)."""
    kind = np.full(len(goals), len(KINDS) - 1)
    for index, (targets, at) in enumerate(((goals, poses), (old_goals, poses), (goals, older_poses),
                                           (old_goals, older_poses))):
        usable = (targets >= 0) & (kind == len(KINDS) - 1)
        v, w = steer_to_zone(at[usable, 0], at[usable, 1], at[usable, 2], targets[usable], scenario.ring,
                             scenario.limits, scenario.controller)
        match = np.all(np.abs(applied[usable] - np.column_stack((v, w))) < 1e-9, axis=1)
        kind[np.flatnonzero(usable)[match]] = index
    return kind


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="warehouse_ring_hard")
    parser.add_argument("--policy", default="runs/warehouse_ring_hard/policy.npz")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    context = Context()
    rclpy.init(context=context)
    executor = make_executor(context)
    common = {"scenario": args.scenario, "policy": args.policy, "n_robots": args.n, "use_sim_time": True}
    sim = FleetSimNode({"scenario": args.scenario, "n_robots": args.n, "real_time_factor": 1.0}, context=context)
    coordinator = CoordinatorNode(common, context=context)
    agents = LocalAgentsNode(common, context=context)
    nodes = (sim, coordinator, agents)
    steps = []  # per simulator step: (epoch, poses it started from, commands it applied, goals [n + 1])
    start = [np.array(sim.sim.poses)]

    def record(fleet):
        depot_goal = -1 if coordinator.goal_zone is None else coordinator.goal_zone
        steps.append((coordinator.epoch, start[0], sim.commands.copy(), np.append(agents.goal_zones, depot_goal)))
        start[0] = np.array(fleet.poses)

    sim.add_step_listener(record)
    try:
        for node in nodes:
            executor.add_node(node)
        deadline = time.monotonic() + 10.0 + 3.0 * args.epochs
        while coordinator.epoch <= args.epochs and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)
    last_goals = {epoch: goals for epoch, _, _, goals in steps}  # goals held at each epoch's last step
    table = {}  # (step of the epoch: 1, 2, later; workers / depot) -> Counter of KINDS indices
    step_of_epoch = 0
    for previous, (epoch, poses, applied, goals) in zip(steps, steps[1:]):
        step_of_epoch = 1 if epoch != previous[0] else step_of_epoch + 1
        if not 2 <= epoch <= args.epochs:
            continue  # epoch 1 has no old goals; the last epoch may be cut off
        old_goals = last_goals[epoch - 1]
        kinds = classify(applied, poses, previous[1], goals, old_goals, sim.scenario)
        changed = goals != old_goals
        for robots, columns in (("workers", slice(0, -1)), ("depot", slice(-1, None))):
            key = (STEP_ROWS[min(step_of_epoch, len(STEP_ROWS)) - 1], robots)
            table.setdefault(key, Counter()).update(kinds[columns][changed[columns]].tolist())
    print(f"scenario {args.scenario}, n = {args.n}, decision epochs 2..{args.epochs} of "
          f"{sim.scenario.timing.steps_per_epoch} control steps ({sim.scenario.timing.control_period:g} s); "
          f"what each applied cmd_vel steered by (robot-steps of robots whose goal changed at the decision):")
    print(f"{'':24}" + "".join(f"{kind:>24}" for kind in KINDS))
    for step in STEP_ROWS:
        for robots in ("workers", "depot"):
            counts = table.get((step, robots), Counter())
            print(f"{robots + ', ' + step:<24}" + "".join(f"{counts[i]:>24}" for i in range(len(KINDS))))


if __name__ == "__main__":
    main()
