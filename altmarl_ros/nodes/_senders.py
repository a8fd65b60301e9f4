"""Which goal sender a goal-driven command type uses: goal_pose topics (nodes/_goals.py) or NavigateToPose
actions (nodes/_navigate.py, imported only then: nav2_msgs is needed for nothing else)."""
from typing import Sequence

from altmarl_ros.nodes._goals import GoalSender
from altmarl_ros.nodes._params import ParameterError


def goal_sender(node, robot_names: Sequence[str], map_frame: str, command_type: str):
    """The goal sender of a goal-driven command type: goal_pose topics, or NavigateToPose actions (their
    module is imported only then: nav2_msgs is needed for nothing else)."""
    if command_type == "goal_pose":
        return GoalSender(node, robot_names, map_frame)
    try:
        from altmarl_ros.nodes._navigate import NavigateSender
    except ImportError as err:
        raise ParameterError(f"parameter 'command_type' = {command_type!r} needs nav2_msgs ({err}): source a ROS 2 "
                             f"Jazzy install with Nav2 (ros-jazzy-nav2-msgs), or run scripts/bootstrap.sh, which "
                             f"builds NavigateToPose into the venv") from None
    return NavigateSender(node, robot_names, map_frame)
