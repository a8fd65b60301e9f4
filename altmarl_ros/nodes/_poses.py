"""Where the coordinator and the local agents get each robot's pose in the map frame.

Zones are defined in `map`, so a pose counts only if it is in `map`. Three
sources (parameter `pose_source`):
- `odometry`: <robot>/odom whose header.frame_id is the map frame (the
  simulator's ground-truth odometry, or a robot whose odometry is already
  localized);
- `tf`: map -> <robot>/base_link through /tf and /tf_static (a localizer's
  map -> <robot>/odom composed with the robot's odom -> base_link);
- `pose_topic`: geometry_msgs/PoseWithCovarianceStamped on <robot>/<pose_topic>
  in the map frame (what AMCL and other localizers publish).
A pose in any other frame, or whose TF chain does not reach the map, is not
used and is counted (`foreign_frames`), like a NaN/inf pose (`invalid_poses`).
Messages are kept raw and decoded only for the robots asked about.

The TF path is a small 2-D transform tree here (latest transform per child
frame, no interpolation), because tf2_ros has no wheel: the coordinator asks
for the newest pose once per decision, which is what tf2's "latest" lookup
(time 0) gives.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.serialization import deserialize_message
from tf2_msgs.msg import TFMessage

from altmarl_ros.node_parameters import POSE_SOURCES
from altmarl_ros.names import TF_STATIC_TOPIC, TF_TOPIC, base_frame, pose_topic
from altmarl_ros.nodes._cdr import odometry_frame_id, yaw_from_quaternion
from altmarl_ros.nodes._odom_store import NEVER_NS, LatestOdometry, is_fresh
from altmarl_ros.nodes._ros import TF_STATIC_QOS

MAX_TF_DEPTH = 16

Pose = Tuple[float, float, float]


def _finite(pose: Pose) -> Optional[Pose]:
    return pose if all(math.isfinite(v) for v in pose) else None


class PoseSource:
    """Fresh map-frame poses of a list of robots, addressed by slot (index in the list)."""

    KIND = ""  # the pose_source parameter value that selects it

    def __init__(self, map_frame: str):
        self.map_frame = map_frame
        self.invalid_poses = 0  # NaN/inf poses seen
        self.foreign_frames = 0  # poses not in (or not reachable from) the map frame
        self.last_foreign = ""  # the frame of the last one, for the log

    def fresh_slots(self, now_ns: int, max_age_ns: int) -> np.ndarray:
        raise NotImplementedError

    def pose(self, slot: int) -> Optional[Pose]:
        """(x, y, yaw) in the map frame, or None (counted) when not finite or not in the map frame."""
        raise NotImplementedError

    def received_ns(self, slot: int) -> int:
        """When the slot's latest pose arrived (this node's clock; NEVER_NS if none has)."""
        raise NotImplementedError

    def messages_received(self, n_slots: int) -> int:
        """Pose messages received so far for the first n_slots slots (what subscribing costs)."""
        raise NotImplementedError

    def is_fresh(self, slot: int, now_ns: int, max_age_ns: int) -> bool:
        return is_fresh(self.received_ns(slot), now_ns, max_age_ns)

    def _checked(self, frame: str, pose: Optional[Pose]) -> Optional[Pose]:
        if frame != self.map_frame:
            self.foreign_frames += 1
            self.last_foreign = frame
            return None
        if pose is None or _finite(pose) is None:
            self.invalid_poses += 1
            return None
        return pose

    def fresh_poses(self, now_ns: int, max_age_ns: int) -> Tuple[np.ndarray, np.ndarray]:
        """(slots, poses [m, 3]) of every robot with a fresh, finite map-frame pose."""
        slots, poses = [], []
        for slot in self.fresh_slots(now_ns, max_age_ns):
            pose = self.pose(slot)
            if pose is not None:
                slots.append(slot)
                poses.append(pose)
        return np.array(slots, dtype=np.int64), np.array(poses, dtype=np.float64).reshape(-1, 3)


class _StoredPoses(PoseSource):
    """A source whose latest message per robot is kept in `self.messages` (nodes/_odom_store)."""

    def fresh_slots(self, now_ns, max_age_ns):
        return self.messages.fresh_slots(now_ns, max_age_ns)

    def received_ns(self, slot):
        return int(self.messages.received_ns[slot])

    def messages_received(self, n_slots):
        return int(self.messages.received_count[:n_slots].sum())


class OdometryPoses(_StoredPoses):
    """<robot>/odom, used only when its header.frame_id is the map frame."""

    KIND = "odometry"

    def __init__(self, node, robots: Sequence[str], map_frame: str, dropped=None):
        super().__init__(map_frame)
        self.messages = LatestOdometry.of_robots(node, robots, dropped)

    def pose(self, slot):
        pose = self.messages.pose(slot)  # None: none yet, or unusable (the message is counted as dropped)
        if pose is None:
            if self.messages.raw(slot) is not None:
                self.invalid_poses += 1
            return None
        return self._checked(odometry_frame_id(self.messages.raw(slot)), pose)


class PoseTopicPoses(_StoredPoses):
    """geometry_msgs/PoseWithCovarianceStamped on <robot>/<topic>, in the map frame."""

    KIND = "pose_topic"

    def __init__(self, node, robots: Sequence[str], map_frame: str, topic: str, dropped=None):
        super().__init__(map_frame)
        self.messages = LatestOdometry(node, [pose_topic(robot, topic) for robot in robots],
                                       msg_type=PoseWithCovarianceStamped, dropped=dropped)

    def pose(self, slot):
        data = self.messages.raw(slot)
        if data is None:
            return None
        try:
            msg = deserialize_message(data, PoseWithCovarianceStamped)
        except Exception:  # noqa: BLE001 - truncated or foreign bytes: never let a message kill the node
            self.messages.dropped.drop("PoseWithCovarianceStamped", "undecodable", f"slot {slot}")
            return None
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        return self._checked(msg.header.frame_id, (p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)))


class TransformTree:
    """The newest planar transform parent -> child of every frame on /tf and /tf_static."""

    def __init__(self, node):
        self._clock = node.get_clock()
        self.parent: Dict[str, str] = {}
        self.transform: Dict[str, Pose] = {}
        self.received_ns: Dict[str, int] = {}
        self.received_count: Dict[str, int] = {}  # transforms received per child frame
        node.create_subscription(TFMessage, TF_TOPIC, self._store, 100)
        node.create_subscription(TFMessage, TF_STATIC_TOPIC, self._store, TF_STATIC_QOS)

    def _store(self, msg: TFMessage) -> None:
        now_ns = self._clock.now().nanoseconds
        for t in msg.transforms:
            child = t.child_frame_id.lstrip("/")
            r, v = t.transform.rotation, t.transform.translation
            self.parent[child] = t.header.frame_id.lstrip("/")
            self.transform[child] = (v.x, v.y, yaw_from_quaternion(r.x, r.y, r.z, r.w))
            self.received_ns[child] = now_ns
            self.received_count[child] = self.received_count.get(child, 0) + 1

    def lookup(self, target: str, frame: str) -> Tuple[Optional[Pose], str]:
        """(pose of `frame`'s origin in `target`, or None; the root frame the chain reached)."""
        x, y, yaw = 0.0, 0.0, 0.0
        for _ in range(MAX_TF_DEPTH):
            if frame == target:
                return (x, y, yaw), frame
            if frame not in self.parent:
                return None, frame
            tx, ty, tyaw = self.transform[frame]
            c, s = math.cos(tyaw), math.sin(tyaw)
            x, y, yaw = tx + c * x - s * y, ty + s * x + c * y, tyaw + yaw
            frame = self.parent[frame]
        return None, frame  # a loop


class TfPoses(PoseSource):
    """map -> <robot>/base_link through the transform tree; fresh = base_link's transform is fresh."""

    KIND = "tf"

    def __init__(self, node, robots: Sequence[str], map_frame: str):
        super().__init__(map_frame)
        self.tree = TransformTree(node)
        self.frames = [base_frame(robot) for robot in robots]

    def received_ns(self, slot):
        return self.tree.received_ns.get(self.frames[slot], NEVER_NS)

    def messages_received(self, n_slots):
        return sum(self.tree.received_count.get(frame, 0) for frame in self.frames[:n_slots])

    def fresh_slots(self, now_ns, max_age_ns):
        received = np.array([self.tree.received_ns.get(frame, NEVER_NS) for frame in self.frames], dtype=np.int64)
        age = now_ns - received
        return np.flatnonzero((received != NEVER_NS) & (age >= 0) & (age <= max_age_ns))

    def pose(self, slot):
        pose, root = self.tree.lookup(self.map_frame, self.frames[slot])
        if pose is None:
            return self._checked(root, None)
        return self._checked(self.map_frame, (pose[0], pose[1], math.atan2(math.sin(pose[2]), math.cos(pose[2]))))


def declare_pose_source(node, robots: Sequence[str], dropped=None) -> PoseSource:
    """Parameters `pose_source`, `map_frame`, `pose_topic` -> the PoseSource for `robots`
    (`dropped`: where unusable messages are counted, a nodes._validate.DroppedMessages)."""
    from altmarl_ros.nodes._params import declare_choice, declare_str

    source = declare_choice(node, "pose_source", POSE_SOURCES, "where robot poses in the map frame come from")
    map_frame = declare_str(node, "map_frame", "map", "the frame zones are defined in", required=True)
    topic = declare_str(node, "pose_topic", "pose",
                        "with pose_source pose_topic: <robot>/<pose_topic> (PoseWithCovarianceStamped)",
                        required=True)
    if source == "odometry":
        return OdometryPoses(node, robots, map_frame, dropped)
    if source == "tf":
        return TfPoses(node, robots, map_frame)
    return PoseTopicPoses(node, robots, map_frame, topic, dropped)
