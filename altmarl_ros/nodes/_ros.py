"""What every altmarl node shares: QoS profiles, the base class, `run_node`
(topic and frame names: altmarl_ros.names)."""
import time
from typing import Any, Mapping, Optional

import rclpy
from rclpy.action import ActionClient
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from altmarl_ros.errors import AltmarlError
from altmarl_ros.nodes._kernels import warm_up_kernels
from altmarl_ros.nodes._stop import catch_stop_signals


def _reliable(durability, depth=None) -> QoSProfile:
    """A reliable profile: keep the last `depth` messages, or all of them when depth is None."""
    if depth is None:
        return QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                          durability=durability)
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=durability)


# Odometry subscriptions: best effort (sensor data), newest sample wins, a lost one is replaced
# 50 ms later. A best-effort subscription matches reliable and best-effort publishers alike, so
# it hears any robot driver.
ODOM_QOS = qos_profile_sensor_data
# Odometry publishers (fleet_sim): reliable, as diff_drive_controller publishes, so a subscriber
# with default QoS (`ros2 topic echo`, most robot code) receives it; best effort would match none.
ODOM_PUBLISH_QOS = _reliable(DurabilityPolicy.VOLATILE, depth=5)
# Velocity commands: reliable, only the newest matters.
CMD_VEL_QOS = _reliable(DurabilityPolicy.VOLATILE, depth=1)
# Latched: reliable, and the last message is kept for subscribers that join later.
LATCHED_QOS = _reliable(DurabilityPolicy.TRANSIENT_LOCAL, depth=1)
# /tf_static: every static broadcaster (one per robot is allowed) latches its own message, and a
# subscriber that joins late gets all of them at once; keep-all so none is pushed out of a depth-1
# queue before the callback runs (tf2_ros keeps 100; keep-all holds any fleet size).
TF_STATIC_QOS = _reliable(DurabilityPolicy.TRANSIENT_LOCAL)
# GlobalCommand is latched, so a local agent that starts late gets the current decision.
GLOBAL_COMMAND_QOS = LATCHED_QOS
# ... and subscribed keep-all: a flood of bad messages on the topic (any node may publish there)
# cannot push a valid command out of a depth-1 queue before the callback has read it; a reliable
# flooder is slowed to the pace the subscriber reads at, and every message it sends is counted.
GLOBAL_COMMAND_SUBSCRIPTION_QOS = _reliable(DurabilityPolicy.TRANSIENT_LOCAL)
# Services that must always answer (the operator's stop): keep every request, however many arrive at once
# (the default depth of 10 left 30 of 50 concurrent calls unanswered).
SERVICE_QOS = _reliable(DurabilityPolicy.VOLATILE)
# State requests (one per decision, to every agent) and their replies (k per decision, to the coordinator):
# reliable, and nothing kept for late joiners (an old request is answered by nobody). The coordinator keeps
# every reply that arrives before it decides, however many answer at once.
STATE_REQUEST_QOS = _reliable(DurabilityPolicy.VOLATILE, depth=10)
STATE_REPORT_QOS = _reliable(DurabilityPolicy.VOLATILE)
# Membership: each answering node latches its own last message (LATCHED_QOS); the coordinator subscribes
# keep-all, so the messages of many nodes delivered at once on (re)start are all read.
MEMBERSHIP_SUBSCRIPTION_QOS = TF_STATIC_QOS
# /clock: rclpy subscribes best-effort depth 1; a reliable publisher matches it.
CLOCK_QOS = _reliable(DurabilityPolicy.VOLATILE, depth=1)
# Markers: RViz subscribes reliable/volatile by default.
MARKERS_QOS = CMD_VEL_QOS
# Goals: reliable; a Nav2 navigator that starts late still gets the robot's current goal.
GOAL_QOS = LATCHED_QOS


STOP_ACK_SEC = 0.5  # at shutdown, how long to wait for the robots to acknowledge the zero commands


def parameter_overrides(params: Optional[Mapping[str, Any]]):
    """{'k': 5, ...} -> rclpy Parameters, so launchers and tests can build nodes in one process."""
    return [Parameter(name, value=value) for name, value in (params or {}).items()]


class AltmarlNode(Node):
    """A Node whose `setup()` declares and validates its parameters and wires its topics.

    If `setup()` raises (a bad parameter, a policy that does not fit), the half-built
    node is destroyed before the error propagates, so nothing is left on the graph.
    A subclass names itself with `DEFAULT_NAME`; `node_name=` overrides it, and lists
    every parameter it declares in `PARAMETERS` (name -> types, see nodes/_params.py):
    declaring an unlisted one fails, so the table cannot drift from the code.
    """

    DEFAULT_NAME = ""
    PARAMETERS: Mapping[str, tuple] = {}

    def __init__(self, params: Optional[Mapping[str, Any]] = None, *, node_name: Optional[str] = None,
                 **node_kwargs):
        super().__init__(node_name or self.DEFAULT_NAME, parameter_overrides=parameter_overrides(params),
                         **node_kwargs)
        self._set_up = False
        self.destroying = False  # set by destroy_node: late callbacks (timers, action answers) do nothing
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

    def create_timer(self, timer_period_sec, callback, *args, **kwargs):
        """A timer whose callback is skipped once destroy_node has begun: an executor may still
        deliver an event it queued before the node left it (EventsExecutor does), and the
        callback would then publish through destroyed handles."""
        def unless_destroyed():
            if not self.destroying:
                callback()

        return super().create_timer(timer_period_sec, unless_destroyed, *args, **kwargs)

    def destroy_node(self):
        """Stop this node's robots first, so no robot keeps its last command when the node goes away."""
        self.destroying = True
        if self._set_up and self.context.ok():
            try:
                self.stop_robots()
                # Reliable commands: wait (bounded) until the robots' drivers have them.
                deadline = time.monotonic() + STOP_ACK_SEC
                for publisher in self.publishers:
                    publisher.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))
            except Exception as err:  # never block shutdown; say why the robots may not have stopped
                self.get_logger().error(f"could not command the robots to stop on shutdown: {err}")
        for waitable in list(self.waitables):  # Node.destroy_node leaves action clients (navigate_to_pose)
            if isinstance(waitable, ActionClient):
                waitable.destroy()
        return super().destroy_node()


def make_executor(context=None):
    """EventsExecutor: the capacity measurements (docs/operations.md) show it costs a fraction of
    SingleThreadedExecutor's CPU per message, which decides how many robots a node keeps up with."""
    from rclpy.experimental import EventsExecutor

    return EventsExecutor(context=context)


def run_node(node_class, args=None) -> int:
    """Body of every node's `main`: init, build the node, spin, and exit cleanly.

    SIGINT/SIGTERM are handled here rather than by rclpy, which would shut the context
    down first: the node must still be able to publish the zero commands of
    `stop_robots` (destroy_node) before it goes. Returns 2 after logging one line when
    the node's parameters or files are wrong, 0 on SIGINT/SIGTERM.
    """
    stop = catch_stop_signals()  # (a supervised child installed it first thing; a request may be pending)
    warm_up_kernels()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
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
