"""Nodes never trust a message: every field is checked before use; a bad message is dropped.

Any node on the ROS domain can publish on altmarl/global_command or robot_<i>/odom,
and a bug or a truncated packet can carry any bytes. Each consumer therefore
reads through this module: GlobalCommand is received raw and deserialized here,
then every field is checked against the policy and the fleet (CommandCheck);
odometry is decoded with the fast CDR reader and checked (decode_pose). A bad
message is dropped, counted by reason (`DroppedMessages.counts`, read by tests
and status lines) and logged at most once every LOG_EVERY_SEC; no message can
raise out of a callback, so no node dies of one. A new GlobalCommand field gets
one more check in CommandCheck.problem.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
from altmarl_msgs.msg import GlobalCommand
from rclpy.serialization import deserialize_message

from altmarl_ros.core.counts import n_count_vectors, rank
from altmarl_ros.core.observer import scale_counts
from altmarl_ros.core.observers import OBSERVERS, TABULAR, observers_on
from altmarl_ros.nodes._cdr import odometry_state
from altmarl_ros.names import GLOBAL_COMMAND_TOPIC, MAP_FRAME
from altmarl_ros.nodes._ros import GLOBAL_COMMAND_SUBSCRIPTION_QOS

LOG_EVERY_SEC = 5.0
MAX_POSITION_M = 1e6  # |x|, |y| beyond this is not a robot on a warehouse floor
MAX_POLICY_ID_CHARS = 64
MAX_RESOLUTION = 2**31 - 1  # query_counts sum: int32 ranks, like every count vector the solver builds
ESTIMATE_TOLERANCE = 1e-6  # |sum(estimate) - 1|


class DroppedMessages:
    """Per-reason counts of dropped messages, with one throttled warning per node."""

    def __init__(self, node):
        self._logger = node.get_logger()
        self.counts: Counter = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def drop(self, kind: str, reason: str, detail: str) -> None:
        key = f"{kind}: {reason}"
        self.counts[key] += 1
        self._logger.warning(f"dropped a {kind} message ({detail}); {self.counts[key]} dropped for {reason!r}, "
                             f"{self.total} in all so far", throttle_duration_sec=LOG_EVERY_SEC)


class CommandCheck:
    """Checks a GlobalCommand against the policy's sizes and k and the fleet's robot ids.

    sizes: (n_sg, n_ag, n_sl) of the policy (or of the scenario for a node without one);
    k: the policy's k, or None to accept any k up to the fleet size; robot_ids: every
    robot of the fleet, or None when this node knows only its own robots.
    """

    def __init__(self, sizes: Sequence[int], k: Optional[int] = None, robot_ids: Optional[Sequence[int]] = None):
        self.n_sg, self.n_ag, self.n_sl = (int(size) for size in sizes)
        self.k = k
        self.robot_ids = None if robot_ids is None else frozenset(int(i) for i in robot_ids)

    def problem(self, msg: GlobalCommand) -> Optional[Tuple[str, str]]:
        """(reason, detail) of the first bad field, or None when the command can be used."""
        if msg.header.frame_id != MAP_FRAME:
            return "frame_id", f"header.frame_id {msg.header.frame_id!r}, expected {MAP_FRAME!r}"
        if not msg.global_state < self.n_sg:
            return "global_state", f"global_state {msg.global_state} not in 0..{self.n_sg - 1}"
        if not msg.global_action < self.n_ag:
            return "global_action", f"global_action {msg.global_action} not in 0..{self.n_ag - 1}"
        fleet = None if self.robot_ids is None else len(self.robot_ids)
        if self.k is not None and msg.k != self.k:
            return "k", f"k {msg.k}, but the policy was trained for k = {self.k}"
        if msg.k < 1 or (fleet is not None and msg.k > fleet):
            return "k", f"k {msg.k} not in 1..{fleet or 'n'}"
        if msg.observer not in observers_on(TABULAR):
            return "observer", f"observer {msg.observer!r} not one of {list(observers_on(TABULAR))}"
        ids = list(msg.sampled_ids)
        estimates = OBSERVERS[msg.observer].estimates
        least = 0 if estimates else 1  # an observer that keeps an estimate (a filter) may decide on it alone
        if not least <= len(ids) <= msg.k:
            return "sampled_ids", f"{len(ids)} sampled_ids for k = {msg.k}"
        if len(set(ids)) != len(ids):
            return "sampled_ids", "sampled_ids repeat a robot"
        if self.robot_ids is not None and not self.robot_ids.issuperset(ids):
            unknown = sorted(set(ids) - self.robot_ids)[:3]
            return "sampled_ids", f"sampled_ids name robots not in the fleet, e.g. {unknown}"
        counts = list(msg.counts)
        if len(counts) != self.n_sl:
            return "counts", f"{len(counts)} counts, the policy has {self.n_sl} local states"
        if sum(counts) != len(ids):
            return "counts", f"counts sum to {sum(counts)}, but {len(ids)} robots were sampled"
        estimate = np.asarray(msg.estimate, dtype=np.float64)
        if len(estimate) != self.n_sl or not np.all(np.isfinite(estimate)) or np.any(estimate < 0) \
                or abs(estimate.sum() - 1.0) > ESTIMATE_TOLERANCE:
            return "estimate", f"estimate {estimate.tolist()[:8]} is not a distribution over {self.n_sl} states"
        query = np.asarray(msg.query_counts, dtype=np.int64)
        if len(query) != self.n_sl or query.sum() < 1 or query.sum() > MAX_RESOLUTION:
            return "query_counts", f"query_counts {query.tolist()[:8]}: need {self.n_sl} counts summing to 1.." \
                                   f"{MAX_RESOLUTION}"
        if not estimates:
            if not np.array_equal(query, scale_counts(np.asarray(counts, dtype=np.int64), msg.k)):
                return "query_counts", f"a {msg.observer} observer queries the counts scaled to k"
        try:
            expected = rank(query)
        except Exception:  # noqa: BLE001 - a count vector the ranking cannot hold (N_F beyond int64, or beyond
            return "query_counts", f"query_counts {query.tolist()[:8]} cannot be ranked"  # any table at all)
        n_f = n_count_vectors(int(query.sum()), self.n_sl)  # what rank() just checked fits int64
        if not msg.count_rank < n_f:
            return "count_rank", f"count_rank {msg.count_rank} not below N_F = {n_f} for query_counts summing " \
                                 f"to {int(query.sum())}"
        if msg.count_rank != expected:
            return "count_rank", f"count_rank {msg.count_rank} is not the rank {expected} of query_counts"
        if len(msg.policy_id) > MAX_POLICY_ID_CHARS:
            return "policy_id", f"policy_id of {len(msg.policy_id)} characters"
        return None


def decoded(data: bytes, msg_type, dropped: DroppedMessages):
    """The message in raw `data`, or None after dropping and counting it as undecodable: any bytes can arrive."""
    try:
        return deserialize_message(data, msg_type)
    except Exception as err:  # noqa: BLE001 - rclpy raises several types
        dropped.drop(msg_type.__name__, "undecodable", f"{len(data)} bytes: {type(err).__name__}")
        return None


def subscribe_commands(node, check: CommandCheck, on_command: Callable[[GlobalCommand], None],
                       dropped: DroppedMessages):
    """Raw GlobalCommand subscription: deserialize, check, then call on_command(msg) (valid only)."""
    def receive(data: bytes) -> None:
        msg = decoded(data, GlobalCommand, dropped)
        if msg is None:
            return
        found = check.problem(msg)
        if found is not None:
            dropped.drop("GlobalCommand", found[0], f"epoch {msg.epoch}: {found[1]}")
            return
        on_command(msg)
    return node.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, receive, GLOBAL_COMMAND_SUBSCRIPTION_QOS,
                                    raw=True)


RETIRED_SESSIONS = 16  # coordinator sessions remembered as replaced (their commands are replays)


class CommandFreshness:
    """Is a (well-formed) GlobalCommand a new decision, by its stamp and epoch, never by arrival alone?

    Replayed or stale commands must not move robots (a bag of the last command replayed after the
    coordinator died kept 45 of 50 robots moving). A command is refused when its header.stamp is older
    than `max_age` by this node's clock (beyond `skew`), or more than `skew` in the future; when its
    epoch is not after the last accepted one of the same coordinator session; or when it comes from a
    session that a newer one replaced. A new session (a restarted coordinator, epochs from 0 again) is
    accepted when its stamp is fresh. `skew` is the clock difference tolerated between the
    coordinator's host and this one (both read /clock in simulation).
    """

    def __init__(self, max_age_ns: int, skew_ns: int):
        self.max_age_ns, self.skew_ns = max_age_ns, skew_ns
        self.session: Optional[int] = None
        self.epoch = -1
        self.retired: list = []

    def problem(self, msg: GlobalCommand, now_ns: int, check_epoch: bool = True) -> Optional[Tuple[str, str]]:
        """(reason, detail) when `msg` must not be acted on now; check_epoch=False: by its stamp only."""
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        age = now_ns - stamp_ns
        if age > self.max_age_ns + self.skew_ns:
            return "stale stamp", (f"epoch {msg.epoch} stamped {age / 1e9:.2f} s ago (limit "
                                   f"{self.max_age_ns / 1e9:g} s + clock skew {self.skew_ns / 1e9:g} s)")
        if age < -self.skew_ns:
            return "future stamp", f"epoch {msg.epoch} stamped {-age / 1e9:.2f} s ahead of this node's clock"
        if not check_epoch:
            return None
        if msg.session in self.retired:
            return "replaced session", f"session {msg.session} was replaced by a restarted coordinator"
        if msg.session == self.session and msg.epoch <= self.epoch:
            return "old epoch", f"epoch {msg.epoch} is not after epoch {self.epoch} of this session"
        return None

    def accept(self, msg: GlobalCommand) -> None:
        if self.session is not None and msg.session != self.session:
            self.retired = (self.retired + [self.session])[-RETIRED_SESSIONS:]
        self.session, self.epoch = msg.session, msg.epoch


def odometry_problem(data: bytes):
    """((x, y, yaw, v, w), None) for usable odometry bytes, else (None, reason)."""
    try:
        state = odometry_state(data)
    except Exception:  # noqa: BLE001 - truncated or foreign bytes: struct or rclpy errors
        return None, "undecodable"
    x, y, yaw, v, w = state
    if not all(math.isfinite(value) for value in state):
        return None, "not finite"
    if abs(x) > MAX_POSITION_M or abs(y) > MAX_POSITION_M:
        return None, "position out of range"
    return state, None

