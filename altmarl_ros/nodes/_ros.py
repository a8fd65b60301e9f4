"""What every altmarl node shares: topic and frame names, QoS profiles, the base class, `run_node`.

Topic names are relative, so a whole fleet can be pushed under one namespace
(`__ns:=/site_a`); each robot has its own namespace `robot_<i>/` and the
depot (the global agent's robot) has `depot/`. Frames follow REP-105: the
simulated world is `odom`, shown in RViz under `map`.
"""
from typing import Any, Mapping, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from altmarl_ros.errors import AltmarlError

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


# Odometry subscriptions: best effort (sensor data), newest sample wins, a lost one is replaced
# 50 ms later. A best-effort subscription matches reliable and best-effort publishers alike, so
# it hears any robot driver.
ODOM_QOS = qos_profile_sensor_data
# Odometry publishers (fleet_sim): reliable, as diff_drive_controller publishes, so a subscriber
# with default QoS (`ros2 topic echo`, most robot code) receives it; best effort would match none.
ODOM_PUBLISH_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
# Velocity commands: reliable, only the newest matters.
CMD_VEL_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
# Latched: reliable, and the last message is kept for subscribers that join later.
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
# GlobalCommand is latched, so a local agent that starts late gets the current decision.
GLOBAL_COMMAND_QOS = LATCHED_QOS
# /clock: rclpy subscribes best-effort depth 1; a reliable publisher matches it.
CLOCK_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
# Markers: RViz subscribes reliable/volatile by default.
MARKERS_QOS = CMD_VEL_QOS


def parameter_overrides(params: Optional[Mapping[str, Any]]):
    """{'k': 5, ...} -> rclpy Parameters, so launchers and tests can build nodes in one process."""
    return [Parameter(name, value=value) for name, value in (params or {}).items()]


class AltmarlNode(Node):
    """A Node whose `setup()` declares and validates its parameters and wires its topics.

    If `setup()` raises (a bad parameter, a policy that does not fit), the half-built
    node is destroyed before the error propagates, so nothing is left on the graph.
    A subclass names itself with `DEFAULT_NAME`; `node_name=` overrides it.
    """

    DEFAULT_NAME = ""

    def __init__(self, params: Optional[Mapping[str, Any]] = None, *, node_name: Optional[str] = None,
                 **node_kwargs):
        super().__init__(node_name or self.DEFAULT_NAME, parameter_overrides=parameter_overrides(params),
                         **node_kwargs)
        try:
            self.setup()
        except BaseException:
            self.destroy_node()
            raise

    def setup(self) -> None:
        raise NotImplementedError


def make_executor(context=None):
    """EventsExecutor: the capacity measurements (docs/operations.md) show it costs a fraction of
    SingleThreadedExecutor's CPU per message, which decides how many robots a node keeps up with."""
    from rclpy.experimental import EventsExecutor

    return EventsExecutor(context=context)


def spin_until_shutdown(executor, context=None) -> None:
    """Serve callbacks until the context shuts down (SIGINT/SIGTERM).

    Not `executor.spin()`: rclpy 7.1.6's EventsExecutor.spin() does not return after
    SIGINT and busy-loops; spin_once with a timeout sees the shutdown.
    """
    while rclpy.ok(context=context):
        executor.spin_once(timeout_sec=0.5)


def run_node(node_class, args=None) -> int:
    """Body of every node's `main`: init, build the node, spin, and exit cleanly.

    Returns 2 after logging one line when the node's parameters or files are wrong,
    0 on SIGINT/SIGTERM.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        executor = make_executor()
        executor.add_node(node)
        spin_until_shutdown(executor)
        return 0
    except AltmarlError as err:
        rclpy.logging.get_logger(getattr(node_class, "DEFAULT_NAME", node_class.__name__)).fatal(str(err))
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()

