"""Topic and frame names of an altmarl fleet (no rclpy: the launcher and tools use them too).

Topic names are relative, so a whole fleet can be pushed under one namespace
(`__ns:=/site_a`); each robot has its own namespace `robot_<i>/` and the
depot (the global agent's robot) has `depot/`. Frames follow REP-105: the
simulated world is `odom`, shown in RViz under `map`.
"""

GLOBAL_COMMAND_TOPIC = "altmarl/global_command"
MARKERS_TOPIC = "altmarl/markers"
DEPOT_ODOM_TOPIC = "depot/odom"
DEPOT_CMD_VEL_TOPIC = "depot/cmd_vel"
CLOCK_TOPIC = "/clock"  # absolute: rclpy's time source listens there
MAP_FRAME = "map"
ODOM_FRAME = "odom"
DEPOT_BASE_FRAME = "depot/base_link"


def odom_topic(robot_id: int) -> str:
    return f"robot_{robot_id}/odom"


def cmd_vel_topic(robot_id: int) -> str:
    return f"robot_{robot_id}/cmd_vel"


def base_frame(robot_id: int) -> str:
    return f"robot_{robot_id}/base_link"
