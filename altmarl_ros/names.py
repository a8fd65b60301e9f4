"""Topic and frame names of an altmarl fleet (no rclpy: the launcher and tools use them too).

Topic names are relative, so a whole fleet can be pushed under one namespace
(`__ns:=/site_a`); each robot has its own namespace, its name (`robot_<i>` by
default, or from the fleet's roster), and the depot (the global agent's robot)
has `depot/`. Frames follow REP-105: zones are defined in `map`; each robot has
`<robot>/odom` and `<robot>/base_link`. The validators at the end check names users give
(robot_names, robot_template, pose_topic, map_frame) against the ROS 2 naming rules.
"""
import collections
import re
import string

GLOBAL_COMMAND_TOPIC = "altmarl/global_command"
MARKERS_TOPIC = "altmarl/markers"
STATE_REQUEST_TOPIC = "altmarl/state_request"  # StateRequest: the coordinator asks k robots (state_sampling request)
STATE_REPORTS_TOPIC = "altmarl/state_reports"  # StateReport: only the asked robots answer
FLEET_MEMBERSHIP_TOPIC = "altmarl/fleet_membership"  # FleetMembership: which robots each node answers for
STOPPED_TOPIC = "altmarl/stopped"  # std_msgs/Bool, latched: the operator's fleet-wide stop
# The topics every node of a fleet shares (a robot's namespaced node is remapped to these absolute names).
FLEET_WIDE_TOPICS = (GLOBAL_COMMAND_TOPIC, STOPPED_TOPIC, STATE_REQUEST_TOPIC, STATE_REPORTS_TOPIC,
                     FLEET_MEMBERSHIP_TOPIC)
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
# a goal (geometry_msgs/PoseStamped in the map frame) on <robot>/goal_pose for Nav2, or the same goal
# through Nav2's NavigateToPose action on <robot>/navigate_to_pose (feedback, result, cancel).
COMMAND_TYPES = ("twist", "twist_stamped", "goal_pose", "navigate_to_pose")
GOAL_COMMAND_TYPES = COMMAND_TYPES[2:]  # the robot's navigator drives to a goal (nodes/_goals.py)
# What an action is made of on the wire. Jazzy's rcl does not apply a remapping rule to an action's own
# name (ros2/ros2#1312, fixed after Jazzy by ros2/rcl#1170): a remapping names these topics and services.
ACTION_ENTITIES = ("_action/send_goal", "_action/cancel_goal", "_action/get_result", "_action/feedback",
                   "_action/status")


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


def navigate_action(robot) -> str:
    """Nav2's bt_navigator serves the NavigateToPose action here."""
    return f"{_robot(robot)}/navigate_to_pose"


def action_entities(action: str) -> tuple:
    """The topics and services of action `action` (what a remapping must name under Jazzy)."""
    return tuple(f"{action}/{entity}" for entity in ACTION_ENTITIES)


def pose_topic(robot, name: str = "pose") -> str:
    """A localizer's estimate (geometry_msgs/PoseWithCovarianceStamped), e.g. name 'amcl_pose'."""
    return f"{_robot(robot)}/{name}"


def base_frame(robot) -> str:
    return f"{_robot(robot)}/base_link"


def odom_frame(robot) -> str:
    return f"{_robot(robot)}/odom"


# ----------------------------------------------------------------------------- validation
# ROS 2 names (design article "Topic and Service name mapping to DDS", rcl's validators): tokens
# of letters, digits and underscores, not starting with a digit, joined by '/'; no empty token
# (no leading, trailing or double '/'), and DDS topic names stay below 256 characters.
_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_RELATIVE_NAME = re.compile(rf"{_TOKEN}(?:/{_TOKEN})*")
# The longest name derived from a robot's, /<name>/navigate_to_pose/_action/cancel_goal, is 38 characters
# longer: 238 of the 247 rmw allows, with room for a short fleet namespace.
MAX_NAME_CHARS = 200
# robot_template: literal text and {id}, optionally with a zero-padded width ({id:03d}).
_TEMPLATE_SPEC = re.compile(r"0?[0-9]?d?")


def check_relative_name(error, field: str, value, what: str = "a relative ROS name") -> str:
    """`value` as a relative ROS 2 name (robot namespace, topic suffix, frame), or `error(field, ...)`."""
    if not isinstance(value, str) or not value:
        raise error(field, f"must be {what} (non-empty text), got {_short(value)}")
    if len(value) > MAX_NAME_CHARS or not _RELATIVE_NAME.fullmatch(value):
        raise error(field, f"{_short(value)} is not {what}: use letters, digits and '_' in parts separated by "
                           f"'/', each starting with a letter or '_', at most {MAX_NAME_CHARS} characters "
                           f"(e.g. amr_1)")
    return value


def check_robot_names(error, field: str, names) -> list:
    """A roster of robot names: each a relative ROS name, none the depot's, none repeated."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise error(field, f"must be a non-empty list of robot names, e.g. [amr_a, amr_b]; got {_short(names)}")
    for i, name in enumerate(names):
        check_relative_name(error, f"{field}[{i}]", name, "a robot name")
        if name == DEPOT or name.startswith(DEPOT + "/"):
            raise error(f"{field}[{i}]", f"{name!r} is the depot's namespace (depot/odom, depot/cmd_vel); "
                                         f"name the robot otherwise")
    repeated = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if repeated:
        raise error(field, f"{_short(repeated)} listed more than once")
    return list(names)


def template_names(error, field: str, template, n_robots: int) -> list:
    """The names robot_template gives ids 0..n_robots-1, after checking the template itself:
    only `{id}` (optionally `{id:03d}`) may be substituted, and every name must be valid."""
    if not isinstance(template, str):
        raise error(field, f"must be text such as robot_{{id}}, got {_short(template)}")
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as err:
        raise error(field, f"{_short(template)}: {err}; write {{id}} where the robot id goes, e.g. "
                           f"robot_{{id}}") from None
    if not fields or any(name != "id" or conversion or not _TEMPLATE_SPEC.fullmatch(spec or "")
                         for name, spec, conversion in fields):
        raise error(field, f"{_short(template)} must substitute only {{id}} (or a zero-padded {{id:03d}}), "
                           f"e.g. robot_{{id}}")
    return check_robot_names(error, field, [template.format(id=i) for i in range(n_robots)])


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."
