"""Topic and frame names of an altmarl fleet (no rclpy: the launcher and tools use them too).

Topic names are relative, so a whole fleet can be pushed under one namespace
(`__ns:=/site_a`); each robot has its own namespace, its name (`robot_<i>` by
default, or from the fleet's roster), and the depot (the global agent's robot)
has `depot/`. Frames follow REP-105: zones are defined in `map`; each robot has
`<robot>/odom` and `<robot>/base_link`.
"""

GLOBAL_COMMAND_TOPIC = "altmarl/global_command"
MARKERS_TOPIC = "altmarl/markers"
STOPPED_TOPIC = "altmarl/stopped"  # std_msgs/Bool, latched: the operator's fleet-wide stop
STOP_SERVICE = "altmarl/stop"  # std_srvs/Trigger
RESUME_SERVICE = "altmarl/resume"  # std_srvs/Trigger
DIAGNOSTICS_TOPIC = "/diagnostics"
DEPOT = "depot"
DEPOT_ODOM_TOPIC = "depot/odom"
DEPOT_CMD_VEL_TOPIC = "depot/cmd_vel"
CLOCK_TOPIC = "/clock"  # absolute: rclpy's time source listens there
TF_TOPIC, TF_STATIC_TOPIC = "/tf", "/tf_static"
MAP_FRAME = "map"
DEPOT_BASE_FRAME = "depot/base_link"
DEFAULT_ROBOT_TEMPLATE = "robot_{id}"
# How robots are commanded (parameter command_type, one per fleet): velocities on <robot>/cmd_vel,
# or a goal (geometry_msgs/PoseStamped in the map frame) on <robot>/goal_pose for Nav2.
COMMAND_TYPES = ("twist", "twist_stamped", "goal_pose")


def _robot(robot) -> str:
    """A robot's name (its namespace); an integer id is named by the default template."""
    return robot if isinstance(robot, str) else DEFAULT_ROBOT_TEMPLATE.format(id=int(robot))


def odom_topic(robot) -> str:
    return f"{_robot(robot)}/odom"


def cmd_vel_topic(robot) -> str:
    return f"{_robot(robot)}/cmd_vel"


def goal_topic(robot) -> str:
    """Nav2's bt_navigator takes goals on goal_pose (geometry_msgs/PoseStamped)."""
    return f"{_robot(robot)}/goal_pose"


def pose_topic(robot, name: str = "pose") -> str:
    """A localizer's estimate (geometry_msgs/PoseWithCovarianceStamped), e.g. name 'amcl_pose'."""
    return f"{_robot(robot)}/{name}"


def base_frame(robot) -> str:
    return f"{_robot(robot)}/base_link"


def odom_frame(robot) -> str:
    return f"{_robot(robot)}/odom"
