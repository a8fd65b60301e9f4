"""local_agents: the local policy pi_l for one robot (a real fleet) or many (the simulated fleet).

At each new GlobalCommand every hosted robot with a fresh map-frame pose
(`pose_source`, nodes/_poses.py) takes its zone s_i (altmarl_sim.ring), draws
a_i ~ pi_l(. | s_i, s_g) (seeded), and heads for the zone that action names
(stay / next / previous). With command_type twist / twist_stamped it publishes
<robot>/cmd_vel every control period from the ring-following controller, within
the scenario's limits, and once more as soon as a GlobalCommand arrives, so that
the new goals steer from the epoch's first control step (as in the simulator's
epochs), not one control period late; with goal_pose it publishes the goal zone's
centre on <robot>/goal_pose when a robot's goal changes, and the robot's navigator
drives (nodes/_goals.py); navigate_to_pose sends the same goal to Nav2's
NavigateToPose action on <robot>/navigate_to_pose, one goal in flight per robot
(nodes/_navigate.py). The operator's latched altmarl/stopped stops every robot
at once, until resumed. If the last GlobalCommand arrived more than
`command_timeout` ago (coordinator lost), every robot is commanded to stop
(logged once) until commands return. A robot without fresh odometry is
commanded to stop too. Stopping is a zero cmd_vel, with goal_pose a goal at
the robot's last known pose (hold), with navigate_to_pose a cancel of the goal
in flight, in every one of these cases and at shutdown.
The node also answers the coordinator's state requests for its robots, and
announces which of them are present (fresh pose) when that changes and, empty,
at shutdown (nodes/_sampling.StateAnswers): under the coordinator's `request`
sampling, these are the only robot states it receives.
"""
import sys

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from geometry_msgs.msg import Twist, TwistStamped
from std_msgs.msg import Bool

from altmarl_ros.names import (COMMAND_TYPES, GLOBAL_COMMAND_TOPIC, GOAL_COMMAND_TYPES, STOPPED_TOPIC, base_frame,
                               cmd_vel_topic)
from altmarl_ros.nodes._cdr import twist_cdr
from altmarl_ros.node_parameters import NODE_PARAMETERS
from altmarl_ros.nodes._params import (declare_choice, declare_control_period, declare_float, declare_int,
                                       declare_policy, declare_robots, declare_scenario)
from altmarl_ros.nodes._diagnostics import OK, WARN, Diagnostics
from altmarl_ros.nodes._senders import goal_sender
from altmarl_ros.nodes._poses import declare_pose_source
from altmarl_ros.nodes._ros import CMD_VEL_QOS, LATCHED_QOS, AltmarlNode, run_node
from altmarl_ros.nodes._sampling import StateAnswers
from altmarl_sim.ring import steer_to_zone, target_zone, zone_centre, zone_of_pose
from altmarl_sim.rollout import decider_of
from altmarl_ros.nodes._validate import CommandCheck, CommandFreshness, DroppedMessages, subscribe_commands

NO_GOAL = -1


class LocalAgentsNode(AltmarlNode):
    """Runs pi_l and the low-level controller for the robots in parameter `robots`."""

    DEFAULT_NAME = "local_agents"
    PARAMETERS = NODE_PARAMETERS["local_agents"]

    def setup(self) -> None:
        scenario = declare_scenario(self)
        self.scenario = scenario
        self.policy = declare_policy(self, scenario)
        self.decider = decider_of(self.policy, scenario)  # pi_l's draw, as the offline rollouts make it
        self.robot_ids, self.robot_names = declare_robots(self, scenario,
                                                          "robots this node drives ([i] on a real robot)")
        self.command_type = declare_choice(self, "command_type", COMMAND_TYPES,
                                           "twist / twist_stamped on <robot>/cmd_vel; goal_pose: a "
                                           "geometry_msgs/PoseStamped on <robot>/goal_pose (Nav2) per decision; "
                                           "navigate_to_pose: that goal through Nav2's NavigateToPose action on "
                                           "<robot>/navigate_to_pose")
        self.goal_driven = self.command_type in GOAL_COMMAND_TYPES
        control_period = declare_control_period(self, scenario)
        self.command_timeout_ns = int(1e9 * declare_float(
            self, "command_timeout", 3.0, "s: with no GlobalCommand for this long, stop the robots", positive=True))
        skew_ns = int(1e9 * declare_float(
            self, "max_clock_skew", 0.5, "s: how far the coordinator's clock may differ from this node's; a "
            "GlobalCommand stamped earlier than command_timeout + this, or later than this, is dropped",
            minimum=0.0))
        self.freshness = CommandFreshness(self.command_timeout_ns, skew_ns)
        self.odom_timeout_ns = int(1e9 * declare_float(
            self, "odom_timeout", 0.5, "s: a robot whose odometry is older is stopped", positive=True))
        seed = declare_int(self, "seed", 0, "seed of the local action draws", minimum=0)
        # One stream per node and robot list, so two nodes with different robots draw differently.
        self.rng = np.random.default_rng([seed, *self.robot_ids])

        n = len(self.robot_ids)
        self.dropped = DroppedMessages(self)  # bad GlobalCommand and odometry messages, by reason
        self.poses = declare_pose_source(self, self.robot_names, self.dropped)
        if self.goal_driven:
            self.goals = goal_sender(self, self.robot_names, self.poses.map_frame, self.command_type)
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
        self.answers = StateAnswers(self, self.robot_ids, self.poses, scenario.ring, self.odom_timeout_ns, skew_ns,
                                    self.dropped)
        n_sg, n_ag, n_sl, _ = scenario.sizes  # the policy's: it was checked against the scenario
        subscribe_commands(self, CommandCheck((n_sg, n_ag, n_sl), k=self.policy.k), self.on_command, self.dropped)
        self.create_subscription(Bool, STOPPED_TOPIC, self.on_stopped, LATCHED_QOS)
        self.create_timer(control_period, self.control)
        self.diagnostics = Diagnostics(self, "local agents", self.diagnostic_status, self.dropped)
        self.diagnostics.hardware_id = self.policy.policy_id
        self.get_logger().info(f"{n} robot(s), policy {self.policy.policy_id}: waiting for {GLOBAL_COMMAND_TOPIC}")

    def on_command(self, msg: GlobalCommand) -> None:
        """A new decision epoch (a checked GlobalCommand): draw every robot's local action, set its goal."""
        now_ns = self.get_clock().now().nanoseconds
        problem = self.freshness.problem(msg, now_ns)
        if problem is not None:  # a replay, a stale or a future command: never moves a robot
            self.dropped.drop("GlobalCommand", *problem)
            return
        if msg.policy_id != self.policy.policy_id and (self.last_command is None
                                                       or self.last_command.policy_id != msg.policy_id):
            self.get_logger().warning(f"the coordinator runs policy {msg.policy_id}, this node "
                                      f"{self.policy.policy_id}: the two halves of the equilibrium differ")
        self.freshness.accept(msg)
        self.last_command = msg
        self.command_received_ns = now_ns
        self.commands_received += 1
        self.goal_zones[:] = NO_GOAL
        # Draw the goals and command towards them now: this tick's control() may already have run with the
        # old ones, and the decision's goals act from the first control step of its epoch, as offline.
        self.control()

    def draw_goals(self, slots: np.ndarray, poses: np.ndarray) -> None:
        """Draw a_i ~ pi_l(. | s_i, s_g) for the robots in `slots` still without a goal this epoch, from
        their poses now: at the decision, or later in the epoch when a robot's first fresh pose arrives
        (a robot whose odometry was late still acts on this decision, as every worker does offline)."""
        todo = self.goal_zones[slots] == NO_GOAL
        if self.last_command is None or not todo.any():
            return
        slots, poses = slots[todo], poses[todo]
        ring = self.scenario.ring
        zones = zone_of_pose(poses[:, 0], poses[:, 1], ring)
        actions = self.decider.local_actions(zones, self.last_command.global_state, self.rng.random(slots.size),
                                             poses)
        self.goal_zones[slots] = target_zone(zones, actions, ring)

    def on_stopped(self, msg: Bool) -> None:
        """The operator's fleet-wide stop (latched altmarl/stopped): stop now, not at the next tick."""
        if msg.data != self.halted:
            self.halted = msg.data
            self.get_logger().warning(f"fleet {'stopped' if msg.data else 'resumed'} by the operator")
            if self.halted:
                self.stop_robots()

    def stop_robots(self) -> None:
        """Zero velocity to every robot; goal_pose robots that were sent a goal hold at their last pose,
        navigate_to_pose robots have their goal in flight cancelled."""
        if self.goal_driven:
            self.goals.hold_all(self.poses.pose)
        else:
            self.publish_velocities(np.zeros(len(self.robot_ids)), np.zeros(len(self.robot_ids)))

    def _staleness(self, age) -> str:
        """Why the last GlobalCommand no longer counts, with its age (what an operator checks first)."""
        timeout = f"command_timeout {self.command_timeout_ns / 1e9:g} s"
        if age is None:
            return "no GlobalCommand yet"
        if age < 0:
            return f"the last GlobalCommand is {-age / 1e9:.2f} s in the future (sim time went back; {timeout})"
        if age <= self.command_timeout_ns:  # the stamp rule: it was already old when it came
            by_stamp = self.freshness.problem(self.last_command, self.get_clock().now().nanoseconds,
                                              check_epoch=False)
            return f"the last GlobalCommand {by_stamp[1] if by_stamp else 'is stale'} (arrived {age / 1e9:.2f} s ago)"
        return f"the last GlobalCommand is {age / 1e9:.2f} s old ({timeout})"

    def control(self) -> None:
        """Command every robot: cmd_vel from the controller towards its goal (goal-driven: its goal when it
        changed), or zero (a hold) when stale, stopped by the operator, or without fresh odometry."""
        now_ns = self.get_clock().now().nanoseconds
        self.answers.update_membership(now_ns)
        # A command "from the future" means sim time jumped back (simulator restarted): stale too. The stamp
        # counts as well as the arrival: a command that was already old when it came stops the robots sooner.
        age = None if self.command_received_ns is None else now_ns - self.command_received_ns
        stale = age is None or not 0 <= age <= self.command_timeout_ns or \
            self.freshness.problem(self.last_command, now_ns, check_epoch=False) is not None
        if stale != self.stopped:
            self.stopped = stale
            if stale:
                self.get_logger().warning(f"{self._staleness(age)}: stopping {len(self.robot_ids)} robot(s)")
            else:
                self.get_logger().info("GlobalCommand received: robots moving")
        slots, poses = np.zeros(0, np.int64), np.zeros((0, 3))
        if not stale and not self.halted:
            slots, poses = self.poses.fresh_poses(now_ns, self.odom_timeout_ns)
            self.draw_goals(slots, poses)
            active = self.goal_zones[slots] != NO_GOAL
            slots, poses = slots[active], poses[active]
        goals = self.goal_zones[slots]
        if self.goal_driven:
            self.update_goals(slots, poses, goals)
            return
        v = np.zeros(len(self.robot_ids))
        w = np.zeros(len(self.robot_ids))
        if slots.size:
            v[slots], w[slots] = steer_to_zone(poses[:, 0], poses[:, 1], poses[:, 2], goals, self.scenario.ring,
                                               self.scenario.limits, self.scenario.controller)
        self.publish_velocities(v, w)

    def diagnostic_status(self):
        """/diagnostics (nodes/_diagnostics): why the robots are stopped, if they are, and what was received."""
        if self.halted:
            level, message = WARN, "stopped by the operator (altmarl/stopped)"
        elif self.stopped:
            age = None if self.command_received_ns is None else self.get_clock().now().nanoseconds - \
                self.command_received_ns
            level, message = WARN, f"robots stopped: {self._staleness(age)}"
        else:
            level, message = OK, "driving"
        values = {"robots": len(self.robot_ids), "command_type": self.command_type,
                  "commands_received": self.commands_received, "stopped": self.stopped or self.halted,
                  "present": len(self.answers.present), "states_reported": self.answers.answered,
                  "policy_id": self.policy.policy_id}
        if self.goal_driven:
            values.update(self.goals.status())
            absent = values.get("navigators_absent", 0)
            if absent and level == OK:
                level, message = WARN, f"driving; {absent} robot(s) without a NavigateToPose server (not waited for)"
        return level, message, values

    def destroy_node(self):
        """Leave the fleet cleanly (the coordinator stops drawing these robots at once), then stop them."""
        if self._set_up and self.context.ok():
            try:
                self.answers.leave()
            except Exception as err:  # never block shutdown
                self.get_logger().error(f"could not announce leaving the fleet: {err}")
        return super().destroy_node()

    def update_goals(self, slots: np.ndarray, poses: np.ndarray, goals: np.ndarray) -> None:
        """Goal-driven: the robots in `slots` drive to their goal zones (poses: theirs now); every other robot
        holds (stale command, stopped, no fresh pose, no goal)."""
        centres = np.column_stack(zone_centre(goals, self.scenario.ring))
        for slot, zone, centre, pose in zip(slots.tolist(), goals.tolist(), centres, poses):
            self.goals.drive(slot, zone, centre, pose)
        self.goals.hold_all(self.poses.pose, keep=set(slots.tolist()))

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
