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
    """A goal as the server saw it: its pose, and its end status (None while it runs)."""

    def __init__(self, handle):
        self.handle = handle
        self.pose = handle.request.pose
        self.status = None
        self.ended = Future()

    def end(self, status: int) -> None:
        self.status = status
        self.ended.set_result(status)


class MockNavigators(Node):
    """One NavigateToPose server per robot name (`serve` adds one later)."""

    def __init__(self, context, robots, name: str = "mock_navigators"):
        super().__init__(name, context=context)
        self.goals = {}  # robot -> [Goal] in the order they were accepted
        self._goal_of = {}  # goal id -> Goal
        self.cancels = {}  # robot -> wall times (time.monotonic) of cancel requests
        self.feedback_sent = {}  # robot -> feedback messages published
        self._servers = []
        for robot in robots:
            self.serve(robot)
        self.create_timer(END_POLL_SEC, self._end_cancelled)

    def serve(self, robot) -> None:
        self.goals[robot], self.cancels[robot], self.feedback_sent[robot] = [], [], 0
        self._servers.append(ActionServer(self, NavigateToPose, navigate_action(robot),
                                          # (a partial of a coroutine function is one; a lambda is not)
                                          execute_callback=functools.partial(self._execute, robot),
                                          handle_accepted_callback=lambda handle: self._accepted(robot, handle),
                                          cancel_callback=lambda handle: self._cancel(robot)))

    def running(self, robot) -> list:
        return [goal for goal in self.goals[robot] if goal.status is None]

    def finish(self, robot, status: int) -> None:
        """End the robot's running goals with `status` (GoalStatus.STATUS_SUCCEEDED or STATUS_ABORTED)."""
        for goal in self.running(robot):
            goal.end(status)

    def _accepted(self, robot, handle) -> None:
        self._goal_of[bytes(handle.goal_id.uuid)] = goal = Goal(handle)
        self.goals[robot].append(goal)
        handle.execute()

    async def _execute(self, robot, handle):
        goal = self._goal_of.pop(bytes(handle.goal_id.uuid))
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

    def _cancel(self, robot) -> CancelResponse:
        self.cancels[robot].append(time.monotonic())
        return CancelResponse.ACCEPT

    def _end_cancelled(self) -> None:
        for goals in self.goals.values():
            for goal in goals:
                if goal.status is None and goal.handle.is_cancel_requested:
                    goal.end(GoalStatus.STATUS_CANCELED)

    def destroy_node(self):
        for server in self._servers:
            server.destroy()
        return super().destroy_node()
