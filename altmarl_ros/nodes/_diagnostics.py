"""/diagnostics for every altmarl node, once a second on the wall clock.

The timer runs on the steady clock, not on ROS time: with use_sim_time and no
/clock (a real fleet launched with the sim plan's setting), ROS time stands
still, nothing is decided, and a ROS-time timer would never fire, so the node
would fall silent exactly when it must speak. Every report also carries what
every node shares: a sim clock that does not advance (reported as an error and
logged once) and the messages the node dropped, by reason.
"""
from typing import Callable, Dict, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType

from altmarl_ros.names import CLOCK_TOPIC, DIAGNOSTICS_TOPIC

DIAGNOSTICS_SEC = 1.0
CLOCK_SILENT_SEC = 3.0  # sim time unchanged for this long (wall): no /clock
OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR

Status = Tuple[int, str, Dict[str, object]]  # (level, message, key -> value)


class Diagnostics:
    """Publishes `status()` -> (level, message, values) with the shared checks; see the module docstring."""

    def __init__(self, node, role: str, status: Callable[[], Status], dropped=None):
        self._node, self._role, self._status, self._dropped = node, role, status, dropped
        self._pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._last_ros_ns: Optional[int] = None
        self._ros_changed_ns = self._wall.now().nanoseconds
        self.clock_silent = False
        self.hardware_id = ""
        node.create_timer(DIAGNOSTICS_SEC, self.publish, clock=self._wall)

    def _check_clock(self, ros_ns: int) -> bool:
        """True while use_sim_time is on and sim time has not moved for CLOCK_SILENT_SEC (logged once)."""
        wall_ns = self._wall.now().nanoseconds
        if ros_ns != self._last_ros_ns:
            self._last_ros_ns, self._ros_changed_ns = ros_ns, wall_ns
        silent = (self._node.get_clock().ros_time_is_active
                  and wall_ns - self._ros_changed_ns >= CLOCK_SILENT_SEC * 1e9)
        if silent and not self.clock_silent:
            self._node.get_logger().error(self._clock_message())
        self.clock_silent = silent
        return silent

    def _clock_message(self) -> str:
        return (f"use_sim_time is true but sim time has not advanced for {CLOCK_SILENT_SEC:g} s: nothing "
                f"publishes {CLOCK_TOPIC}; start the simulator, or set use_sim_time:=false on a real fleet")

    def publish(self) -> None:
        ros_ns = self._node.get_clock().now().nanoseconds
        level, message, values = self._status()
        if self._check_clock(ros_ns):
            level, message = ERROR, self._clock_message()
        if self._dropped is not None:
            values["dropped_messages"] = self._dropped.total
            values.update({f"dropped {reason}": count for reason, count in sorted(self._dropped.counts.items())})
        status = DiagnosticStatus(level=level, name=f"{self._node.get_fully_qualified_name()}: {self._role}",
                                  message=message, hardware_id=self.hardware_id,
                                  values=[KeyValue(key=key, value=str(value)) for key, value in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(array)
