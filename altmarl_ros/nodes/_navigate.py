"""Goals through Nav2's NavigateToPose action (command_type navigate_to_pose): each robot's goal in flight.

The goals are goal_pose's (nodes/_goals.py: the goal zone's centre in the map frame, facing the
way from the robot, sent only when it changes), sent as action goals on <robot>/navigate_to_pose,
so the agents hear how each one ends and a stop can cancel it:
- one goal in flight per robot. A goal that a newer decision replaces is cancelled once the server
  has answered the newer one, not before: Nav2's navigator preempts the old goal itself when the
  new one arrives, but a cancel that reached it first would stop the robot and end the new goal
  with it (bt_action_server terminates every goal it holds on a cancel). A server that does not
  preempt is left with one goal too.
- a hold (every stop: the operator's, a stale GlobalCommand, odometry lost, shutdown) cancels the
  goal in flight at once, by its id, answered or not (at shutdown an answer on its way would never be
  read); a cancel sent before the answer came is sent again when it comes, in case it reached the
  server before the goal did. Nav2's controller brings the robot to rest on a cancel.
- nothing waits for a server: a robot whose server is not up is skipped at that tick, logged once
  and counted (`navigators_absent`); its goal goes out at the first tick the server is there.
- a goal the navigator aborts or rejects is not re-sent (goal_pose, which never hears, does not
  re-send either): the robot's next different goal goes out.
Feedback and results are counted for /diagnostics (`status`).
"""
import uuid
from typing import Dict, List, Optional, Sequence

from action_msgs.msg import GoalStatus
from nav2_msgs.action import NavigateToPose
from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from unique_identifier_msgs.msg import UUID

from altmarl_ros.names import navigate_action
from altmarl_ros.nodes._goals import HOLD, NOTHING_SENT, bearing, pose_stamped

COUNTERS = ("goals_sent", "goals_accepted", "goals_rejected", "feedback_received", "goals_succeeded",
            "goals_aborted", "goals_canceled", "goals_preempted", "cancels_sent")
ENDED = {GoalStatus.STATUS_SUCCEEDED: "goals_succeeded", GoalStatus.STATUS_ABORTED: "goals_aborted",
         GoalStatus.STATUS_CANCELED: "goals_canceled"}
LOG_EVERY_SEC = 5.0  # aborted and rejected goals are logged at most this often
NOT_CANCELLED, CANCELLED_UNANSWERED, CANCELLED = range(3)  # a cancel sent before / after the goal's answer
NO_ANSWER = NavigateToPose.Impl.SendGoalService.Response()  # what a handle made only to cancel by id carries


class _Goal:
    """One goal sent to a robot: its id, the server's answer, whether a newer goal replaced it."""

    __slots__ = ("slot", "goal_id", "answer", "superseded", "cancelled")

    def __init__(self, slot: int, goal_id: UUID, answer):
        self.slot = slot
        self.goal_id = goal_id
        self.answer = answer  # send_goal_async's future
        self.superseded = False
        self.cancelled = NOT_CANCELLED

    @property
    def handle(self):
        """The goal handle once the answer is in (whether or not its callback has run yet)."""
        return self.answer.result() if self.answer.done() else None


class NavigateSender:
    """One NavigateToPose action client per robot; the interface of nodes/_goals.GoalSender."""

    def __init__(self, node, robot_names: Sequence[str], map_frame: str):
        self._node = node
        self.map_frame = map_frame
        self._actions = [navigate_action(name) for name in robot_names]
        self._clients = [ActionClient(node, NavigateToPose, action) for action in self._actions]
        n = len(robot_names)
        self.sent = [NOTHING_SENT] * n  # the zone of each robot's last goal, or HOLD (as GoalSender's)
        self._current: List[Optional[_Goal]] = [None] * n  # the goal a robot should be driving to
        self._live: List[List[_Goal]] = [[] for _ in range(n)]  # sent, not yet ended (or rejected)
        self.absent = [False] * n  # no server at the robot's last send
        self.counts: Dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def drive(self, slot: int, zone: int, centre, pose) -> None:
        """Send zone `zone`'s centre unless it is the robot's goal already; pose: the robot's (x, y, yaw)."""
        if self.sent[slot] == zone:
            return
        if not self._clients[slot].server_is_ready():
            if not self.absent[slot]:
                self.absent[slot] = True
                self._node.get_logger().warning(f"{self._actions[slot]}: no NavigateToPose server; the robot's "
                                                f"goal goes out when one appears (navigators_absent)")
            return
        if self.absent[slot]:
            self.absent[slot] = False
            self._node.get_logger().info(f"{self._actions[slot]}: NavigateToPose server found")
        x, y = float(centre[0]), float(centre[1])
        request = NavigateToPose.Goal(pose=pose_stamped(self._node.get_clock().now().to_msg(), self.map_frame,
                                                        x, y, bearing(pose, x, y)))
        for older in self._live[slot]:
            older.superseded = True
        goal_id = UUID(uuid=list(uuid.uuid4().bytes))
        goal = _Goal(slot, goal_id, self._clients[slot].send_goal_async(request, feedback_callback=self._on_feedback,
                                                                        goal_uuid=goal_id))
        goal.answer.add_done_callback(lambda _: self._node.destroying or self._on_answer(goal))
        self._current[slot] = goal
        self._live[slot].append(goal)
        self.sent[slot] = zone
        self.counts["goals_sent"] += 1

    def hold_all(self, pose_of=None, keep=()) -> None:
        """Cancel the goals in flight of every robot not in `keep` that was sent a zone goal (pose_of:
        GoalSender's argument; a cancel needs no pose)."""
        for slot, sent in enumerate(self.sent):
            if sent >= 0 and slot not in keep:
                self._current[slot] = None
                self.sent[slot] = HOLD
                self._cancel_replaced(slot)

    def _on_answer(self, goal: _Goal) -> None:
        handle = goal.handle
        if not handle.accepted:
            self.counts["goals_rejected"] += 1
            self._live[goal.slot].remove(goal)
            if self._current[goal.slot] is goal:
                self._current[goal.slot] = None
            self._node.get_logger().warning(f"{self._actions[goal.slot]}: goal rejected",
                                            throttle_duration_sec=LOG_EVERY_SEC)
        else:
            self.counts["goals_accepted"] += 1
            handle.get_result_async().add_done_callback(
                lambda done: self._node.destroying or self._on_result(goal, done.result()))
        self._cancel_replaced(goal.slot)

    def _cancel_replaced(self, slot: int) -> None:
        """Cancel the robot's goals other than its current one, once the current one (if any) has been
        answered; again, once answered, those cancelled before their answer came."""
        current = self._current[slot]
        if current is not None and current.handle is None:
            return
        for goal in self._live[slot]:
            handle = goal.handle
            if goal is current or (handle is not None and not handle.accepted) or goal.cancelled == CANCELLED or \
                    (goal.cancelled == CANCELLED_UNANSWERED and handle is None):
                continue
            ClientGoalHandle(self._clients[slot], goal.goal_id, NO_ANSWER).cancel_goal_async()  # by id
            goal.cancelled = CANCELLED_UNANSWERED if handle is None else CANCELLED
            self.counts["cancels_sent"] += 1

    def _on_result(self, goal: _Goal, response) -> None:
        self._live[goal.slot].remove(goal)
        if self._current[goal.slot] is goal:
            self._current[goal.slot] = None  # sent[] keeps its zone: an unchanged goal is not sent again
        if goal.superseded:
            self.counts["goals_preempted"] += 1
        elif response.status in ENDED:
            self.counts[ENDED[response.status]] += 1
        if response.status == GoalStatus.STATUS_ABORTED and not goal.superseded:
            result = response.result
            self._node.get_logger().warning(
                f"{self._actions[goal.slot]}: goal aborted (error_code {result.error_code}: {result.error_msg!r})",
                throttle_duration_sec=LOG_EVERY_SEC)

    def _on_feedback(self, _message) -> None:
        self.counts["feedback_received"] += 1

    def status(self) -> Dict[str, int]:
        """/diagnostics values: goals by outcome, feedback, goals in flight, robots without a server."""
        return {**self.counts, "goals_in_flight": sum(len(live) for live in self._live),
                "navigators_absent": sum(self.absent)}
