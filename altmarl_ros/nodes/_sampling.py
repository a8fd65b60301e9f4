"""How the coordinator gets the states of its k sampled robots (`state_sampling`).

request (the default): the coordinator hears k robots, not n. Each decision it
draws k robot ids uniformly from the robots present and broadcasts one
StateRequest (session, epoch, ids, deadline = the decision time) on
altmarl/state_request; only the named robots' agents answer, with a StateReport
each (id, epoch, zone, pose, frame, stamp) on altmarl/state_reports. Replies
that are undecodable, from another session, for another epoch, late (after the
decision), duplicated, not asked for (forged), out of range or in a foreign
frame are dropped and counted. Robots are known from FleetMembership messages
(one per answering node, sent when its set of present robots changes and,
empty, when it leaves; transient-local, so a coordinator that restarts learns
the fleet at once): no periodic per-robot traffic reaches the coordinator. A
robot that misses a reply sits out the next 1, 2, 4, ... (at most MAX_BACKOFF)
requests, then is asked again (counted in requests, not decisions: a first
decision that found no reply must not wait for itself). It works on any RMW: one topic each way, every
agent filters the request itself (no content-filtered topics), and nothing is
created per decision.

subscribe_all (the method's first deployment): the coordinator subscribes to
every robot's pose stream (nodes/_poses.py) and decodes k of the fresh ones.

Both give the coordinator the same thing at a decision: (robot ids, zones,
ages of the states) of a uniform random subset of at most k present robots.
"""
import math
import time
from collections import deque
from typing import Dict, Optional, Sequence

import numpy as np
from altmarl_msgs.msg import FleetMembership, StateReport, StateRequest
from rclpy.time import Time

from altmarl_ros.names import FLEET_MEMBERSHIP_TOPIC, STATE_REPORTS_TOPIC, STATE_REQUEST_TOPIC
from altmarl_ros.nodes._ros import MEMBERSHIP_SUBSCRIPTION_QOS, LATCHED_QOS, STATE_REPORT_QOS, STATE_REQUEST_QOS
from altmarl_ros.nodes._validate import decoded
from altmarl_sim.ring import zone_of_pose

MAX_BACKOFF = 32  # requests: a robot that keeps missing replies is still eligible at least this often
WARN_EVERY_SEC = 5.0
REPORT = "StateReport"


def _ns(stamp) -> int:
    return Time.from_msg(stamp).nanoseconds


class Sample:
    """What a decision uses: the sampled robots' ids, their zones, their poses (x, y, yaw: an FA policy's
    states on the continuous ring), and how old each state was (ns)."""

    def __init__(self, ids=(), zones=(), ages_ns=(), poses=()):
        self.ids = [int(i) for i in ids]
        self.zones = np.asarray(zones, dtype=np.int64).reshape(-1)
        self.ages_ns = np.asarray(ages_ns, dtype=np.int64).reshape(-1)
        self.poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)


class SubscribedStates:
    """state_sampling subscribe_all: k of the robots whose pose stream is fresh, decoded in a random order
    until k have a finite map-frame pose (a uniform k-subset of the robots with usable poses)."""

    MODE = "subscribe_all"

    def __init__(self, node, robot_ids: Sequence[int], names: Sequence[str], poses, ring, k: int, rng,
                 odom_timeout_ns: int):
        self._node, self.robot_ids, self.names, self.poses, self.ring = node, list(robot_ids), names, poses, ring
        self.k, self.rng, self.odom_timeout_ns = k, rng, odom_timeout_ns
        self.n = len(self.robot_ids)  # the robots are the pose source's first n slots (the depot may follow)

    @property
    def messages_received(self) -> int:
        """Robot state messages that reached the coordinator (every pose message of every robot)."""
        return self.poses.messages_received(self.n)

    def _fresh(self, now_ns: int) -> np.ndarray:
        fresh = self.poses.fresh_slots(now_ns, self.odom_timeout_ns)
        return fresh[fresh < self.n]

    def present(self, now_ns: int) -> int:
        return len(self._fresh(now_ns))

    def request(self, epoch: int, now_ns: int, deadline_ns: int) -> None:
        """Nothing to ask: every robot is heard already."""

    def cancel(self) -> None:
        """Nothing is open."""

    def collect(self, epoch: int, now_ns: int) -> Sample:
        ids, zones, ages, sampled = [], [], [], []
        logger, poses = self._node.get_logger(), self.poses
        for slot in self.rng.permutation(self._fresh(now_ns)):
            before = (poses.invalid_poses, poses.foreign_frames)
            pose = poses.pose(slot)
            if pose is None:
                if poses.foreign_frames != before[1]:
                    logger.warning(f"{self.names[slot]}: pose in frame {poses.last_foreign!r}, not "
                                   f"{poses.map_frame!r}: not sampled ({poses.foreign_frames} such poses so far; "
                                   f"see pose_source)", throttle_duration_sec=WARN_EVERY_SEC)
                else:
                    logger.warning(f"{self.names[slot]} has a NaN/inf pose: not sampled ({poses.invalid_poses} "
                                   f"such messages so far)", throttle_duration_sec=WARN_EVERY_SEC)
                continue
            ids.append(self.robot_ids[slot])
            zones.append(int(zone_of_pose(pose[0], pose[1], self.ring)))
            ages.append(now_ns - poses.received_ns(slot))
            sampled.append(pose[:3])
            if len(ids) == self.k:
                break
        return Sample(ids, zones, ages, sampled)

    def unusable(self, now_ns: int) -> int:
        """Robots of the roster that could not be sampled now (no fresh pose)."""
        return self.n - self.present(now_ns)

    def status(self) -> dict:
        return {"state_sampling": self.MODE, "state_messages_received": self.messages_received}


class RequestedStates:
    """state_sampling request: see the module docstring."""

    MODE = "request"

    def __init__(self, node, robot_ids: Sequence[int], n_local_states: int, map_frame: str, k: int, rng,
                 session: int, dropped):
        self._node, self.k, self.rng, self.session, self.dropped = node, k, rng, session, dropped
        self.robot_ids = np.asarray(robot_ids, dtype=np.int64)
        self._slot_of = {int(rid): slot for slot, rid in enumerate(self.robot_ids.tolist())}
        self.n_local_states, self.map_frame = n_local_states, map_frame
        n = len(self.robot_ids)
        self._hosts: Dict[str, np.ndarray] = {}  # answering node -> the slots it reported present
        self.members = np.zeros(n, dtype=bool)
        self.misses = np.zeros(n, dtype=np.int64)  # consecutive requests a robot did not answer
        self.retry_at = np.zeros(n, dtype=np.int64)  # the first request it may be drawn for again after a miss
        self.requests_sent = 0
        self.unknown_robots = set()  # announced ids that are not in the roster
        self._pending: Optional[StateRequest] = None
        self._pending_ids: Dict[int, int] = {}  # robot id -> slot, of the open request
        self._replies: Dict[int, StateReport] = {}
        self.requested = self.replied = self.missed = 0
        self.reports_received = self.memberships_received = 0
        self.bytes_received = 0  # serialized size of every reply and membership message received
        # Per collected request: wall time from sending it to its last valid reply (NaN: none came), what
        # request_lead must cover (bench/bench_coordinator.py).
        self.replies_in_seconds = deque(maxlen=100_000)
        self._request_wall_ns = self._last_reply_wall_ns = 0
        self._request_pub = node.create_publisher(StateRequest, STATE_REQUEST_TOPIC, STATE_REQUEST_QOS)
        node.create_subscription(StateReport, STATE_REPORTS_TOPIC, self.on_report, STATE_REPORT_QOS, raw=True)
        node.create_subscription(FleetMembership, FLEET_MEMBERSHIP_TOPIC, self.on_membership,
                                 MEMBERSHIP_SUBSCRIPTION_QOS, raw=True)

    @property
    def messages_received(self) -> int:
        """Robot state messages that reached the coordinator: replies (valid or not) and membership changes."""
        return self.reports_received + self.memberships_received

    # ------------------------------------------------------------------ membership

    def on_membership(self, data: bytes) -> None:
        """A node's robots joined or left: the draw is over the union of every node's present robots."""
        self.memberships_received += 1
        self.bytes_received += len(data)
        msg = decoded(data, FleetMembership, self.dropped)
        if msg is None:
            return
        slots = []
        for rid in msg.robot_ids:
            slot = self._slot_of.get(int(rid))
            if slot is None:
                if int(rid) not in self.unknown_robots:
                    self.unknown_robots.add(int(rid))
                    self._node.get_logger().warning(
                        f"{msg.host} answers for robot id {rid}, which is not in this coordinator's roster: "
                        f"ignored (add it to 'robots' to sample it)")
                continue
            slots.append(slot)
        joined = np.asarray(slots, dtype=np.int64)
        new = np.setdiff1d(joined, self._hosts.get(msg.host, ()))
        self.misses[new] = 0  # a robot that (re)joins is drawn at once
        self.retry_at[new] = 0
        if joined.size:
            self._hosts[msg.host] = joined
        else:
            self._hosts.pop(msg.host, None)
        self.members[:] = False
        for host_slots in self._hosts.values():
            self.members[host_slots] = True

    def present(self, now_ns: int) -> int:
        return int(np.count_nonzero(self.members))

    def unusable(self, now_ns: int) -> int:
        """Robots of the roster that are not present, or sit out draws after missed replies."""
        return len(self.robot_ids) - int(np.count_nonzero(self._eligible()))

    def _eligible(self) -> np.ndarray:
        """Present robots that are not sitting out requests after missed replies."""
        return self.members & (self.retry_at <= self.requests_sent)

    # ------------------------------------------------------------------ requests and replies

    def request(self, epoch: int, now_ns: int, deadline_ns: int) -> None:
        """Draw k of the eligible robots uniformly and ask them for their states (one broadcast); nothing if
        this epoch's request is open already."""
        if self._pending is not None and self._pending.epoch == epoch:
            return
        self._close()
        eligible = np.flatnonzero(self._eligible())
        slots = self.rng.choice(eligible, size=min(self.k, eligible.size), replace=False) if eligible.size else \
            np.zeros(0, dtype=np.int64)
        msg = StateRequest(session=self.session, epoch=epoch, request=self.requests_sent,
                           robot_ids=self.robot_ids[slots].tolist())
        msg.header.stamp = Time(nanoseconds=now_ns).to_msg()
        msg.header.frame_id = self.map_frame
        msg.deadline = Time(nanoseconds=deadline_ns).to_msg()
        self._pending = msg
        self._pending_ids = {int(self.robot_ids[s]): int(s) for s in slots}
        self._replies = {}
        self.requested += len(slots)
        self.requests_sent += 1
        self._request_wall_ns = self._last_reply_wall_ns = time.perf_counter_ns()
        self._request_pub.publish(msg)

    def on_report(self, data: bytes) -> None:
        """A StateReport: kept if it answers the open request for a robot it named, once, in range."""
        self.reports_received += 1
        self.bytes_received += len(data)
        msg = decoded(data, StateReport, self.dropped)
        if msg is None:
            return
        problem = self._problem(msg)
        if problem is not None:
            self.dropped.drop(REPORT, problem[0], f"robot {msg.robot_id}, epoch {msg.epoch}: {problem[1]}")
            return
        self._replies[msg.robot_id] = msg
        self._last_reply_wall_ns = time.perf_counter_ns()

    def _problem(self, msg: StateReport):
        pending = self._pending
        if msg.session != self.session:
            return "other session", f"session {msg.session}, this coordinator's is {self.session}"
        if pending is None or msg.request != pending.request:
            if msg.request < self.requests_sent:
                return "late", f"request {msg.request} is closed (its decision is made, failed or was cancelled)"
            return "wrong epoch", f"no request {msg.request} was sent"
        if msg.epoch != pending.epoch:
            return "wrong epoch", f"request {msg.request} is for epoch {pending.epoch}, not {msg.epoch}"
        if msg.robot_id not in self._pending_ids:
            return "not sampled", "this robot was not asked (forged or misaddressed)"
        if msg.local_state >= self.n_local_states:
            return "out of range", f"local_state {msg.local_state} >= |S_l| = {self.n_local_states}"
        if msg.header.frame_id.lstrip("/") != self.map_frame:
            return "foreign frame", f"frame {msg.header.frame_id!r}, not {self.map_frame!r}"
        if not np.isfinite([msg.x, msg.y, msg.yaw]).all():
            return "invalid pose", "NaN/inf pose"
        if msg.robot_id in self._replies:
            return "duplicate", "this robot has answered this request already"
        return None

    def collect(self, epoch: int, now_ns: int) -> Sample:
        """The replies to this epoch's request; the robots that did not answer back off."""
        pending = self._pending
        if pending is None or pending.epoch != epoch:
            self._close()
            return Sample()
        ids = [rid for rid in pending.robot_ids if rid in self._replies]
        zones = [self._replies[rid].local_state for rid in ids]
        ages = [now_ns - _ns(self._replies[rid].header.stamp) for rid in ids]
        poses = [(self._replies[rid].x, self._replies[rid].y, self._replies[rid].yaw) for rid in ids]
        self.replied += len(ids)
        self.replies_in_seconds.append((self._last_reply_wall_ns - self._request_wall_ns) / 1e9 if ids else math.nan)
        self._close()
        return Sample(ids, zones, ages, poses)

    def cancel(self) -> None:
        """Drop the open request unjudged (the operator stopped the fleet): its replies come too late to be
        used, and no robot is blamed for them."""
        if self._pending is not None:
            self._pending, self._pending_ids = None, {}

    def _close(self) -> None:
        """End the open request: its unanswered robots sit out the next 1, 2, 4, ... requests (MAX_BACKOFF at most)."""
        pending = self._pending
        if pending is None:
            return
        for rid, slot in self._pending_ids.items():
            if rid in self._replies:
                self.misses[slot] = 0
            else:
                self.missed += 1
                self.misses[slot] += 1
                wait = min(2 ** (int(self.misses[slot]) - 1), MAX_BACKOFF)
                self.retry_at[slot] = self.requests_sent + wait
        self._pending, self._pending_ids = None, {}

    def status(self) -> dict:
        return {"state_sampling": self.MODE, "state_messages_received": self.messages_received,
                "members": self.present(0), "replies_requested": self.requested, "replies_used": self.replied,
                "replies_missed": self.missed,
                "backing_off": int(np.count_nonzero(self.members & (self.retry_at > self.requests_sent)))}


class StateAnswers:
    """A local_agents node's side of state_sampling request: announce its present robots, answer requests.

    `poses` is the node's PoseSource over its robots (slot = index in robot_ids); a robot is present while
    its pose is fresh. Requests whose deadline passed more than `skew_ns` ago (a replay) or stamped more
    than `skew_ns` in the future are dropped and counted, and answer nothing.
    """

    def __init__(self, node, robot_ids: Sequence[int], poses, ring, odom_timeout_ns: int, skew_ns: int, dropped):
        self._node, self.poses, self.ring, self.dropped = node, poses, ring, dropped
        self.odom_timeout_ns, self.skew_ns = odom_timeout_ns, skew_ns
        self._slot_of = {int(rid): slot for slot, rid in enumerate(robot_ids)}
        self.robot_ids = list(robot_ids)
        self.present = np.zeros(0, dtype=np.int64)  # slots announced present
        self.answered = 0
        self._host = node.get_fully_qualified_name()
        self._membership_pub = node.create_publisher(FleetMembership, FLEET_MEMBERSHIP_TOPIC, LATCHED_QOS)
        self._report_pub = node.create_publisher(StateReport, STATE_REPORTS_TOPIC, STATE_REPORT_QOS)
        node.create_subscription(StateRequest, STATE_REQUEST_TOPIC, self.on_request, STATE_REQUEST_QOS)

    def update_membership(self, now_ns: int) -> None:
        """Announce the present robots when the set changed (join: first fresh pose; leave: pose gone stale)."""
        present = self.poses.fresh_slots(now_ns, self.odom_timeout_ns)
        present = present[present < len(self.robot_ids)]
        if not np.array_equal(present, self.present):
            self._announce(present)

    def leave(self) -> None:
        """A clean shutdown: this node answers for no robot any more."""
        self._announce(np.zeros(0, dtype=np.int64))

    def _announce(self, slots: np.ndarray) -> None:
        self.present = slots
        msg = FleetMembership(host=self._host, robot_ids=[self.robot_ids[s] for s in slots.tolist()])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._membership_pub.publish(msg)

    def on_request(self, msg: StateRequest) -> None:
        now_ns = self._node.get_clock().now().nanoseconds
        if now_ns > _ns(msg.deadline) + self.skew_ns:
            self.dropped.drop("StateRequest", "expired", f"epoch {msg.epoch}: its deadline passed "
                              f"{(now_ns - _ns(msg.deadline)) / 1e9:.2f} s ago (a replay, or a clock skew)")
            return
        if _ns(msg.header.stamp) > now_ns + self.skew_ns:
            self.dropped.drop("StateRequest", "future stamp", f"epoch {msg.epoch}: stamped "
                              f"{(_ns(msg.header.stamp) - now_ns) / 1e9:.2f} s ahead of this node's clock")
            return
        for rid in msg.robot_ids:
            slot = self._slot_of.get(int(rid))
            if slot is None or not self.poses.is_fresh(slot, now_ns, self.odom_timeout_ns):
                continue
            pose = self.poses.pose(slot)
            if pose is None:
                continue
            report = StateReport(session=msg.session, epoch=msg.epoch, request=msg.request, robot_id=int(rid),
                                 local_state=int(zone_of_pose(pose[0], pose[1], self.ring)),
                                 x=float(pose[0]), y=float(pose[1]), yaw=float(pose[2]))
            report.header.stamp = Time(nanoseconds=self.poses.received_ns(slot)).to_msg()
            report.header.frame_id = self.poses.map_frame
            self._report_pub.publish(report)
            self.answered += 1
