"""recorder: writes the fleet's decisions to an MCAP file that Foxglove, rosbag2 and `altmarl replay` read.

It subscribes raw (no deserialization) to altmarl/global_command (every GlobalCommand:
the samples, counts, observer estimate and action of each decision), depot/odom and,
with record_odometry, every robot's <name>/odom, and writes each message's CDR bytes
with its ROS 2 schema (the .msg definitions of the installed interfaces, concatenated
as rosbag2 does) through the `mcap` library. Log times are the node's clock (sim time
under use_sim_time). The file is written atomically (core.atomic): it appears, complete,
when the node is destroyed (end of the run, Ctrl-C); a run that dies leaves no half file.
"""
import re
import sys
from pathlib import Path

from altmarl_msgs.msg import GlobalCommand
from nav_msgs.msg import Odometry

from altmarl_ros.core.atomic import atomic_writer, check_output
from altmarl_ros.names import DEPOT_ODOM_TOPIC, GLOBAL_COMMAND_TOPIC, odom_topic
from altmarl_ros.node_parameters import BOOL, ROBOT_IDS, STRING
from altmarl_ros.nodes._params import ParameterError, declare_bool, declare_robot_ids, declare_str
from altmarl_ros.nodes._ros import GLOBAL_COMMAND_SUBSCRIPTION_QOS, ODOM_QOS, AltmarlNode, run_node

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}
SCHEMA_SEPARATOR = "=" * 80


def _msg_file(type_name: str) -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    package, name = type_name.split("/")[0], type_name.split("/")[-1]
    try:
        return Path(get_package_share_directory(package)) / "msg" / f"{name}.msg"
    except PackageNotFoundError:
        raise ParameterError(f"the interface package {package!r} of {type_name} is not installed") from None


def ros2_schema(type_name: str) -> str:
    """The `ros2msg` schema of `type_name` ("pkg/msg/Name"): its .msg text, then each type it uses once,
    after a line of '=' and "MSG: pkg/Name" (the layout rosbag2 writes and Foxglove parses)."""
    texts, pending, seen = [], [type_name], set()
    while pending:
        current = pending.pop(0)
        package, name = current.split("/")[0], current.split("/")[-1]
        if (package, name) in seen:
            continue
        seen.add((package, name))
        text = _msg_file(current).read_text()
        texts.append(text if current == type_name else f"{SCHEMA_SEPARATOR}\nMSG: {package}/{name}\n{text}")
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2 or "=" in fields[1]:  # blank, comment or constant
                continue
            field_type = re.sub(r"(\[.*\]|<=\d+)$", "", fields[0])
            if field_type in PRIMITIVES or field_type.startswith(("string<=", "wstring<=")):
                continue
            if field_type == "Header":
                field_type = "std_msgs/Header"
            pending.append(field_type if "/" in field_type else f"{package}/{field_type}")
    return "\n".join(texts)


class RecorderNode(AltmarlNode):
    """Records GlobalCommands, the depot's and optionally every robot's odometry; see the module docstring."""

    DEFAULT_NAME = "recorder"
    PARAMETERS = {"robots": ROBOT_IDS, "output": STRING, "record_odometry": BOOL}

    def setup(self) -> None:
        try:
            from mcap.writer import Writer
        except ImportError:
            raise ParameterError("the recorder needs the mcap library: pip install mcap==1.6.0 (requirements.txt)") \
                from None
        output = declare_str(self, "output", "", "the MCAP file to write (replaced atomically at the end)",
                             required=True)
        self.path = check_output(output, flag="parameter 'output'")
        record_odometry = declare_bool(self, "record_odometry", False, "also record every robot's odometry")
        topics = [(GLOBAL_COMMAND_TOPIC, GlobalCommand, GLOBAL_COMMAND_SUBSCRIPTION_QOS),
                  (DEPOT_ODOM_TOPIC, Odometry, ODOM_QOS)]
        if record_odometry:
            robot_ids = declare_robot_ids(self, "robots", "robots whose odometry is recorded: a count n or a list "
                                          "of ids", default_count=None)
            topics += [(odom_topic(i), Odometry, ODOM_QOS) for i in robot_ids]
        self.messages = {}  # resolved topic -> messages written
        self._output = atomic_writer(self.path)  # entered here, left in destroy_node (commit or abort)
        self._writer = Writer(self._output.__enter__())
        self._writer.start(profile="ros2", library="altmarl_ros recorder")
        schemas = {}
        for topic, msg_type, qos in topics:
            type_name = f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"
            if type_name not in schemas:
                schemas[type_name] = self._writer.register_schema(type_name, "ros2msg",
                                                                  ros2_schema(type_name).encode())
            resolved = self.resolve_topic_name(topic)
            channel = self._writer.register_channel(resolved, "cdr", schemas[type_name])
            self.messages[resolved] = 0
            self.create_subscription(msg_type, topic, self._writer_of(channel, resolved), qos, raw=True)
        self.get_logger().info(f"recording {len(topics)} topics to {self.path}")

    def _writer_of(self, channel: int, topic: str):
        writer, messages, clock = self._writer, self.messages, self.get_clock()

        def write(data: bytes) -> None:
            now = clock.now().nanoseconds
            writer.add_message(channel, log_time=now, publish_time=now, data=data, sequence=messages[topic])
            messages[topic] += 1
        return write

    def destroy_node(self):
        """Finish the MCAP file (summary and indexes) and move it into place; a node whose set-up
        failed removes its temporary file instead."""
        output, self._output = getattr(self, "_output", None), None
        if output is not None and self._set_up:
            self._writer.finish()
            output.__exit__(None, None, None)
            self.get_logger().info(f"wrote {sum(self.messages.values())} messages to {self.path}")
        elif output is not None:
            abandoned = ParameterError("the recorder's set-up failed")
            output.__exit__(type(abandoned), abandoned, None)
        return super().destroy_node()


def main(args=None):
    sys.exit(run_node(RecorderNode, args))


if __name__ == "__main__":
    main()
