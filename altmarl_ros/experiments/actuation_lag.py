"""How much welfare a late start of each decision's goals costs: the continuous simulator with goals
delayed by d control steps, as a ROS pipeline can delay them.

Offline (FleetSim.step_epoch) a decision's goals steer every robot from the first control step of
its epoch. Under ROS a GlobalCommand reaches the local agents as a message, after their control
timer may already have published this step's cmd_vel towards the old goals; the robot then drives
one more control step (or more) the old way. LaggedFleet runs each epoch one control step at a
time with the ring controller (what fleet_sim + local_agents do), the workers steering to the
previous epoch's goals for the first `worker_lag` steps and the depot for `depot_lag` steps
(before the first decision: standing still, as in ROS). Lag 0 is the offline epoch run step by
step: its welfare must match FleetSim's within the CIs, which checks the emulation.

    .venv/bin/python -m altmarl_ros.experiments.actuation_lag \\
        [--policy runs/warehouse_ring_hard/policy.npz] [--n 200] [--horizon 60] [--rollouts 100] \\
        [--lags 0,0 1,0 2,0 1,1 2,2]    # worker_lag,depot_lag pairs

prints one row per lag pair: welfare mean +- 95% CI over the same streams as `altmarl demo`'s
offline evaluation (seed 0), and its paired difference (+- 95% CI) from the first pair's rollouts.
"""
import argparse
import functools

import numpy as np

from altmarl_ros.core.evaluate import mean_ci95
from altmarl_ros.core.policy import load_policy
from altmarl_sim.fleet import FleetSim, check_lead
from altmarl_sim.ring import steer_to_zone
from altmarl_sim.rollout import policy_sim_welfare
from altmarl_sim.scenario import load_scenario


class LaggedFleet(FleetSim):
    """FleetSim whose epochs start with the previous goals for worker_lag / depot_lag control steps."""

    def __init__(self, scenario, n=None, seed=0, worker_lag=0, depot_lag=0):
        super().__init__(scenario, n=n, seed=seed)
        self.lags = np.full(self.n + 1, worker_lag)
        self.lags[self.n] = depot_lag
        self.previous_goals = None  # no decision yet: robots stand still

    def step_epoch(self, local_actions, global_action, lead=0):
        scenario = self.scenario
        lead = check_lead(scenario, lead)
        start, goals = self.epoch_goals(local_actions, global_action)
        travelled = np.zeros(self.n + 1)
        steps = scenario.timing.steps_per_epoch
        for step in range(steps):
            if step == steps - lead:
                self.read_zones = self.zones()
            late = step < self.lags
            steering = np.where(late, -1 if self.previous_goals is None else self.previous_goals, goals)
            v, w = np.zeros(self.n + 1), np.zeros(self.n + 1)
            moving = steering >= 0
            v[moving], w[moving] = steer_to_zone(self._poses[moving, 0], self._poses[moving, 1],
                                                 self._poses[moving, 2], steering[moving], scenario.ring,
                                                 scenario.limits, scenario.controller)
            self.set_commands(v, w)
            self.step_control()
            travelled += self._travelled
        self.previous_goals = goals
        self.last_local_rewards, self.last_global_reward, reward = scenario.rewards.epoch(
            start[: self.n] == start[self.n], travelled[: self.n], travelled[self.n])
        end = self.all_zones()
        if not lead:
            self.read_zones = end[: self.n]
        return end[: self.n], int(end[self.n]), reward


def lag_pair(text: str):
    worker, depot = (int(part) for part in text.split(","))
    if worker < 0 or depot < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: lags are control steps >= 0")
    return worker, depot


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="warehouse_ring_hard")
    parser.add_argument("--policy", default="runs/warehouse_ring_hard/policy.npz")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--horizon", type=int, default=60)
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lags", type=lag_pair, nargs="+", default=[(0, 0), (1, 0), (2, 0), (1, 1), (2, 2)],
                        metavar="WORKER,DEPOT")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    policy = load_policy(args.policy)
    rollout_args = dict(n=args.n, horizon=args.horizon, seeds=1, rollouts=args.rollouts, seed=args.seed)
    print(f"scenario {scenario.name}, policy {policy.policy_id} ({policy.observer.name}), n = {args.n}, "
          f"k = {policy.k}, {args.horizon} epochs of {scenario.timing.steps_per_epoch} control steps, "
          f"{args.rollouts} rollouts (seed {args.seed})")
    reference = policy_sim_welfare(scenario, policy, **rollout_args)
    first = args.lags[0]
    print(f"{'epochs run as':<36} {'welfare':>18}   vs lag {first[0]},{first[1]} (paired)")
    print(f"{'FleetSim.step_epoch (offline)':<36} {reference.mean:9.3f} +- {reference.ci95:5.3f}")
    baseline = None
    for worker_lag, depot_lag in args.lags:
        fleet = functools.partial(LaggedFleet, worker_lag=worker_lag, depot_lag=depot_lag)
        found = policy_sim_welfare(scenario, policy, fleet=fleet, **rollout_args)
        baseline = found.returns if baseline is None else baseline
        change, change_ci = mean_ci95(found.returns - baseline)
        label = f"steps, lag {worker_lag} workers, {depot_lag} depot"
        print(f"{label:<36} {found.mean:9.3f} +- {found.ci95:5.3f}   {change:+7.3f} +- {change_ci:5.3f}")


if __name__ == "__main__":
    main()
