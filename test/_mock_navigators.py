"""Nav2's NavigateToPose servers, one per robot, for test/test_navigate.py and bench/bench_navigate.py.

What a robot's bt_navigator shows an action client, and no more: a goal is accepted (and recorded
then, before it starts executing), gets one feedback message, and runs until the client cancels
it (it then ends CANCELED) or the test ends it (`finish`: SUCCEEDED, or ABORTED with an error code).
Nothing preempts: a client that sends a second goal without cancelling the first leaves two
running, which the tests look for. Every goal and the wall time of every cancel request are kept.
"""
import functools
import time

from action_msgs.msg import GoalStatus
from nav2_msgs.action import NavigateToPose
from rclpy.action import ActionServer, CancelResponse
from rclpy.node import Node
from rclpy.task import Future

from altmarl_ros.names import navigate_action

END_POLL_SEC = 0.01  # how often cancelled goals are ended


class Goal:
    """A goal as the server saw it: its pose, whether a cancel came for it, its end status (None while it runs)."""

    def __init__(self, handle):
        self.handle = handle
        self.key = bytes(handle.goal_id.uuid)
        self.pose = handle.request.pose
        self.cancel_requested = False
        self.status = None
        self.ended = Future()


class MockNavigators(Node):
    """One NavigateToPose server per robot name (`serve` adds one later)."""

    def __init__(self, context, robots, name: str = "mock_navigators"):
        super().__init__(name, context=context)
        self.goals = {}  # robot -> [Goal] in the order they were accepted
        self._running = {}  # robot -> {goal id: Goal} of the goals not ended
        self._cancelled = []  # (robot, Goal): cancel accepted, to end once the goal's state says so
        self.cancels = {}  # robot -> wall times (time.monotonic) of cancel requests
        self.feedback_sent = {}  # robot -> feedback messages published
        self._servers = []
        for robot in robots:
            self.serve(robot)
        self.create_timer(END_POLL_SEC, self._end_cancelled)

    def serve(self, robot) -> None:
        self.goals[robot], self._running[robot], self.cancels[robot], self.feedback_sent[robot] = [], {}, [], 0
        self._servers.append(ActionServer(self, NavigateToPose, navigate_action(robot),
                                          # (a partial of a coroutine function is one; a lambda is not)
                                          execute_callback=functools.partial(self._execute, robot),
                                          handle_accepted_callback=lambda handle: self._accepted(robot, handle),
                                          cancel_callback=lambda handle: self._cancel(robot, handle)))

    def running(self, robot) -> list:
        return list(self._running[robot].values())

    def finish(self, robot, status: int) -> None:
        """End the robot's running goals with `status` (GoalStatus.STATUS_SUCCEEDED or STATUS_ABORTED)."""
        for goal in self.running(robot):
            self._end(robot, goal, status)

    def _end(self, robot, goal: Goal, status: int) -> None:
        del self._running[robot][goal.key]
        goal.status = status
        goal.ended.set_result(status)

    def _accepted(self, robot, handle) -> None:
        goal = Goal(handle)
        self.goals[robot].append(goal)
        self._running[robot][goal.key] = goal
        handle.execute()

    async def _execute(self, robot, handle):
        goal = self._running[robot][bytes(handle.goal_id.uuid)]
        handle.publish_feedback(NavigateToPose.Feedback(distance_remaining=1.0))
        self.feedback_sent[robot] += 1
        status = await goal.ended
        result = NavigateToPose.Result()
        if status == GoalStatus.STATUS_CANCELED:
            handle.canceled()
        elif status == GoalStatus.STATUS_SUCCEEDED:
            handle.succeed()
        else:
            result.error_code, result.error_msg = 1, "mock navigator gave up"
            handle.abort()
        return result

    def _cancel(self, robot, handle) -> CancelResponse:
        self.cancels[robot].append(time.monotonic())
        goal = self._running[robot].get(bytes(handle.goal_id.uuid))
        if goal is not None and not goal.cancel_requested:
            goal.cancel_requested = True
            self._cancelled.append((robot, goal))
        return CancelResponse.ACCEPT

    def _end_cancelled(self) -> None:
        """End the cancelled goals (the cancel's state change comes after the callback that accepted it)."""
        waiting = []
        for robot, goal in self._cancelled:
            if goal.status is not None:
                continue
            if goal.handle.is_cancel_requested:
                self._end(robot, goal, GoalStatus.STATUS_CANCELED)
            else:
                waiting.append((robot, goal))
        self._cancelled = waiting

    def destroy_node(self):
        for server in self._servers:
            server.destroy()
        return super().destroy_node()
