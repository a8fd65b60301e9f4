"""local_agents: the local policy pi_l for one robot (a real fleet) or many (the simulated fleet).

At each new GlobalCommand every hosted robot with a fresh map-frame pose
(`pose_source`, nodes/_poses.py) takes its zone s_i (altmarl_sim.ring), draws
a_i ~ pi_l(. | s_i, s_g) (seeded), and heads for the zone that action names
(stay / next / previous). With command_type twist / twist_stamped it publishes
<robot>/cmd_vel every control period from the ring-following controller, within
the scenario's limits, and once more as soon as a GlobalCommand arrives, so that
the new goals steer from the epoch's first control step (as in the simulator's
epochs), not one control period late; with goal_pose it publishes the zone's
centre on <robot>/goal_pose once per decision and the robot's navigator drives. The
operator's latched altmarl/stopped stops every robot at once, until resumed. If the last GlobalCommand arrived more than
`command_timeout` ago (coordinator lost), every robot is commanded to stop
(logged once) until commands return. A robot without fresh odometry is
commanded to stop too.
"""
import math
import sys

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from rclpy.time import Time
from std_msgs.msg import Bool

from altmarl_ros.names import (COMMAND_TYPES, GLOBAL_COMMAND_TOPIC, STOPPED_TOPIC, base_frame, cmd_vel_topic,
                               goal_topic)
from altmarl_ros.nodes._cdr import twist_cdr
from altmarl_ros.nodes._params import (COMMAND_TYPE, CONTROL_PERIOD, INTEGER, NUMBER, POLICY, POSE_SOURCE, ROBOTS,
                                       SCENARIO, declare_choice, declare_control_period, declare_float, declare_int,
                                       declare_policy, declare_robots, declare_scenario)
from altmarl_ros.nodes._poses import declare_pose_source
from altmarl_ros.nodes._ros import CMD_VEL_QOS, GOAL_QOS, LATCHED_QOS, AltmarlNode, run_node
from altmarl_sim.ring import steer_to_zone, target_zone, zone_centre, zone_of_pose
from altmarl_ros.nodes._validate import CommandCheck, DroppedMessages, subscribe_commands

NO_GOAL = -1


class LocalAgentsNode(AltmarlNode):
    """Runs pi_l and the low-level controller for the robots in parameter `robots`."""

    DEFAULT_NAME = "local_agents"
    PARAMETERS = {**SCENARIO, **POLICY, **ROBOTS, **CONTROL_PERIOD, **POSE_SOURCE, **COMMAND_TYPE,
                  "command_timeout": NUMBER, "odom_timeout": NUMBER, "seed": INTEGER}

    def setup(self) -> None:
        scenario = declare_scenario(self)
        self.scenario = scenario
        self.policy = declare_policy(self, scenario)
        self.robot_ids, self.robot_names = declare_robots(self, scenario,
                                                          "robots this node drives ([i] on a real robot)")
        self.command_type = declare_choice(self, "command_type", COMMAND_TYPES,
                                           "twist / twist_stamped on <robot>/cmd_vel, or goal_pose: a "
                                           "geometry_msgs/PoseStamped on <robot>/goal_pose (Nav2) per decision")
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
        self.poses = declare_pose_source(self, self.robot_names, self.dropped)
        if self.command_type == "goal_pose":
            self._goal_pubs = [self.create_publisher(PoseStamped, goal_topic(name), GOAL_QOS)
                               for name in self.robot_names]
        else:
            msg_type = Twist if self.command_type == "twist" else TwistStamped
            self._cmd_pubs = [self.create_publisher(msg_type, cmd_vel_topic(name), CMD_VEL_QOS)
                              for name in self.robot_names]
            self._stamped = [TwistStamped() for _ in self.robot_names]
            for msg, name in zip(self._stamped, self.robot_names):
                msg.header.frame_id = base_frame(name)
        self.goal_zones = np.full(n, NO_GOAL, dtype=np.int64)
        self.last_command = None
        self.command_received_ns = None
        self.stopped = True  # commanding zero velocity because no fresh GlobalCommand
        self.halted = False  # stopped by the operator (altmarl/stopped), until resumed
        self.commands_received = 0
        n_sg, n_ag, n_sl, _ = self.policy.sizes
        subscribe_commands(self, CommandCheck((n_sg, n_ag, n_sl), k=self.policy.k), self.on_command, self.dropped)
        self.create_subscription(Bool, STOPPED_TOPIC, self.on_stopped, LATCHED_QOS)
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
        slots, poses = self.poses.fresh_poses(now_ns, self.odom_timeout_ns)
        self.goal_zones[:] = NO_GOAL
        if slots.size:
            ring = self.scenario.ring
            zones = zone_of_pose(poses[:, 0], poses[:, 1], ring)
            cumulative = np.cumsum(self.policy.pi_l[zones, msg.global_state], axis=1)
            draws = self.rng.random(slots.size)
            actions = np.minimum((draws[:, None] >= cumulative).sum(axis=1), cumulative.shape[1] - 1)
            self.goal_zones[slots] = target_zone(zones, actions, ring)
        if self.command_type != "goal_pose":
            # cmd_vel towards the new goals now: this tick's control() may already have run with the old
            # ones, and the decision's goals act from the first control step of its epoch, as offline.
            self.control()
        elif not self.halted:
            self.publish_goals(now_ns)

    def on_stopped(self, msg: Bool) -> None:
        """The operator's fleet-wide stop (latched altmarl/stopped): stop now, not at the next tick."""
        if msg.data != self.halted:
            self.halted = msg.data
            self.get_logger().warning(f"fleet {'stopped' if msg.data else 'resumed'} by the operator")
            if self.halted:
                self.stop_robots()

    def publish_goals(self, now_ns: int) -> None:
        """goal_pose robots: the centre of each robot's goal zone, in the map frame."""
        centres = zone_centre(np.maximum(self.goal_zones, 0), self.scenario.ring)
        stamp = Time(nanoseconds=now_ns).to_msg()
        for slot in np.flatnonzero(self.goal_zones != NO_GOAL):
            self._publish_goal(slot, stamp, float(centres[0][slot]), float(centres[1][slot]), 0.0)

    def _publish_goal(self, slot: int, stamp, x: float, y: float, yaw: float) -> None:
        goal = PoseStamped()
        goal.header.stamp, goal.header.frame_id = stamp, self.poses.map_frame
        goal.pose.position.x, goal.pose.position.y = x, y
        goal.pose.orientation.z, goal.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        self._goal_pubs[slot].publish(goal)

    def stop_robots(self) -> None:
        """Zero velocity to every robot; goal_pose robots get their current pose as the goal (hold)."""
        if self.command_type == "goal_pose":
            now_ns = self.get_clock().now().nanoseconds
            slots, poses = self.poses.fresh_poses(now_ns, self.odom_timeout_ns)
            stamp = Time(nanoseconds=now_ns).to_msg()
            for slot, (x, y, yaw) in zip(slots.tolist(), poses.tolist()):
                self._publish_goal(slot, stamp, x, y, yaw)
        else:
            self.publish_velocities(np.zeros(len(self.robot_ids)), np.zeros(len(self.robot_ids)))

    def _staleness(self, age) -> str:
        """Why the last GlobalCommand no longer counts, with its age (what an operator checks first)."""
        timeout = f"command_timeout {self.command_timeout_ns / 1e9:g} s"
        if age is None:
            return "no GlobalCommand yet"
        if age < 0:
            return f"the last GlobalCommand is {-age / 1e9:.2f} s in the future (sim time went back; {timeout})"
        return f"the last GlobalCommand is {age / 1e9:.2f} s old ({timeout})"

    def control(self) -> None:
        """Publish every robot's cmd_vel: the controller towards its goal, or zero."""
        now_ns = self.get_clock().now().nanoseconds
        # A command "from the future" means sim time jumped back (simulator restarted): stale too.
        age = None if self.command_received_ns is None else now_ns - self.command_received_ns
        stale = age is None or not 0 <= age <= self.command_timeout_ns
        if stale != self.stopped:
            self.stopped = stale
            if stale:
                self.get_logger().warning(f"{self._staleness(age)}: stopping {len(self.robot_ids)} robot(s)")
            else:
                self.get_logger().info("GlobalCommand received: robots moving")
        if self.command_type == "goal_pose":
            return  # the robots' navigators drive; goals go out per decision
        v = np.zeros(len(self.robot_ids))
        w = np.zeros(len(self.robot_ids))
        if not stale and not self.halted:
            slots, poses = self.poses.fresh_poses(now_ns, self.odom_timeout_ns)
            if slots.size:
                goals = self.goal_zones[slots]
                active = goals != NO_GOAL
                slots, poses, goals = slots[active], poses[active], goals[active]
            if slots.size:
                v[slots], w[slots] = steer_to_zone(poses[:, 0], poses[:, 1], poses[:, 2], goals, self.scenario.ring,
                                                   self.scenario.limits, self.scenario.controller)
        self.publish_velocities(v, w)

    def publish_velocities(self, v: np.ndarray, w: np.ndarray) -> None:
        if self.command_type == "twist":
            for pub, speed, turn in zip(self._cmd_pubs, v.tolist(), w.tolist()):
                pub.publish(twist_cdr(speed, turn))  # pre-serialized: a fraction of publishing a Twist object
            return
        stamp = self.get_clock().now().to_msg()
        for pub, msg, speed, turn in zip(self._cmd_pubs, self._stamped, v.tolist(), w.tolist()):
            msg.header.stamp = stamp
            msg.twist.linear.x, msg.twist.angular.z = speed, turn
            pub.publish(msg)


def main(args=None):
    sys.exit(run_node(LocalAgentsNode, args))


if __name__ == "__main__":
    main()
