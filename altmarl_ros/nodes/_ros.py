"""What every altmarl node shares: topic and frame names, QoS profiles, the base class, `run_node`.

Topic names are relative, so a whole fleet can be pushed under one namespace
(`__ns:=/site_a`); each robot has its own namespace, its name (`robot_<i>` by
default, or from the fleet's roster), and the depot (the global agent's robot)
has `depot/`. Frames follow REP-105: zones are defined in `map`; each robot has
`<robot>/odom` and `<robot>/base_link`.
"""
import signal
import threading
from typing import Any, Mapping, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from altmarl_ros.errors import AltmarlError

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
# Goals: reliable; a Nav2 navigator that starts late still gets the robot's current goal.
GOAL_QOS = LATCHED_QOS


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
        self._set_up = False
        try:
            self.setup()
        except BaseException:
            self.destroy_node()
            raise
        self._set_up = True

    def setup(self) -> None:
        raise NotImplementedError

    def stop_robots(self) -> None:
        """Command the robots this node drives to stand still (nodes that drive robots override it)."""

    def destroy_node(self):
        """Stop this node's robots first, so no robot keeps its last command when the node goes away."""
        if self._set_up and self.context.ok():
            try:
                self.stop_robots()
            except Exception as err:  # never block shutdown; say why the robots may not have stopped
                self.get_logger().error(f"could not command the robots to stop on shutdown: {err}")
        return super().destroy_node()


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

    SIGINT/SIGTERM are handled here rather than by rclpy, which would shut the context
    down first: the node must still be able to publish the zero commands of
    `stop_robots` (destroy_node) before it goes. Returns 2 after logging one line when
    the node's parameters or files are wrong, 0 on SIGINT/SIGTERM.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = None
    try:
        node = node_class()
        executor = make_executor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
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
