"""coordinator: the global agent. Samples k robots per decision epoch, runs pi_g, drives the depot.

Every robot's odometry arrives on a raw subscription whose callback only keeps
the bytes and the receive time (_odom_store.LatestOdometry). One timer runs at
the control rate; it decides at the first tick at or after each decision
boundary of the node's clock (t0 + j * decision_period), so there is exactly one
decision per period even when a sim-time timer would fire twice at one /clock
value and then skip a period. Each decision:
1. s_g = the depot's zone (depot/odom, core.ring);
2. draw a uniform random order of the robots whose odometry is fresh (younger
   than `odom_timeout`) and decode them in that order until k have a finite
   pose (NaN/inf poses are skipped and counted): a uniform k-subset of the
   robots with usable odometry, and only ~k messages are ever decoded;
3. their zones (core.ring) -> count vector F -> the policy's observer (core.observer):
   fresh reads F as the fleet, filter predicts its estimate through the epochs since
   the last decision (under the s_g broadcast then, which is what the robots acted
   on) and corrects it with F -> the estimate rounded to the observer's resolution
   -> rank (core.counts) -> a_g = pi_g[s_g, rank];
4. publish GlobalCommand on altmarl/global_command (reliable, transient-local) with
   the raw counts and the estimate the decision used, and steer the depot to zone
   a_g at the control rate (depot/cmd_vel).
With only m < k usable robots it decides on those m (warning, rate-limited):
fresh scales F to sum k by largest remainders, the filter gives the m samples
weight m instead of k. When the number of robots with usable odometry changes
(robots join or leave), the filter keeps only the weight of those that stayed.
With no usable robot a fresh coordinator skips the epoch; a filter decides on its
prediction alone. Without depot odometry it skips the epoch (and local agents stop
once the last command is older than their command_timeout).
Robots publishing odometry under robot_<i>/odom that are not in `robots` are
ignored; they are found by a periodic graph scan, logged once and counted.
"""
import re
import sys
import time
from collections import deque

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from geometry_msgs.msg import Twist
from rclpy.time import Time

from altmarl_ros.core.counts import rank
from altmarl_ros.core.observer import Observer, scale_counts
from altmarl_sim.ring import steer_to_zone, zone_of_pose
from altmarl_ros.names import DEPOT_CMD_VEL_TOPIC, DEPOT_ODOM_TOPIC, GLOBAL_COMMAND_TOPIC, MAP_FRAME
from altmarl_ros.nodes._odom_store import LatestOdometry
from altmarl_ros.nodes._params import (CONTROL_PERIOD, INTEGER, NUMBER, POLICY, ROBOTS, SCENARIO, ParameterError,
                                       declare_control_period, declare_float, declare_int, declare_policy,
                                       declare_robots, declare_scenario)
from altmarl_ros.nodes._ros import CMD_VEL_QOS, GLOBAL_COMMAND_QOS, AltmarlNode, run_node

WARN_EVERY_SEC = 5.0
GRAPH_SCAN_SEC = 2.0


def counts_for_k(counts: np.ndarray, k: int) -> np.ndarray:
    """The count vector over k agents closest to the observed proportions (largest remainders,
    ties to the lower state index; core.observer.scale_counts): `counts` if they already sum to k."""
    return scale_counts(counts, k)


def decision_schedule(due_ns, now_ns: int, period_ns: int, slack_ns: int):
    """(decide now?, next boundary) for a control tick at clock time now_ns.

    due_ns is the boundary the last tick returned, or None before the first tick.
    The first boundary is one period after the first tick; a clock that jumps back
    by more than a period (a simulator restart) starts the schedule again. A tick
    within slack_ns before the boundary counts as on it (sim time is a float sum:
    1.0 s may read 0.99999). A tick that is late by several periods decides once.
    """
    if due_ns is None or now_ns < due_ns - 2 * period_ns:
        return False, now_ns + period_ns
    late = now_ns + slack_ns - due_ns
    if late < 0:
        return False, due_ns
    return True, due_ns + (late // period_ns + 1) * period_ns


class CoordinatorNode(AltmarlNode):
    """The global agent's node; see the module docstring."""

    DEFAULT_NAME = "coordinator"
    PARAMETERS = {**SCENARIO, **POLICY, **ROBOTS, **CONTROL_PERIOD, "k": INTEGER, "decision_period": NUMBER,
                  "odom_timeout": NUMBER, "seed": INTEGER}

    def setup(self) -> None:
        scenario = declare_scenario(self)
        self.scenario = scenario
        self.policy = declare_policy(self, scenario)
        self.robot_ids = declare_robots(self, scenario, "robots to sample from")
        k = declare_int(self, "k", 0, "robots sampled per decision; must equal the policy's k (0 = the policy's)",
                        minimum=0)
        if k == 0:
            k = self.policy.k
        elif k != self.policy.k:
            raise ParameterError(f"parameter 'k' = {k}, but the policy was trained for k = {self.policy.k}: "
                                 f"set k:={self.policy.k} or train a policy for k = {k}")
        if k > len(self.robot_ids):
            raise ParameterError(f"parameter 'k' = {k} exceeds the fleet: 'robots' names only "
                                 f"{len(self.robot_ids)} robots; lower k or add robots")
        self.k = k
        spec = self.policy.observer
        prediction = self.policy.observer_P
        if prediction is None:  # fresh never predicts
            prediction = np.tile(np.eye(scenario.sizes[2]), (scenario.sizes[0], 1, 1))
        self.observer = Observer(spec, prediction, k, mu0=self.policy.observer_mu0)
        self._usable = None  # robots with usable odometry at the last decision
        self.decision_period = declare_float(
            self, "decision_period", scenario.timing.decision_epoch,
            "s between decisions (default: the scenario's timing.decision_epoch, what the policy was trained on)",
            positive=True)
        control_period = declare_control_period(self, scenario)
        if control_period > self.decision_period:
            raise ParameterError(f"parameter 'control_period' = {control_period:g} s exceeds 'decision_period' = "
                                 f"{self.decision_period:g} s: decisions are made on control ticks; lower "
                                 f"control_period")
        odom_timeout = declare_float(self, "odom_timeout", 0.5,
                                     "s: a robot whose odometry is older is not sampled", positive=True)
        self.odom_timeout_ns = int(odom_timeout * 1e9)
        self.rng = np.random.default_rng(declare_int(self, "seed", 0, "seed of the k-subset draws", minimum=0))
        if self.decision_period != scenario.timing.decision_epoch:
            self.get_logger().warning(
                f"decision_period {self.decision_period:g} s differs from the scenario's decision_epoch "
                f"{scenario.timing.decision_epoch:g} s the policy was trained for")

        self.odom = LatestOdometry.of_robots(self, self.robot_ids)
        self.depot = LatestOdometry(self, [DEPOT_ODOM_TOPIC])
        self.command_pub = self.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, GLOBAL_COMMAND_QOS)
        self.depot_cmd_pub = self.create_publisher(Twist, DEPOT_CMD_VEL_TOPIC, CMD_VEL_QOS)
        self._depot_twist = Twist()

        # What happened so far (read by tests, the bench and the demo's status line).
        self.epoch = 0
        self.last_command = None
        self.goal_zone = None
        self.invalid_poses = 0  # sampled odometry with a NaN/inf pose, skipped
        self.short_decisions = 0  # decisions made with fewer than k robots
        self.skipped_decisions = 0  # epochs without a decision (no depot pose / no robot)
        self.unknown_robots = set()  # ids publishing robot_<i>/odom that are not ours
        self.tick_seconds = deque(maxlen=100_000)  # wall time of each decision tick
        self._known = set(self.robot_ids)
        namespace = self.get_namespace().rstrip("/")
        self._odom_pattern = re.compile(rf"^{re.escape(namespace)}/robot_(\d+)/odom$")

        self._period_ns = int(round(self.decision_period * 1e9))
        self._next_decision_ns = None  # the next decision boundary; None until the first tick
        self._slack_ns = int(control_period * 0.5e9)
        self.create_timer(control_period, self.tick)
        self.create_timer(GRAPH_SCAN_SEC, self.scan_for_unknown_robots)
        self.get_logger().info(
            f"policy {self.policy.policy_id} (k = {k}) on scenario {scenario.name!r}: sampling {k} of "
            f"{len(self.robot_ids)} robots every {self.decision_period:g} s; observer {spec.describe()}")

    # ------------------------------------------------------------------ decisions

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _depot_pose(self, now_ns: int):
        return self.depot.pose(0) if self.depot.is_fresh(0, now_ns, self.odom_timeout_ns) else None

    def sample(self, now_ns: int):
        """(robot ids, poses [m, 3]) of a uniform random subset of m <= k robots with fresh, finite odometry."""
        chosen, poses = [], []
        fresh_slots = self.odom.fresh_slots(now_ns, self.odom_timeout_ns)
        if self._usable is not None and len(fresh_slots) != self._usable:
            self.observer.resized(self._usable, len(fresh_slots))
        self._usable = len(fresh_slots)
        for slot in self.rng.permutation(fresh_slots):
            pose = self.odom.pose(slot)
            if pose is None:
                self.invalid_poses += 1
                self.get_logger().warning(
                    f"robot_{self.robot_ids[slot]}/odom has a NaN/inf pose: not sampled "
                    f"({self.invalid_poses} such messages so far)", throttle_duration_sec=WARN_EVERY_SEC)
                continue
            chosen.append(self.robot_ids[slot])
            poses.append(pose)
            if len(chosen) == self.k:
                break
        return chosen, np.array(poses, dtype=np.float64).reshape(-1, 3)

    def tick(self) -> None:
        """Control-rate tick: decide if a decision boundary has passed, then steer the depot."""
        now_ns = self._now_ns()
        decide_now, self._next_decision_ns = decision_schedule(self._next_decision_ns, now_ns,
                                                               self._period_ns, self._slack_ns)
        if decide_now:
            self.decide(now_ns)
        self.drive_depot()

    def decide(self, now_ns: int) -> None:
        """One decision epoch at clock time now_ns (see the module docstring)."""
        started = time.perf_counter()
        logger = self.get_logger()
        if self.last_command is not None:  # one epoch passed under the s_g the robots were last sent
            self.observer.elapsed(self.last_command.global_state)
        depot = self._depot_pose(now_ns)
        if depot is None:
            self.skipped_decisions += 1
            logger.warning(f"no fresh depot odometry on {DEPOT_ODOM_TOPIC}: no decision this epoch",
                           throttle_duration_sec=WARN_EVERY_SEC)
            return
        ring = self.scenario.ring
        ids, poses = self.sample(now_ns)
        if len(ids) < self.k and ids:
            self.short_decisions += 1
            logger.warning(f"only {len(ids)} of k = {self.k} sampled robots have fresh, finite odometry: "
                           f"deciding on {len(ids)}", throttle_duration_sec=WARN_EVERY_SEC)
        s_g = int(zone_of_pose(depot[0], depot[1], ring))
        counts = np.bincount(zone_of_pose(poses[:, 0], poses[:, 1], ring).astype(np.int64), minlength=ring.n_zones)
        query = self.observer.decide(counts)
        if query is None:
            self.skipped_decisions += 1
            logger.warning(f"no robot has fresh odometry (odom_timeout {self.odom_timeout_ns / 1e9:g} s) and no "
                           f"estimate yet: no decision this epoch", throttle_duration_sec=WARN_EVERY_SEC)
            return
        if not ids:
            logger.warning("no robot has fresh odometry: deciding on the filter's prediction alone",
                           throttle_duration_sec=WARN_EVERY_SEC)
        count_rank = rank(query)
        action = int(self.policy.pi_g[s_g, count_rank])
        msg = GlobalCommand(epoch=self.epoch, global_state=s_g, global_action=action, k=self.k,
                            sampled_ids=[int(i) for i in ids], counts=counts.tolist(),
                            observer=self.observer.spec.name, estimate=self.observer.mu.tolist(),
                            query_counts=query.tolist(), count_rank=count_rank, policy_id=self.policy.policy_id)
        msg.header.stamp = Time(nanoseconds=now_ns).to_msg()
        msg.header.frame_id = MAP_FRAME
        self.command_pub.publish(msg)
        self.goal_zone = action
        self.last_command = msg
        self.epoch += 1
        self.tick_seconds.append(time.perf_counter() - started)

    def drive_depot(self) -> None:
        """Steer the depot to the chosen zone with the core's ring controller; stop without odometry."""
        twist = self._depot_twist
        depot = self._depot_pose(self._now_ns())
        if depot is None or self.goal_zone is None:
            twist.linear.x = twist.angular.z = 0.0
        else:
            v, w = steer_to_zone(depot[0], depot[1], depot[2], self.goal_zone, self.scenario.ring,
                                 self.scenario.limits, self.scenario.controller)
            twist.linear.x, twist.angular.z = float(v), float(w)
        self.depot_cmd_pub.publish(twist)

    def scan_for_unknown_robots(self) -> None:
        """Count robots that publish odometry here but are not in `robots` (they are never sampled)."""
        for name, _ in self.get_topic_names_and_types():
            match = self._odom_pattern.match(name)
            if match and int(match.group(1)) not in self._known and int(match.group(1)) not in self.unknown_robots:
                self.unknown_robots.add(int(match.group(1)))
                self.get_logger().warning(f"{name} is not in parameter 'robots': that robot is ignored "
                                          f"({len(self.unknown_robots)} unknown so far)")


def main(args=None):
    sys.exit(run_node(CoordinatorNode, args))


if __name__ == "__main__":
    main()
