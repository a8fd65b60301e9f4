"""coordinator: the global agent. Samples k robots per decision epoch, runs pi_g, drives the depot.

How it gets the k sampled robots' states is `state_sampling` (nodes/_sampling.py):
`request` (default) asks k robots, drawn from those present, for their states
`request_lead` seconds before each decision, and only they answer; `subscribe_all`
hears every robot's pose stream (`pose_source`: odometry, TF or a pose topic;
nodes/_poses.py) and decodes k of the fresh ones (only poses in the map frame
become zones). The depot's pose always comes from `pose_source`. One timer runs at
the control rate; it decides at the first tick at or after each decision
boundary of the node's clock (t0 + j * decision_period), so there is exactly one
decision per period even when a sim-time timer would fire twice at one /clock
value and then skip a period. Each decision:
1. s_g = the depot's zone (depot pose, altmarl_sim.ring);
2. the zones of a uniform k-subset of the present robots: the replies that
   came to this epoch's request (request), or the first k robots with a fresh
   (younger than `odom_timeout`), finite map-frame pose in a uniform random
   order (subscribe_all; NaN/inf poses and other frames are skipped and counted);
3. their zones (altmarl_sim.ring) -> count vector F -> the policy's observer (core.observer):
   fresh reads F as the fleet, filter predicts its estimate through the epochs since
   the last decision (under the s_g broadcast then, which is what the robots acted
   on) and corrects it with F -> the estimate rounded to the observer's resolution
   -> rank (core.counts) -> a_g = pi_g[s_g, rank];
4. publish GlobalCommand on altmarl/global_command (reliable, transient-local) with
   the raw counts and the estimate the decision used, and steer the depot to zone
   a_g at the control rate (depot/cmd_vel, Twist or TwistStamped), or send it the
   zone's centre when its goal changes (depot/goal_pose; a hold at its pose on stop,
   nodes/_goals.py; or as a NavigateToPose goal on depot/navigate_to_pose, cancelled on
   stop, nodes/_navigate.py).
With only m < k usable robots (or replies) it decides on those m (warning, rate-limited):
fresh scales F to sum k by largest remainders, the filter gives the m samples
weight m instead of k. When the number of robots with usable poses changes
(robots join or leave), the filter keeps only the weight of those that stayed.
With no usable robot a fresh coordinator skips the epoch; a filter decides on its
prediction alone. Without a depot pose it skips the epoch (and local agents stop
once the last command is older than their command_timeout).
Robots not in the roster are ignored, logged once and counted: those that announce
themselves (request), or publish <name>/odom (subscribe_all, a periodic graph scan).
Operator controls: altmarl/stop and altmarl/resume (std_srvs/Trigger) publish the
latched altmarl/stopped that every local agent obeys at once; /diagnostics
reports decisions, short samples, stale robots and rejected poses at 1 Hz.
"""
import re
import secrets
import sys
import time
from collections import deque

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.time import Time
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from altmarl_ros.names import (COMMAND_TYPES, DEPOT, DEPOT_CMD_VEL_TOPIC, GLOBAL_COMMAND_TOPIC, GOAL_COMMAND_TYPES,
                               RESUME_SERVICE, STOP_SERVICE, STOPPED_TOPIC, base_frame)
from altmarl_ros.node_parameters import NODE_PARAMETERS, STATE_SAMPLINGS
from altmarl_ros.nodes._params import (ParameterError, declare_choice, declare_control_period, declare_float,
                                       declare_int, declare_policy, declare_robots, declare_scenario)
from altmarl_ros.nodes._diagnostics import ERROR, OK, WARN, Diagnostics
from altmarl_ros.nodes._senders import goal_sender
from altmarl_ros.nodes._poses import declare_pose_source
from altmarl_ros.nodes._sampling import RequestedStates, SubscribedStates
from altmarl_ros.nodes._validate import DroppedMessages
from altmarl_ros.nodes._ros import (CMD_VEL_QOS, GLOBAL_COMMAND_QOS, LATCHED_QOS, SERVICE_QOS, AltmarlNode,
                                    run_node)
from altmarl_sim.ring import steer_to_zone, zone_centre, zone_of_pose
from altmarl_sim.rollout import decider_of

WARN_EVERY_SEC = 5.0
START_WAIT_PERIODS = 3.0  # before the first decision, how long to wait for the whole roster to report
GRAPH_SCAN_SEC = 2.0


def decision_schedule(due_ns, now_ns: int, period_ns: int, slack_ns: int):
    """(decide now?, next boundary) for a control tick at clock time now_ns.

    due_ns is the boundary the last tick returned, or None before the first tick.
    The first tick decides, and the boundaries follow every period; a clock that
    jumps back by more than a period (a simulator restart) starts the schedule
    again the same way. A tick within slack_ns before the boundary counts as on it
    (sim time is a float sum: 1.0 s may read 0.99999). A tick that is late by
    several periods decides once.
    """
    if due_ns is None or now_ns < due_ns - 2 * period_ns:
        return True, now_ns + period_ns
    late = now_ns + slack_ns - due_ns
    if late < 0:
        return False, due_ns
    return True, due_ns + (late // period_ns + 1) * period_ns


class CoordinatorNode(AltmarlNode):
    """The global agent's node; see the module docstring."""

    DEFAULT_NAME = "coordinator"
    PARAMETERS = NODE_PARAMETERS["coordinator"]

    def setup(self) -> None:
        scenario = declare_scenario(self)
        self.scenario = scenario
        self.policy = declare_policy(self, scenario)
        self.robot_ids, self.robot_names = declare_robots(self, scenario, "robots to sample from")
        # Default: the policy's k, so that `ros2 param get` reads the k in use.
        k = declare_int(self, "k", self.policy.k, "robots sampled per decision; must equal the policy's k "
                        "(default: the policy's)", minimum=1)
        if k != self.policy.k:
            raise ParameterError(f"parameter 'k' = {k}, but the policy was trained for k = {self.policy.k}: "
                                 f"set k:={self.policy.k} or train a policy for k = {k}")
        if k > len(self.robot_ids):
            raise ParameterError(f"parameter 'k' = {k} exceeds the fleet: 'robots' names only "
                                 f"{len(self.robot_ids)} robots; lower k or add robots")
        self.k = k
        self.decider = decider_of(self.policy, scenario)  # what the offline rollouts run (core/decision.py)
        self.observer = self.decider.observer
        spec = self.observer.spec
        self._usable = None  # robots with usable odometry at the last decision
        self._epochs_elapsed = 0  # observer.elapsed calls since the last decision (in the GlobalCommand, for replay)
        self.decision_period = declare_float(
            self, "decision_period", scenario.timing.decision_epoch,
            "s between decisions (default: the scenario's timing.decision_epoch, what the policy was trained on)",
            positive=True)
        control_period = declare_control_period(self, scenario)
        if control_period > self.decision_period:
            raise ParameterError(f"parameter 'control_period' = {control_period:g} s exceeds 'decision_period' = "
                                 f"{self.decision_period:g} s: decisions are made on control ticks; lower "
                                 f"control_period")
        self.state_sampling = declare_choice(
            self, "state_sampling", STATE_SAMPLINGS, "request: ask k robots for their states each decision, only "
            "they answer; subscribe_all: hear every robot's pose stream and use k (docs/integration.md)")
        self.request_lead = declare_float(
            self, "request_lead", min(2 * control_period, self.decision_period),
            "s before each decision that the state request goes out (request sampling; default two control "
            "periods): the replies' time to arrive, and the states' age", positive=True)
        if self.state_sampling == "request" and not control_period <= self.request_lead <= self.decision_period:
            raise ParameterError(f"parameter 'request_lead' = {self.request_lead:g} s: must be at least "
                                 f"control_period ({control_period:g} s, the request goes out on a control tick) "
                                 f"and at most decision_period ({self.decision_period:g} s)")
        odom_timeout = declare_float(self, "odom_timeout", 0.5,
                                     "s: a pose older than this is not used (robots: subscribe_all; the depot)",
                                     positive=True)
        self.odom_timeout_ns = int(odom_timeout * 1e9)
        self.rng = np.random.default_rng(declare_int(self, "seed", 0, "seed of the k-subset draws", minimum=0))
        if self.decision_period != scenario.timing.decision_epoch:
            self.get_logger().warning(
                f"decision_period {self.decision_period:g} s differs from the scenario's decision_epoch "
                f"{scenario.timing.decision_epoch:g} s the policy was trained for")

        # The depot's pose (the last slot) in the map frame from the configured source, with every robot's
        # before it under subscribe_all; under request the robots' states come only from their replies.
        self.dropped = DroppedMessages(self)  # undecodable or out-of-range messages, by reason
        self.session = secrets.randbits(63)  # in every GlobalCommand: local agents tell a restart from a replay
        subscribed = self.robot_names if self.state_sampling == "subscribe_all" else []
        self.poses = declare_pose_source(self, subscribed + [DEPOT], self.dropped)
        self._depot_slot = len(subscribed)
        if self.state_sampling == "subscribe_all":
            self.states = SubscribedStates(self, self.robot_ids, self.robot_names, self.poses, scenario.ring, k,
                                           self.rng, self.odom_timeout_ns)
            self._lead_ns = 0
        else:
            self.states = RequestedStates(self, self.robot_ids, scenario.sizes[2], self.poses.map_frame, k,
                                          self.rng, self.session, self.dropped)
            self._lead_ns = int(round(self.request_lead * 1e9))
        self.command_pub = self.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, GLOBAL_COMMAND_QOS)
        self.command_type = declare_choice(self, "command_type", COMMAND_TYPES,
                                           "how the depot is commanded: twist / twist_stamped on depot/cmd_vel, "
                                           "goal_pose: the chosen zone's centre on depot/goal_pose; navigate_to_pose: "
                                           "that goal through Nav2's NavigateToPose action on depot/navigate_to_pose")
        self.goal_driven = self.command_type in GOAL_COMMAND_TYPES
        if self.goal_driven:
            self.depot_goal = goal_sender(self, [DEPOT], self.poses.map_frame, self.command_type)
        else:
            stamped = self.command_type == "twist_stamped"
            self.depot_cmd_pub = self.create_publisher(TwistStamped if stamped else Twist, DEPOT_CMD_VEL_TOPIC,
                                                       CMD_VEL_QOS)
            self._depot_msg = TwistStamped() if stamped else Twist()
            self._depot_twist = self._depot_msg.twist if stamped else self._depot_msg
            if stamped:
                self._depot_msg.header.frame_id = base_frame(DEPOT)

        # What happened so far (read by tests, the bench, the demo's status line and /diagnostics).
        self.epoch = 0
        self.last_command = None
        self.goal_zone = None
        self.short_decisions = 0  # decisions made with fewer than k robots
        self.skipped_decisions = 0  # epochs without a decision (no depot pose / no robot / stopped)
        self.unknown_robots = set()  # names publishing <name>/odom here that are not in the roster
        self.tick_seconds = deque(maxlen=100_000)  # wall time of each decision tick
        self.state_ages = deque(maxlen=100_000)  # s: how old each state a decision used was, at the decision
        self.sample_sizes = deque(maxlen=100_000)  # robots each decision used
        self._known = set(self.robot_names) | {DEPOT}
        namespace = self.get_namespace().rstrip("/")
        self._odom_pattern = re.compile(rf"^{re.escape(namespace)}/(.+)/odom$")

        # Operator controls: a fleet-wide stop, latched so every local agent (also one that starts
        # later) knows; stopped robots stay stopped until resume.
        self.stopped = False
        self._stopped_pub = self.create_publisher(Bool, STOPPED_TOPIC, LATCHED_QOS)
        self._stopped_pub.publish(Bool(data=False))
        self.create_service(Trigger, STOP_SERVICE, self.on_stop, qos_profile=SERVICE_QOS)
        self.create_service(Trigger, RESUME_SERVICE, self.on_resume, qos_profile=SERVICE_QOS)
        self.diagnostics = Diagnostics(self, "coordinator", self.diagnostic_status, self.dropped)
        self.diagnostics.hardware_id = self.policy.policy_id
        self._diagnosed = (0, 0, 0)  # (epoch, short, skipped) at the last report

        self._period_ns = int(round(self.decision_period * 1e9))
        self._next_decision_ns = None  # the next decision boundary; None until the first tick
        self._first_decision_ns = None  # before the first decision: when it is due, once the fleet is ready
        self._first_tick_ns = None
        self._start_warned = False
        self._slack_ns = int(control_period * 0.5e9)
        self.create_timer(control_period, self.tick)
        if self.state_sampling == "subscribe_all":
            self.create_timer(GRAPH_SCAN_SEC, self.scan_for_unknown_robots)
        else:
            self.unknown_robots = self.states.unknown_robots
        self.get_logger().info(
            f"policy {self.policy.policy_id} (k = {k}) on scenario {scenario.name!r}: sampling {k} of "
            f"{len(self.robot_ids)} robots every {self.decision_period:g} s ({self.state_sampling}"
            f"{f', request {self.request_lead:g} s ahead' if self._lead_ns else ''}); observer {spec.describe()}")

    # ------------------------------------------------------------------ decisions

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    @property
    def invalid_poses(self) -> int:
        """Sampled poses that were NaN/inf, skipped."""
        return self.poses.invalid_poses

    @property
    def foreign_frames(self) -> int:
        """Sampled poses not in the map frame (or whose TF chain does not reach it), skipped."""
        return self.poses.foreign_frames

    def _depot_pose(self, now_ns: int):
        slot = self._depot_slot
        fresh = slot in self.poses.fresh_slots(now_ns, self.odom_timeout_ns)
        return self.poses.pose(slot) if fresh else None

    def _why_no_depot_pose(self, now_ns: int) -> str:
        """What an operator needs to fix: no depot pose at all, an old one, or one in the wrong frame."""
        slot, source = self._depot_slot, self.poses
        if slot not in source.fresh_slots(now_ns, self.odom_timeout_ns):
            return (f"no depot pose younger than odom_timeout {self.odom_timeout_ns / 1e9:g} s "
                    f"(pose_source {source.KIND!r})")
        before = source.foreign_frames
        source.pose(slot)
        if source.foreign_frames != before:
            return (f"the depot's pose is in frame {source.last_foreign!r}, expected {source.map_frame!r} "
                    f"(pose_source {source.KIND!r}: use tf or pose_topic when odometry is not in the map frame)")
        return "the depot's pose is NaN/inf"

    def tick(self) -> None:
        """Control-rate tick: send the state request when the next decision is request_lead away, decide
        once a decision boundary has passed, then steer the depot.

        Before the first decision the coordinator waits until the whole roster is present (or
        START_WAIT_PERIODS decision periods after the first tick, with whoever is; one skipped epoch is
        counted per period): a first sample drawn while discovery is still under way would come from the
        robots found first, not the fleet. It then requests and decides request_lead later (at once under
        subscribe_all); the schedule's boundaries follow the first decision, as a rollout's epochs follow
        its start."""
        now_ns = self._now_ns()
        if self._first_tick_ns is None:
            self._first_tick_ns = now_ns
        decide_now, self._next_decision_ns = decision_schedule(self._next_decision_ns, now_ns,
                                                               self._period_ns, self._slack_ns)
        if self.epoch == 0:
            if self._first_decision_ns is None and not self.stopped and self._fleet_ready(now_ns):
                self._first_decision_ns = now_ns + self._lead_ns
                self.states.request(self.epoch, now_ns, self._first_decision_ns)
            if self._first_decision_ns is not None and now_ns + self._slack_ns >= self._first_decision_ns:
                if self.decide(now_ns):
                    self._next_decision_ns = now_ns + self._period_ns
                else:
                    self.skipped_decisions += 1
                self._first_decision_ns = None
            elif decide_now:
                self.skipped_decisions += 1
        elif decide_now and not self.decide(now_ns):
            self.skipped_decisions += 1
        if self.epoch > 0 and not self.stopped and \
                now_ns + self._slack_ns >= self._next_decision_ns - self._lead_ns:
            self.states.request(self.epoch, now_ns, self._next_decision_ns)
        self.drive_depot()

    def _fleet_ready(self, now_ns: int) -> bool:
        """Before the first decision: every robot of the roster has a fresh pose, or waiting is over."""
        waited = now_ns - self._first_tick_ns >= START_WAIT_PERIODS * self._period_ns
        if self.stale_robots(now_ns) and waited and not self._start_warned:
            self._start_warned = True
            self.get_logger().warning(f"{self.stale_robots(now_ns)} of {len(self.robot_names)} robots are not "
                                      f"present {START_WAIT_PERIODS:g} decision periods after start: deciding "
                                      f"without them")
        return waited or self.stale_robots(now_ns) == 0

    def decide(self, now_ns: int) -> bool:
        """One decision epoch at clock time now_ns (see the module docstring); False if none was made."""
        started = time.perf_counter()
        logger = self.get_logger()
        if self.stopped:  # the robots hold still: no decision, and nothing for the filter to predict
            return False
        if self.last_command is not None:  # one epoch passed under the s_g the robots were last sent
            self.observer.elapsed(self.last_command.global_state)
            self._epochs_elapsed += 1
        sample = self.states.collect(self.epoch, now_ns)
        usable = self.states.present(now_ns)
        if self._usable is not None and usable != self._usable:
            self.observer.resized(self._usable, usable)
        self._usable = usable
        depot = self._depot_pose(now_ns)
        if depot is None:
            logger.warning(f"no usable depot pose: {self._why_no_depot_pose(now_ns)}; no decision this epoch",
                           throttle_duration_sec=WARN_EVERY_SEC)
            return False
        ids = sample.ids
        if len(ids) < self.k and ids:
            self.short_decisions += 1
            logger.warning(f"only {len(ids)} of k = {self.k} sampled robots {self._sampled_what}: deciding on "
                           f"{len(ids)}", throttle_duration_sec=WARN_EVERY_SEC)
        s_g = int(zone_of_pose(depot[0], depot[1], self.scenario.ring))
        counts = np.bincount(sample.zones, minlength=self.scenario.sizes[2])
        decision = self.decider.global_action(s_g, counts, sample.poses)
        if decision is None:
            logger.warning(f"no sampled robot {self._sampled_what} and no estimate yet: no decision this epoch",
                           throttle_duration_sec=WARN_EVERY_SEC)
            return False
        if not ids:
            logger.warning(f"no sampled robot {self._sampled_what}: deciding on the filter's prediction alone",
                           throttle_duration_sec=WARN_EVERY_SEC)
        action, query, count_rank = decision
        msg = GlobalCommand(session=self.session, epoch=self.epoch, global_state=s_g, global_action=action, k=self.k,
                            sampled_ids=[int(i) for i in ids], counts=counts.tolist(),
                            observer=self.observer.spec.name, estimate=self.observer.mu.tolist(),
                            query_counts=query.tolist(), count_rank=count_rank, policy_id=self.policy.policy_id,
                            epochs_elapsed=self._epochs_elapsed, usable_robots=self._usable)
        msg.header.stamp = Time(nanoseconds=now_ns).to_msg()
        msg.header.frame_id = self.poses.map_frame
        self.command_pub.publish(msg)
        self.goal_zone = action
        self.last_command, self._last_decision_ns = msg, now_ns
        self._epochs_elapsed = 0
        self.epoch += 1
        self.tick_seconds.append(time.perf_counter() - started)
        self.state_ages.extend((sample.ages_ns / 1e9).tolist())
        self.sample_sizes.append(len(ids))
        return True

    @property
    def _sampled_what(self) -> str:
        if self.state_sampling == "request":
            return f"answered in time (request_lead {self.request_lead:g} s)"
        return f"have a fresh, finite map-frame pose (odom_timeout {self.odom_timeout_ns / 1e9:g} s)"

    def drive_depot(self) -> None:
        """Steer the depot to the chosen zone with the ring controller (goal-driven: send the zone's centre
        when it changes); stop (hold) it without a fresh pose, before the first decision, or when stopped."""
        depot = self._depot_pose(self._now_ns())
        if depot is None or self.goal_zone is None or self.stopped:
            self.stop_robots()
        elif self.goal_driven:
            xs, ys = zone_centre(np.array([self.goal_zone]), self.scenario.ring)
            self.depot_goal.drive(0, self.goal_zone, (xs[0], ys[0]), depot)
        else:
            v, w = steer_to_zone(depot[0], depot[1], depot[2], self.goal_zone, self.scenario.ring,
                                 self.scenario.limits, self.scenario.controller)
            self._publish_depot_twist(float(v), float(w))

    def _publish_depot_twist(self, v: float, w: float) -> None:
        self._depot_twist.linear.x, self._depot_twist.angular.z = v, w
        if self.command_type == "twist_stamped":
            self._depot_msg.header.stamp = self.get_clock().now().to_msg()
        self.depot_cmd_pub.publish(self._depot_msg)

    def stop_robots(self) -> None:
        """Zero velocity to the depot, a hold at its last known pose, or its goal cancelled (on stop,
        shutdown, no pose)."""
        if self.goal_driven:
            self.depot_goal.hold_all(lambda _: self.poses.pose(self._depot_slot))
        else:
            self._publish_depot_twist(0.0, 0.0)

    def on_stop(self, request, response):
        """std_srvs/Trigger altmarl/stop: every robot (and the depot) stands still until resume."""
        response.success, response.message = True, "fleet stopped" if not self.stopped else "already stopped"
        self.stopped = True
        self.states.cancel()  # the first decision after resume asks afresh, never with states from before
        self._stopped_pub.publish(Bool(data=True))
        self.stop_robots()
        self.get_logger().warning("fleet stopped by operator (altmarl/resume to go on)")
        return response

    def on_resume(self, request, response):
        response.success, response.message = True, "fleet resumed" if self.stopped else "was not stopped"
        self.stopped = False
        self._stopped_pub.publish(Bool(data=False))
        self.get_logger().info("fleet resumed by operator")
        return response

    def stale_robots(self, now_ns: int) -> int:
        """Robots of the roster that cannot be sampled now (subscribe_all: no fresh pose; request: not
        present, or sitting out draws after a missed reply)."""
        return self.states.unusable(now_ns)

    def diagnostic_status(self):
        """/diagnostics: decisions, short samples, stale robots, rejected poses, policy id (nodes/_diagnostics)."""
        now_ns = self._now_ns()
        epoch, short, skipped = self.epoch, self.short_decisions, self.skipped_decisions
        recent = (epoch - self._diagnosed[0], short - self._diagnosed[1], skipped - self._diagnosed[2])
        self._diagnosed = (epoch, short, skipped)
        stale = self.stale_robots(now_ns)
        if self.stopped:
            level, message = WARN, "stopped by operator"
        elif self.last_command is None or now_ns - self._last_decision_ns > 1.5 * self._period_ns:
            level, message = ERROR, f"no decision for over a decision period: {self._why_no_decision(now_ns)}"
        elif recent[1] or stale:
            level, message = WARN, f"{recent[1]} short decisions, {stale} stale robots"
        else:
            level, message = OK, "deciding"
        values = {"decisions": epoch, "skipped_decisions": skipped, "short_decisions": short,
                  "stale_robots": stale, "robots": len(self.robot_names), "k": self.k,
                  "invalid_poses": self.invalid_poses, "foreign_frame_poses": self.foreign_frames,
                  "unknown_robots": len(self.unknown_robots), "policy_id": self.policy.policy_id,
                  "session": self.session,
                  "stopped": self.stopped, **self.states.status()}
        if self.goal_driven:
            values.update({f"depot_{key}": value for key, value in self.depot_goal.status().items()})
        if self.state_ages:
            ages = np.fromiter(self.state_ages, dtype=np.float64)
            values["state_age_p50_s"], values["state_age_p99_s"] = (f"{q:.3f}" for q in np.percentile(ages, [50, 99]))
        return level, message, values

    def _why_no_decision(self, now_ns: int) -> str:
        if self._depot_pose(now_ns) is None:
            return self._why_no_depot_pose(now_ns)
        return f"no robot could be sampled ({self.stale_robots(now_ns)} of {len(self.robot_names)} unusable)"

    def scan_for_unknown_robots(self) -> None:
        """Count robots that publish odometry here but are not in the roster (they are never sampled)."""
        for name, types in self.get_topic_names_and_types():
            match = self._odom_pattern.match(name)
            if not match or "nav_msgs/msg/Odometry" not in types:
                continue
            robot = match.group(1)
            if robot not in self._known and robot not in self.unknown_robots:
                self.unknown_robots.add(robot)
                self.get_logger().warning(f"{name} is not in the fleet's roster: that robot is ignored "
                                          f"({len(self.unknown_robots)} unknown so far)")


def main(args=None):
    sys.exit(run_node(CoordinatorNode, args))


if __name__ == "__main__":
    main()
