"""Goals for robots whose navigator drives (command_type goal_pose): what each robot was last sent.
(navigate_to_pose sends the same goals as actions: nodes/_navigate.py; nodes/_senders.goal_sender picks.)

A Nav2 navigator re-plans on every goal it receives, so a goal goes out only when
it changes: a new goal zone, or a switch between driving and holding. Holding (a
stop, a stale GlobalCommand, odometry lost, shutdown) is a goal at the robot's
last known pose with its own heading, so the navigator brings it to rest where it
is; the next zone goal after a hold goes out again even if the zone is unchanged
(the reconnect after a lost coordinator). A zone goal faces along the way the
robot came (the bearing from its pose to the goal), so it does not turn on arrival.
"""
import math
from typing import Sequence

from geometry_msgs.msg import PoseStamped

from altmarl_ros.names import goal_topic
from altmarl_ros.nodes._ros import GOAL_QOS

NOTHING_SENT = -2  # no goal sent yet: a hold is not needed, the robot was never told to move
HOLD = -1  # the last goal sent holds the robot at its pose
ARRIVED_M = 1e-3  # closer than this to the goal, the bearing is undefined: keep the robot's heading


def pose_stamped(stamp, frame: str, x: float, y: float, yaw: float) -> PoseStamped:
    goal = PoseStamped()
    goal.header.stamp, goal.header.frame_id = stamp, frame
    goal.pose.position.x, goal.pose.position.y = x, y
    goal.pose.orientation.z, goal.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    return goal


def bearing(pose: Sequence[float], x: float, y: float) -> float:
    """The heading from `pose` (x, y, yaw) towards (x, y); the pose's own yaw when already there."""
    dx, dy = x - pose[0], y - pose[1]
    return math.atan2(dy, dx) if math.hypot(dx, dy) > ARRIVED_M else float(pose[2])


class GoalSender:
    """One latched goal_pose publisher per robot and the goal each was last sent (a zone id or HOLD)."""

    def __init__(self, node, robot_names: Sequence[str], map_frame: str):
        self._node = node
        self.map_frame = map_frame
        self._pubs = [node.create_publisher(PoseStamped, goal_topic(name), GOAL_QOS) for name in robot_names]
        self.sent = [NOTHING_SENT] * len(robot_names)
        self.published = 0  # goals sent so far (tests and diagnostics)

    def _publish(self, slot: int, x: float, y: float, yaw: float) -> None:
        self._pubs[slot].publish(pose_stamped(self._node.get_clock().now().to_msg(), self.map_frame, x, y, yaw))
        self.published += 1

    def drive(self, slot: int, zone: int, centre, pose) -> None:
        """Send zone `zone`'s centre unless it is the goal in flight; pose: the robot's (x, y, yaw)."""
        if self.sent[slot] != zone:
            x, y = float(centre[0]), float(centre[1])
            self._publish(slot, x, y, bearing(pose, x, y))
            self.sent[slot] = zone

    def hold_all(self, pose_of, keep=()) -> None:
        """Hold every robot that drives to a zone goal, except those in `keep`, at its last known pose
        (pose_of(slot) -> (x, y, yaw) or None). A robot never sent a goal needs no hold; one whose pose
        is unknown now is held at a later call."""
        for slot, sent in enumerate(self.sent):
            if sent >= 0 and slot not in keep:
                pose = pose_of(slot)
                if pose is not None:
                    self._publish(slot, float(pose[0]), float(pose[1]), float(pose[2]))
                    self.sent[slot] = HOLD

    def status(self) -> dict:
        """/diagnostics values."""
        return {"goals_sent": self.published}
