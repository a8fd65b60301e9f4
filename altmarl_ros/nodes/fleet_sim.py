"""fleet_sim: the whole simulated fleet (n workers + the depot) in one node, CrazySwarm2 style.

One FleetSim (altmarl_sim.fleet) steps every robot each control period on a wall
timer (scaled by `real_time_factor`). The node is the clock of the simulated
system: it publishes /clock, and every other node runs with use_sim_time.

Topics (relative): subscribes robot_<i>/cmd_vel and depot/cmd_vel
(geometry_msgs/Twist, raw: only linear.x and angular.z are read); publishes
robot_<i>/odom and depot/odom (nav_msgs/Odometry, sensor-data QoS, frame `odom`
-> `robot_<i>/base_link` / `depot/base_link`, stamped with sim time), /clock,
and /tf (odom -> base_link of every robot) plus a latched /tf_static
map -> odom identity, only when tf2_msgs is installed (it is not among the
pip ROS wheels).
A command older than `cmd_vel_timeout` sim seconds is replaced by zero
velocity, so a robot whose controller died brakes to a stop.
"""
import dataclasses
import math
import sys

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rosgraph_msgs.msg import Clock as ClockMsg

from altmarl_ros.nodes._cdr import odometry_cdr, odometry_frames, twist_velocity
from altmarl_ros.nodes._params import (declare_bool, declare_control_period, declare_float, declare_int,
                                       declare_scenario)
from altmarl_ros.nodes._ros import (CLOCK_QOS, CLOCK_TOPIC, CMD_VEL_QOS, DEPOT_BASE_FRAME, DEPOT_CMD_VEL_TOPIC,
                                    DEPOT_ODOM_TOPIC, LATCHED_QOS, MAP_FRAME, ODOM_FRAME, ODOM_PUBLISH_QOS,
                                    AltmarlNode, base_frame,
                                    cmd_vel_topic, odom_topic, run_node)

try:  # not installable from the pip ROS wheels; present on a full ROS 2 install
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None


CLOCK_CHECK_SEC = 2.0


def _time_msg(seconds: float) -> Time:
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)


class FleetSimNode(AltmarlNode):
    """Hosts robots robot_0..robot_<n-1> and the depot; see the module docstring."""

    DEFAULT_NAME = "fleet_sim"

    def setup(self) -> None:
        from altmarl_sim.fleet import FleetSim
        from altmarl_sim.scenario import Timing

        scenario = declare_scenario(self)
        n_robots = declare_int(self, "n_robots", scenario.workers,
                               "worker robots, ids 0..n_robots-1 (default: the scenario's fleet.workers)",
                               minimum=1)
        seed = declare_int(self, "seed", 0, "seed of start positions, noise and stalls", minimum=0)
        control_period = declare_control_period(self, scenario)
        self.real_time_factor = declare_float(
            self, "real_time_factor", 1.0, "sim seconds per wall second; 0 = as fast as possible", minimum=0.0)
        self.cmd_vel_timeout = declare_float(
            self, "cmd_vel_timeout", 0.5, "sim s: an older cmd_vel is replaced by zero velocity", positive=True)
        self.publish_tf = declare_bool(self, "publish_tf", True,
                                       "publish /tf odom -> robot_<i>/base_link (needs tf2_msgs)")
        if control_period != scenario.timing.control_period:
            # The simulator integrates at the scenario's period; a different one is a different world.
            scenario = dataclasses.replace(scenario, timing=Timing(control_period, scenario.timing.decision_epoch))
        self.scenario = scenario
        self.sim = FleetSim(scenario, n=n_robots, seed=seed)
        n = self.sim.n

        # Latest command of every robot (depot last) and the sim time it arrived.
        self.commands = np.zeros((n + 1, 2))
        self.command_time = np.full(n + 1, -math.inf)
        self.rejected_commands = 0
        topics = [cmd_vel_topic(i) for i in range(n)] + [DEPOT_CMD_VEL_TOPIC]
        self._cmd_subs = [self.create_subscription(Twist, topic, self._command_into(i), CMD_VEL_QOS, raw=True)
                          for i, topic in enumerate(topics)]

        self._odom_pubs = [self.create_publisher(Odometry, topic, ODOM_PUBLISH_QOS)
                           for topic in [odom_topic(i) for i in range(n)] + [DEPOT_ODOM_TOPIC]]
        children = [base_frame(i) for i in range(n)] + [DEPOT_BASE_FRAME]
        # Odometry goes out pre-serialized (_cdr.odometry_cdr): ~4 us a robot instead of ~20.
        self._odom_frames = [odometry_frames(ODOM_FRAME, child) for child in children]
        self._clock_pub = self.create_publisher(ClockMsg, CLOCK_TOPIC, CLOCK_QOS)
        self._tf_pub, self._tf_msg = None, None
        if self.publish_tf and TFMessage is not None:
            self._tf_pub = self.create_publisher(TFMessage, "/tf", 100)
            self._tf_msg = TFMessage(transforms=[TransformStamped(child_frame_id=child) for child in children])
            for transform in self._tf_msg.transforms:
                transform.header.frame_id = ODOM_FRAME
            # The simulated odom frame is the map: one latched identity map -> odom.
            static = TransformStamped(child_frame_id=ODOM_FRAME)
            static.header.frame_id = MAP_FRAME
            static.transform.rotation.w = 1.0
            self._tf_static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED_QOS)
            self._tf_static_pub.publish(TFMessage(transforms=[static]))
        self.steps = 0
        self._step_listeners = []
        self._publish_state()
        # The sim is the clock source, so it steps on wall (steady) time, never on /clock.
        period = control_period / self.real_time_factor if self.real_time_factor > 0 else 0.0
        self._timer = self.create_timer(period, self.step, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.clock_clash = False  # another /clock publisher was seen on this domain
        self.create_timer(CLOCK_CHECK_SEC, self._check_single_clock, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"scenario {scenario.name!r}: {n} robots + depot, control period {control_period:g} s, "
            f"real-time factor {'max' if period == 0 else self.real_time_factor}, "
            f"/tf {'on' if self._tf_pub else 'off (tf2_msgs not installed)' if self.publish_tf else 'off'}")

    def _check_single_clock(self) -> None:
        """Two simulators on one ROS domain would feed every node two interleaved clocks."""
        if not self.clock_clash and self.count_publishers(CLOCK_TOPIC) > 1:
            self.clock_clash = True
            self.get_logger().error(f"another node also publishes {CLOCK_TOPIC} on ROS_DOMAIN_ID "
                                    f"{self.context.get_domain_id()}: sim time jumps between the two; give each "
                                    f"simulated fleet its own ROS_DOMAIN_ID")

    def _command_into(self, index: int):
        commands, command_time = self.commands, self.command_time

        def store(data: bytes) -> None:
            v, w = twist_velocity(data)
            if math.isfinite(v) and math.isfinite(w):
                commands[index] = v, w
                command_time[index] = self.sim.time
            else:
                self.rejected_commands += 1
        return store

    def step(self) -> None:
        """One control period: apply fresh commands (stale ones -> 0), integrate, publish."""
        stale = self.sim.time - self.command_time > self.cmd_vel_timeout
        v = np.where(stale, 0.0, self.commands[:, 0])
        w = np.where(stale, 0.0, self.commands[:, 1])
        self.sim.set_commands(v, w)
        self.sim.step_control()
        self.steps += 1
        self._publish_state()
        for listener in self._step_listeners:
            listener(self.sim)

    def add_step_listener(self, listener) -> None:
        """Call `listener(fleet_sim)` after every control step (in-process monitors: welfare, tests)."""
        self._step_listeners.append(listener)

    def _publish_state(self) -> None:
        stamp = _time_msg(self.sim.time)
        poses, velocities = self.sim.poses, self.sim.velocities
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
