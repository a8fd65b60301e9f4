"""Latest odometry (or any message) of many robots, kept as raw bytes and decoded only when someone asks.

A node following n robots at 20 Hz receives 20 n messages a second. A plain
subscription builds a Python Odometry for each (~30 us); a raw one hands over
the bytes, and storing them costs almost nothing. The coordinator looks at
only k robots per decision, so it keeps bytes and receive times here and
decodes just the k it samples, not all n streams every tick; local agents
decode their robots' poses once per control tick.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
from nav_msgs.msg import Odometry

from altmarl_ros.names import odom_topic
from altmarl_ros.nodes._ros import ODOM_QOS
from altmarl_ros.nodes._validate import DroppedMessages, odometry_problem

NEVER_NS = np.iinfo(np.int64).min


def is_fresh(received_ns: int, now_ns: int, max_age_ns: int) -> bool:
    """Received at most max_age_ns before now_ns (not "in the future": sim time went back)."""
    return received_ns != NEVER_NS and 0 <= now_ns - received_ns <= max_age_ns


class LatestOdometry:
    """One raw Odometry subscription per topic; the callback stores bytes and the receive time.

    Receive times are read from the node's clock, so with use_sim_time "fresh"
    means fresh in simulated time. Streams are addressed by slot (their index
    in `topics`).
    """

    def __init__(self, node, topics: Sequence[str], msg_type=Odometry, dropped: Optional[DroppedMessages] = None):
        self._raw = [None] * len(topics)
        self._topics = list(topics)
        self._judged = np.zeros(len(topics), dtype=bool)  # the latest message was checked (counted once)
        self.dropped = DroppedMessages(node) if dropped is None else dropped
        self.received_ns = np.full(len(topics), NEVER_NS, dtype=np.int64)
        self.received_count = np.zeros(len(topics), dtype=np.int64)
        self._clock = node.get_clock()
        self.subscriptions = [node.create_subscription(msg_type, topic, self._store_into(slot), ODOM_QOS, raw=True)
                              for slot, topic in enumerate(topics)]

    @classmethod
    def of_robots(cls, node, robots: Sequence, dropped: Optional[DroppedMessages] = None) -> "LatestOdometry":
        """Slot i follows <robots[i]>/odom (a robot name, or an id named robot_<id>)."""
        return cls(node, [odom_topic(robot) for robot in robots], dropped=dropped)

    def raw(self, slot: int) -> Optional[bytes]:
        """The latest serialized message of `slot` (None if none arrived)."""
        return self._raw[slot]

    def _store_into(self, slot: int):
        raw, received_ns, received_count, clock = self._raw, self.received_ns, self.received_count, self._clock
        judged = self._judged

        def store(data: bytes) -> None:
            raw[slot] = data
            judged[slot] = False
            received_ns[slot] = clock.now().nanoseconds
            received_count[slot] += 1
        return store

    def fresh_slots(self, now_ns: int, max_age_ns: int) -> np.ndarray:
        """Slots whose latest message arrived at most `max_age_ns` before `now_ns`.

        A message "received in the future" (sim time jumped back: the simulator restarted)
        is not fresh; the robot's next message makes it so again.
        """
        age = now_ns - self.received_ns
        return np.flatnonzero((self.received_ns != NEVER_NS) & (age >= 0) & (age <= max_age_ns))

    def is_fresh(self, slot: int, now_ns: int, max_age_ns: int) -> bool:
        return is_fresh(int(self.received_ns[slot]), now_ns, max_age_ns)

    def pose(self, slot: int) -> Optional[Tuple[float, float, float]]:
        """Decode the latest message of `slot`: None if it never arrived or is unusable (undecodable,
        not finite, off the map; counted in `dropped` once per message)."""
        data = self._raw[slot]
        if data is None:
            return None
        state, reason = odometry_problem(data)
        if state is None:
            if not self._judged[slot]:
                self.dropped.drop("Odometry", reason, self._topics[slot])
            self._judged[slot] = True
            return None
        self._judged[slot] = True
        return state[:3]
