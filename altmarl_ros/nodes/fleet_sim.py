"""fleet_sim: the whole simulated fleet (n workers + the depot) in one node, CrazySwarm2 style.

One FleetSim (altmarl_sim.fleet) steps every robot each control period on a wall
timer (scaled by `real_time_factor`). The node is the clock of the simulated
system: it publishes /clock, and every other node runs with use_sim_time.

Robots are named by the fleet's roster (`robot_names`, or `robot_template`,
default robot_<i>); the depot is `depot`. Topics (relative): subscribes
<robot>/cmd_vel and depot/cmd_vel (geometry_msgs/Twist, or TwistStamped with
command_type twist_stamped; raw: only linear.x and angular.z are read);
publishes <robot>/odom and depot/odom (nav_msgs/Odometry, reliable, stamped
with sim time, child frame <robot>/base_link), /clock, and /tf (odometry frame
-> base_link of every robot). With odom_frames `map` odometry is ground truth in
`map`; with `per_robot` it is in <robot>/odom, whose origin is the robot's
start pose, and a latched /tf_static carries map -> <robot>/odom.
A command older than `cmd_vel_timeout` sim seconds is replaced by zero
velocity, so a robot whose controller died brakes to a stop.

Until the first GlobalCommand (`hold_until_decision`, default true) the fleet
holds still at its start: /clock runs, but no robot moves and no stall is drawn.
An offline rollout's first decision sees the start state; a simulator idling
while the graph comes up had 15-32 of 200 workers stalled by then.

Steps keep in order with the controllers (lockstep): a step is due every
control period of wall time (scaled), and it also waits, up to
`max_command_wait` control periods, until every robot that answered the last
published state has answered the new one (its cmd_vel arrived after it), as the
offline simulator applies each step's commands to that step's state. The step from
a state at a decision time (the latest GlobalCommand's stamp plus the decision
period, the shortest gap seen between two stamps, at first the scenario's epoch)
also waits for that decision and counts only commands that arrived after it, as
offline a decision's goals steer from the first step of its epoch; without this
the controllers' tick could answer the state with the old goals before the
decision arrived (a one-step lag in some epochs, depending on callback order). A
step that stops waiting uses the older commands; such robot-steps are counted
(`late_commands`, on /diagnostics), and a decision that did not come in time
(`late_decisions`). Behind schedule, the simulator slows down rather than
running overdue steps back to back.
"""
import dataclasses
import math
import sys

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rosgraph_msgs.msg import Clock as ClockMsg

from altmarl_ros.names import (CLOCK_TOPIC, COMMAND_TYPES, DEPOT, GLOBAL_COMMAND_TOPIC, MAP_FRAME, TF_STATIC_TOPIC,
                               TF_TOPIC, base_frame, cmd_vel_topic, odom_frame, odom_topic)
from altmarl_ros.nodes._cdr import odometry_cdr, odometry_frames, twist_stamped_velocity, twist_velocity
from altmarl_ros.node_parameters import NODE_PARAMETERS, ODOM_FRAME_MODES
from altmarl_ros.nodes._params import (declare_bool, declare_choice, declare_control_period, declare_float,
                                       declare_int, declare_roster, declare_scenario)
from altmarl_ros.nodes._diagnostics import ERROR, OK, WARN, Diagnostics
from altmarl_ros.nodes._ros import (CLOCK_QOS, CMD_VEL_QOS, GLOBAL_COMMAND_SUBSCRIPTION_QOS, LATCHED_QOS,
                                    ODOM_PUBLISH_QOS, AltmarlNode, run_node)
from altmarl_ros.nodes._validate import DroppedMessages, decoded

try:  # not installable from the pip ROS wheels; present on a full ROS 2 install
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # scripts/bootstrap.sh builds TFMessage where there is no wheel
    TFMessage = None


CLOCK_CHECK_SEC = 2.0
LATE_WARN_FRACTION = 0.01  # of commanded robot-steps: the controllers cannot keep up with the simulator
STEP_CHECKS_PER_PERIOD = 4  # the stepping timer's rate, per control period: how finely a step waits
# control periods a step waits for the controllers: on a loaded 2-core machine 200 robots' commands took
# longer than one period now and then (8-14% of robot-steps late with a wait of 1 period, at load ~4)
MAX_COMMAND_WAIT = 4.0
SIM_COMMAND_TYPES = COMMAND_TYPES[:2]  # velocity commands; goal-driven robots need a navigator


def _time_msg(seconds: float) -> Time:
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)


class FleetSimNode(AltmarlNode):
    """Hosts robots robot_0..robot_<n-1> and the depot; see the module docstring."""

    DEFAULT_NAME = "fleet_sim"
    PARAMETERS = NODE_PARAMETERS["fleet_sim"]

    def setup(self) -> None:
        from altmarl_sim.fleet import FleetSim
        from altmarl_sim.scenario import Timing

        scenario = declare_scenario(self)
        self.robot_names = declare_roster(self, scenario)
        n_robots = len(self.robot_names)
        seed = declare_int(self, "seed", 0, "seed of start positions, noise and stalls", minimum=0)
        control_period = declare_control_period(self, scenario)
        self.real_time_factor = declare_float(
            self, "real_time_factor", 1.0, "sim seconds per wall second; 0 = as fast as possible", minimum=0.0)
        self.cmd_vel_timeout = declare_float(
            self, "cmd_vel_timeout", 0.5, "sim s: an older cmd_vel is replaced by zero velocity", positive=True)
        self.holding = declare_bool(self, "hold_until_decision", True,
                                    "hold every robot still at its start until the first GlobalCommand")
        max_wait = declare_float(
            self, "max_command_wait", MAX_COMMAND_WAIT, "control periods (wall, scaled) a step waits for the "
            "controllers' commands on the last state before it uses older ones; 0 = never wait", minimum=0.0)
        self.publish_tf = declare_bool(self, "publish_tf", True,
                                       "publish /tf <odometry frame> -> <robot>/base_link (needs tf2_msgs)")
        self.odom_frames = declare_choice(
            self, "odom_frames", ODOM_FRAME_MODES,
            "map: odometry is ground truth in the map frame; per_robot: in <robot>/odom, whose origin is the "
            "robot's start pose (as wheel odometry), with map -> <robot>/odom on /tf_static")
        self.command_type = declare_choice(self, "command_type", SIM_COMMAND_TYPES,
                                           "what the simulated robots take on <robot>/cmd_vel")
        if control_period != scenario.timing.control_period:
            # The simulator integrates at the scenario's period; a different one is a different world.
            scenario = dataclasses.replace(scenario, timing=Timing(control_period, scenario.timing.decision_epoch))
        self.scenario = scenario
        self.sim = FleetSim(scenario, n=n_robots, seed=seed)
        n = self.sim.n

        # Latest command of every robot (depot last), the sim time it arrived and its place in the arrival order.
        self.commands = np.zeros((n + 1, 2))
        self.command_time = np.full(n + 1, -math.inf)
        self.command_order = np.zeros(n + 1, dtype=np.int64)
        self._arrivals = 0  # cmd_vel and GlobalCommand messages received, the order's counter
        self._decision_order = 0  # the counter when the latest GlobalCommand arrived
        self._decision_ns = None  # its stamp (sim time, ns)
        self._decision_period_ns = int(round(1e9 * scenario.timing.decision_epoch))
        self.late_decisions = 0
        self.dropped = DroppedMessages(self)  # bad cmd_vel messages, by reason
        names = self.robot_names + [DEPOT]
        command_msg, self._read_command = ((Twist, twist_velocity) if self.command_type == "twist"
                                           else (TwistStamped, twist_stamped_velocity))
        self._command_type_name = command_msg.__name__
        self._cmd_subs = [self.create_subscription(command_msg, cmd_vel_topic(name),
                                                   self._command_into(i, cmd_vel_topic(name)),
                                                   CMD_VEL_QOS, raw=True)
                          for i, name in enumerate(names)]
        self._odom_pubs = [self.create_publisher(Odometry, odom_topic(name), ODOM_PUBLISH_QOS) for name in names]
        # Odometry frames: each robot's origin in the map (its start pose, or the map's own origin).
        start = np.array(self.sim.poses, dtype=np.float64)
        self.odom_origin = start if self.odom_frames == "per_robot" else np.zeros_like(start)
        parents = [odom_frame(name) if self.odom_frames == "per_robot" else MAP_FRAME for name in names]
        children = [base_frame(name) for name in names]
        # Odometry goes out pre-serialized (_cdr.odometry_cdr): ~4 us a robot instead of ~20.
        self._odom_frames = [odometry_frames(parent, child) for parent, child in zip(parents, children)]
        self._clock_pub = self.create_publisher(ClockMsg, CLOCK_TOPIC, CLOCK_QOS)
        self._tf_pub, self._tf_msg = None, None
        if self.publish_tf and TFMessage is not None:
            self._tf_pub = self.create_publisher(TFMessage, TF_TOPIC, 100)
            self._tf_msg = TFMessage(transforms=[TransformStamped(child_frame_id=child) for child in children])
            for transform, parent in zip(self._tf_msg.transforms, parents):
                transform.header.frame_id = parent
            if self.odom_frames == "per_robot":
                statics = []
                for name, (x, y, yaw) in zip(names, self.odom_origin.tolist()):
                    static = TransformStamped(child_frame_id=odom_frame(name))
                    static.header.frame_id = MAP_FRAME
                    static.header.stamp = _time_msg(self.sim.time)
                    static.transform.translation.x, static.transform.translation.y = x, y
                    static.transform.rotation.z, static.transform.rotation.w = math.sin(yaw / 2), math.cos(yaw / 2)
                    statics.append(static)
                self._tf_static_pub = self.create_publisher(TFMessage, TF_STATIC_TOPIC, LATCHED_QOS)
                self._tf_static_pub.publish(TFMessage(transforms=statics))
        self.steps = 0
        self.late_commands = 0  # robot-steps that used a command older than the last state (see above)
        self.commanded_steps = 0  # robot-steps with a fresh command
        self._step_listeners = []
        self._publish_state()
        # The sim is the clock source, so it steps on wall (steady) time, never on /clock.
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._period_ns = int(1e9 * control_period / self.real_time_factor) if self.real_time_factor > 0 else 0
        # unpaced: wait up to max_command_wait control periods of wall time all the same
        self._max_wait_ns = int(max_wait * (self._period_ns or 1e9 * control_period))
        self._due_ns = self._wall.now().nanoseconds
        self._awaited = np.zeros(n + 1, dtype=bool)  # robots whose controller answered the last state
        self._timer = self.create_timer(self._period_ns / 1e9 / STEP_CHECKS_PER_PERIOD, self._on_timer,
                                        clock=self._wall)
        self.diagnostics = Diagnostics(self, "fleet simulator", self.diagnostic_status, self.dropped)
        # Decisions end the hold and order the steps; their content is the local agents' business.
        self.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, self._on_command,
                                 GLOBAL_COMMAND_SUBSCRIPTION_QOS, raw=True)
        self.clock_clash = False  # another /clock publisher was seen on this domain
        self.create_timer(CLOCK_CHECK_SEC, self._check_single_clock, clock=self._wall)
        self.get_logger().info(
            f"scenario {scenario.name!r}: {n} robots + depot, control period {control_period:g} s, "
            f"real-time factor {'max' if self._period_ns == 0 else self.real_time_factor}, "
            f"/tf {'on' if self._tf_pub else 'off (tf2_msgs not installed)' if self.publish_tf else 'off'}")

    def _check_single_clock(self) -> None:
        """Two simulators on one ROS domain would feed every node two interleaved clocks."""
        if not self.clock_clash and self.count_publishers(CLOCK_TOPIC) > 1:
            self.clock_clash = True
            self.get_logger().error(f"another node also publishes {CLOCK_TOPIC} on ROS_DOMAIN_ID "
                                    f"{self.context.get_domain_id()}: sim time jumps between the two; give each "
                                    f"simulated fleet its own ROS_DOMAIN_ID")

    def diagnostic_status(self):
        """/diagnostics: steps, sim time, late commands (nodes/_diagnostics)."""
        late = self.late_commands / max(self.commanded_steps, 1)
        values = {"steps": self.steps, "sim_time": f"{self.sim.time:.3f}", "robots": self.sim.n,
                  "late_commands": self.late_commands, "late_command_fraction": f"{late:.4f}",
                  "late_decisions": self.late_decisions}
        if self.clock_clash:
            return ERROR, f"another node publishes {CLOCK_TOPIC} on this ROS domain", values
        return (WARN if late > LATE_WARN_FRACTION else OK), "stepping", values

    def _command_into(self, index: int, topic: str):
        commands, command_time = self.commands, self.command_time

        def store(data: bytes) -> None:
            try:
                v, w = self._read_command(data)
            except Exception:  # noqa: BLE001 - truncated or foreign bytes: never let a message kill the node
                self.dropped.drop(self._command_type_name, "undecodable", topic)
                return
            if math.isfinite(v) and math.isfinite(w):
                commands[index] = v, w
                command_time[index] = self.sim.time
                self._arrivals += 1
                self.command_order[index] = self._arrivals
            else:
                self.dropped.drop(self._command_type_name, "not finite", topic)
        return store

    @property
    def rejected_commands(self) -> int:
        """cmd_vel messages dropped (undecodable or not finite)."""
        return self.dropped.total

    def _answered(self) -> np.ndarray:
        """Robots whose latest command was sent after the state now published (sim time is its stamp) and
        after the latest decision."""
        return (self.command_time >= self.sim.time) & (self.command_order > self._decision_order)

    def _decision_due(self) -> bool:
        """The state now published is at a decision time whose GlobalCommand has not arrived yet."""
        if self.holding or self._decision_ns is None:
            return False
        half_step = 5e8 * self.sim.control_period
        return round(self.sim.time * 1e9) >= self._decision_ns + self._decision_period_ns - half_step

    def _on_timer(self) -> None:
        """Step when due, the decision due at this state (if any) has come, and every awaited controller
        answered, or when waiting longer would exceed max_command_wait; then the next step is one period
        later, or at once when unpaced (see above)."""
        now_ns = self._wall.now().nanoseconds
        if now_ns < self._due_ns:
            return
        undecided = self._decision_due()
        waiting = self._awaited & ~self._answered()
        if (undecided or waiting.any()) and now_ns < self._due_ns + self._max_wait_ns:
            return
        self.late_decisions += int(undecided)
        self.late_commands += int(np.count_nonzero(waiting))
        self.step()
        self._due_ns = max(self._due_ns + self._period_ns, now_ns)

    def _on_command(self, data: bytes) -> None:
        """A decision: the first ends the hold; each orders the steps around it (see the module docstring)."""
        msg = decoded(data, GlobalCommand, self.dropped)
        if msg is None:
            return
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        # A stamp ahead of this fleet's time is not a decision on its states (another run's, latched): it ends
        # the hold but orders nothing.
        if stamp_ns <= round(self.sim.time * 1e9) + 5e8 * self.sim.control_period:
            if self._decision_ns is not None and stamp_ns > self._decision_ns:
                self._decision_period_ns = min(self._decision_period_ns, stamp_ns - self._decision_ns)
            self._decision_ns = stamp_ns
            self._arrivals += 1
            self._decision_order = self._arrivals
        if self.holding:
            self.holding = False
            self.get_logger().info(f"first GlobalCommand at sim time {self.sim.time:.2f} s: the fleet starts")

    def step(self) -> None:
        """One control period: apply fresh commands (stale ones -> 0), integrate, publish (hold: time only)."""
        if self.holding:
            self.sim.hold_control()
        else:
            self._step_robots()
        self._publish_state()
        for listener in self._step_listeners:
            listener(self.sim)

    def _step_robots(self) -> None:
        answered = self._answered()
        stale = self.sim.time - self.command_time > self.cmd_vel_timeout
        self.commanded_steps += int(np.count_nonzero(~stale))
        v = np.where(stale, 0.0, self.commands[:, 0])
        w = np.where(stale, 0.0, self.commands[:, 1])
        self.sim.set_commands(v, w)
        self.sim.step_control()
        self.steps += 1
        self._awaited = answered

    def add_step_listener(self, listener) -> None:
        """Call `listener(fleet_sim)` after every control step (in-process monitors: welfare, tests)."""
        self._step_listeners.append(listener)

    def odometry_poses(self) -> np.ndarray:
        """Every robot's pose (depot last) in its odometry frame: the map pose seen from the frame's origin."""
        poses, origin = self.sim.poses, self.odom_origin
        dx, dy = poses[:, 0] - origin[:, 0], poses[:, 1] - origin[:, 1]
        c, s = np.cos(origin[:, 2]), np.sin(origin[:, 2])
        return np.column_stack((c * dx + s * dy, -s * dx + c * dy, poses[:, 2] - origin[:, 2]))

    def _publish_state(self) -> None:
        stamp = _time_msg(self.sim.time)
        poses, velocities = self.odometry_poses(), self.sim.velocities
        xs, ys = poses[:, 0].tolist(), poses[:, 1].tolist()
        qz, qw = np.sin(0.5 * poses[:, 2]).tolist(), np.cos(0.5 * poses[:, 2]).tolist()
        vs, ws = velocities[:, 0].tolist(), velocities[:, 1].tolist()
        sec, nanosec = stamp.sec, stamp.nanosec
        for i, (frames, pub) in enumerate(zip(self._odom_frames, self._odom_pubs)):
            pub.publish(odometry_cdr(frames, sec, nanosec, xs[i], ys[i], qz[i], qw[i], vs[i], ws[i]))
        if self._tf_pub is not None:
            for i, transform in enumerate(self._tf_msg.transforms):
                transform.header.stamp = stamp
                transform.transform.translation.x, transform.transform.translation.y = xs[i], ys[i]
                transform.transform.rotation.z, transform.transform.rotation.w = qz[i], qw[i]
            self._tf_pub.publish(self._tf_msg)
        # /clock last: a node whose timer fires at this time has already been handed this step's odometry.
        self._clock_pub.publish(ClockMsg(clock=stamp))


def main(args=None):
    sys.exit(run_node(FleetSimNode, args))


if __name__ == "__main__":
    main()
