"""local_agents: the local policy pi_l for one robot (a real fleet) or many (the simulated fleet).

At each new GlobalCommand every hosted robot with fresh odometry takes its zone
s_i (core.ring), draws a_i ~ pi_l(. | s_i, s_g) (seeded), and heads for the zone
that action names (stay / next / previous). Every control period it publishes
robot_<i>/cmd_vel from the core's ring-following controller, within the
scenario's limits. If the last GlobalCommand arrived more than
`command_timeout` ago (coordinator lost), every robot is commanded to stop
(logged once) until commands return. A robot without fresh odometry is
commanded to stop too.
"""
import sys

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from geometry_msgs.msg import Twist

from altmarl_sim.ring import steer_to_zone, target_zone, zone_of_pose
from altmarl_ros.names import GLOBAL_COMMAND_TOPIC, cmd_vel_topic
from altmarl_ros.nodes._cdr import twist_cdr
from altmarl_ros.nodes._odom_store import LatestOdometry
from altmarl_ros.nodes._params import (CONTROL_PERIOD, INTEGER, NUMBER, POLICY, ROBOTS, SCENARIO,
                                       declare_control_period, declare_float, declare_int, declare_policy,
                                       declare_robots, declare_scenario)
from altmarl_ros.nodes._ros import CMD_VEL_QOS, AltmarlNode, run_node
from altmarl_ros.nodes._validate import CommandCheck, DroppedMessages, subscribe_commands

NO_GOAL = -1


class LocalAgentsNode(AltmarlNode):
    """Runs pi_l and the low-level controller for the robots in parameter `robots`."""

    DEFAULT_NAME = "local_agents"
    PARAMETERS = {**SCENARIO, **POLICY, **ROBOTS, **CONTROL_PERIOD, "command_timeout": NUMBER,
                  "odom_timeout": NUMBER, "seed": INTEGER}

    def setup(self) -> None:
        scenario = declare_scenario(self)
        self.scenario = scenario
        self.policy = declare_policy(self, scenario)
        self.robot_ids = declare_robots(self, scenario, "robots this node drives ([i] on a real robot)")
        control_period = declare_control_period(self, scenario)
        self.command_timeout_ns = int(1e9 * declare_float(
            self, "command_timeout", 3.0, "s: with no GlobalCommand for this long, stop the robots", positive=True))
        self.odom_timeout_ns = int(1e9 * declare_float(
            self, "odom_timeout", 0.5, "s: a robot whose odometry is older is stopped", positive=True))
        seed = declare_int(self, "seed", 0, "seed of the local action draws", minimum=0)
        # One stream per node and robot list, so two nodes with different robots draw differently.
        self.rng = np.random.default_rng([seed, *self.robot_ids])

        n = len(self.robot_ids)
        self.dropped = DroppedMessages(self)  # bad GlobalCommand and odometry messages, by reason
        self.odom = LatestOdometry.of_robots(self, self.robot_ids, self.dropped)
        self._cmd_pubs = [self.create_publisher(Twist, cmd_vel_topic(i), CMD_VEL_QOS) for i in self.robot_ids]
        self.goal_zones = np.full(n, NO_GOAL, dtype=np.int64)
        self.last_command = None
        self.command_received_ns = None
        self.stopped = True  # commanding zero velocity because no fresh GlobalCommand
        self.commands_received = 0
        n_sg, n_ag, n_sl, _ = self.policy.sizes
        subscribe_commands(self, CommandCheck((n_sg, n_ag, n_sl), k=self.policy.k), self.on_command, self.dropped)
        self.create_timer(control_period, self.control)
        self.get_logger().info(f"{n} robot(s), policy {self.policy.policy_id}: waiting for {GLOBAL_COMMAND_TOPIC}")

    def on_command(self, msg: GlobalCommand) -> None:
        """A new decision epoch (a checked GlobalCommand): draw every robot's local action, set its goal."""
        if msg.policy_id != self.policy.policy_id and (self.last_command is None
                                                       or self.last_command.policy_id != msg.policy_id):
            self.get_logger().warning(f"the coordinator runs policy {msg.policy_id}, this node "
                                      f"{self.policy.policy_id}: the two halves of the equilibrium differ")
        now_ns = self.get_clock().now().nanoseconds
        self.last_command = msg
        self.command_received_ns = now_ns
        self.commands_received += 1
        slots, poses = self.odom.fresh_poses(now_ns, self.odom_timeout_ns)
        self.goal_zones[:] = NO_GOAL
        if slots.size:
            ring = self.scenario.ring
            zones = zone_of_pose(poses[:, 0], poses[:, 1], ring)
            cumulative = np.cumsum(self.policy.pi_l[zones, msg.global_state], axis=1)
            draws = self.rng.random(slots.size)
            actions = np.minimum((draws[:, None] >= cumulative).sum(axis=1), cumulative.shape[1] - 1)
            self.goal_zones[slots] = target_zone(zones, actions, ring)

    def control(self) -> None:
        """Publish every robot's cmd_vel: the controller towards its goal, or zero."""
        now_ns = self.get_clock().now().nanoseconds
        # A command "from the future" means sim time jumped back (simulator restarted): stale too.
        age = None if self.command_received_ns is None else now_ns - self.command_received_ns
        stale = age is None or not 0 <= age <= self.command_timeout_ns
        if stale != self.stopped:
            self.stopped = stale
            if stale:
                self.get_logger().warning(f"no GlobalCommand for {self.command_timeout_ns / 1e9:g} s: "
                                          f"stopping {len(self.robot_ids)} robot(s)")
            else:
                self.get_logger().info("GlobalCommand received: robots moving")
        v = np.zeros(len(self.robot_ids))
        w = np.zeros(len(self.robot_ids))
        if not stale:
            slots, poses = self.odom.fresh_poses(now_ns, self.odom_timeout_ns)
            if slots.size:
                goals = self.goal_zones[slots]
                active = goals != NO_GOAL
                slots, poses, goals = slots[active], poses[active], goals[active]
            if slots.size:
                v[slots], w[slots] = steer_to_zone(poses[:, 0], poses[:, 1], poses[:, 2], goals, self.scenario.ring,
                                                   self.scenario.limits, self.scenario.controller)
        for pub, speed, turn in zip(self._cmd_pubs, v.tolist(), w.tolist()):
            pub.publish(twist_cdr(speed, turn))  # pre-serialized: a fraction of publishing a Twist object


def main(args=None):
    sys.exit(run_node(LocalAgentsNode, args))


if __name__ == "__main__":
    main()
