"""welfare_monitor: the welfare a running fleet actually achieves, measured from the outside.

It watches what any observer of the fleet can see: every robot's odometry
(robot_<i>/odom, depot/odom; raw subscriptions read with the fast CDR reader)
and the coordinator's GlobalCommand, which marks the start of each decision
epoch. Per epoch it applies the scenario's reward exactly as the simulator
defines it (altmarl_sim.fleet.FleetSim.step_epoch):

    r = -depot_energy * d_depot + mean_i( service * [zone_i = depot zone] - worker_energy * d_i )

with zones taken at the epoch's start (the GlobalCommand's arrival) and d the
distance each robot drove during the epoch (summed odometry displacements), and
accumulates the discounted return sum_t gamma^t r_t, t = 0 at the first
GlobalCommand. Nothing here needs the robots' chosen actions or the simulator's
internals, so the same number is measured in one process or across several
(and on a real fleet whose scenario describes its zones and rewards).
"""
import math
import sys

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry

from altmarl_sim.ring import zone_of_pose
from altmarl_ros.node_parameters import INTEGER, ROBOT_COUNT, SCENARIO
from altmarl_ros.nodes._params import declare_int, declare_robot_ids, declare_scenario
from altmarl_ros.names import DEPOT_ODOM_TOPIC, DIAGNOSTICS_TOPIC, odom_topic
from altmarl_ros.nodes._ros import ODOM_QOS, AltmarlNode, run_node
from altmarl_ros.nodes._validate import CommandCheck, DroppedMessages, odometry_problem, subscribe_commands


class WelfareMonitorNode(AltmarlNode):
    """Measures per-epoch rewards and the discounted return; see the module docstring."""

    DEFAULT_NAME = "welfare_monitor"
    PARAMETERS = {**SCENARIO, **ROBOT_COUNT, "log_every": INTEGER}

    def setup(self) -> None:
        self.scenario = declare_scenario(self)
        n_robots = declare_int(self, "n_robots", self.scenario.workers,
                               "fleet size: robots default to ids 0..n_robots-1", minimum=1)
        self.robot_ids = declare_robot_ids(self, "robots", "robots to measure: a count n or a list of ids",
                                           default_count=n_robots)
        n = len(self.robot_ids)
        # Slot i < n: robot_ids[i]; slot n: the depot.
        self.position = np.full((n + 1, 2), np.nan)
        self.travelled = np.zeros(n + 1)
        self.odom_messages = 0
        self.rewards = []  # one per completed epoch
        self.welfare = 0.0  # sum_t gamma^t rewards[t]
        self.last_command = None
        self.first_epoch = None  # the coordinator's epoch number of the first GlobalCommand seen (0 = none missed)
        # GlobalCommands whose epoch is not the previous one + 1 (missed, or a second coordinator)
        self.out_of_sequence = 0
        self.missing_at_epoch_start = 0  # robots without odometry when an epoch began (never served)
        self._epoch_start = None  # zones at the running epoch's start [n + 1], -1 = no odometry yet
        self.log_every = declare_int(self, "log_every", 10, "log the welfare every this many epochs (0 = never)",
                                     minimum=0)
        self.dropped = DroppedMessages(self)  # bad GlobalCommand and odometry messages, by reason
        topics = [odom_topic(i) for i in self.robot_ids] + [DEPOT_ODOM_TOPIC]
        self._subs = [self.create_subscription(Odometry, topic, self._odometry_into(slot, topic), ODOM_QOS,
                                               raw=True)
                      for slot, topic in enumerate(topics)]
        n_sg, n_ag, n_sl, _ = self.scenario.sizes
        subscribe_commands(self, CommandCheck((n_sg, n_ag, n_sl), robot_ids=self.robot_ids), self.on_command,
                           self.dropped)
        # The simulator's own report (late commands: steps that used a command older than the last state),
        # and the coordinator's (what it received to decide).
        self.simulator_status, self.coordinator_status = {}, {}
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 10)

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.endswith(": fleet simulator"):
                self.simulator_status = {kv.key: kv.value for kv in status.values}
            elif status.name.endswith(": coordinator"):
                self.coordinator_status = {kv.key: kv.value for kv in status.values}

    def _odometry_into(self, slot: int, topic: str):
        position, travelled = self.position, self.travelled

        def store(data: bytes) -> None:
            state, reason = odometry_problem(data)
            self.odom_messages += 1
            if state is None:
                self.dropped.drop("Odometry", reason, topic)
                return
            x, y = state[:2]
            px, py = position[slot]
            if px == px:  # not NaN: a previous position exists
                travelled[slot] += math.hypot(x - px, y - py)
            position[slot] = x, y
        return store

    @property
    def epochs(self) -> int:
        """Completed decision epochs (the reward of the current one is not known yet)."""
        return len(self.rewards)

    def on_command(self, msg: GlobalCommand) -> None:
        """Close the running epoch (its reward) and open the next at the robots' current zones."""
        if self._epoch_start is not None:
            self._close_epoch()
            if msg.epoch != self.last_command.epoch + 1:
                self.out_of_sequence += 1
        else:
            self.first_epoch = msg.epoch
        known = ~np.isnan(self.position[:, 0])
        zones = np.full(len(self.position), -1, dtype=np.int64)
        if known.any():
            zones[known] = zone_of_pose(self.position[known, 0], self.position[known, 1], self.scenario.ring)
        self.missing_at_epoch_start += int((~known[:-1]).sum())
        self._epoch_start = zones
        self.travelled[:] = 0.0
        self.last_command = msg

    def _close_epoch(self) -> None:
        zones = self._epoch_start
        depot_zone = zones[-1]
        served = (zones[:-1] == depot_zone) & (depot_zone >= 0)
        _, _, reward = self.scenario.rewards.epoch(served, self.travelled[:-1], self.travelled[-1])
        self.welfare += self.scenario.gamma ** len(self.rewards) * reward
        self.rewards.append(reward)
        if self.log_every and self.epochs % self.log_every == 0:
            self.get_logger().info(f"{self.epochs} epochs: last reward {reward:.4f}, "
                                   f"discounted return so far {self.welfare:.4f}")


def main(args=None):
    sys.exit(run_node(WelfareMonitorNode, args))


if __name__ == "__main__":
    main()
