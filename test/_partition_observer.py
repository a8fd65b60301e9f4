"""Child process for test_partition: on the fleet's host, print what the robots are told and do.

Every 50 ms one JSON line: monotonic time (shared by every namespace of the machine),
the fleet's sim time (/clock, the clock the local agents time out on) and the sim time
the last GlobalCommand arrived, the largest commanded speed (robot_<i>/cmd_vel), the largest odometry speed, the
last GlobalCommand epoch seen (-1 before the first), and how many times local_agents
logged (on /rosout) that it stops the robots for want of commands ("stops", with the age of
the last command it had, "stop_age") and that commands are back ("goes").
"""
import json
import re
import sys
import time

import rclpy
from altmarl_msgs.msg import GlobalCommand
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from altmarl_ros.names import GLOBAL_COMMAND_TOPIC, cmd_vel_topic, odom_topic
from altmarl_ros.nodes._ros import CMD_VEL_QOS, GLOBAL_COMMAND_QOS, ODOM_QOS


def main(n: int) -> None:
    rclpy.init()
    node = rclpy.create_node("partition_observer", parameter_overrides=[Parameter("use_sim_time", value=True)])
    clock = node.get_clock()
    commanded, moving, epoch, events = [0.0] * n, [0.0] * n, [-1], {"stops": 0, "goes": 0, "stop_age": None,
                                                              "stop_rule": None}
    command_sim = [None]

    def on_command(msg):
        epoch[0] = msg.epoch
        command_sim[0] = clock.now().nanoseconds / 1e9

    def keep(store, index, speed):
        def callback(msg):
            store[index] = abs(speed(msg))
        return callback

    for i in range(n):
        node.create_subscription(Twist, cmd_vel_topic(i), keep(commanded, i, lambda m: m.linear.x), CMD_VEL_QOS)
        node.create_subscription(Odometry, odom_topic(i), keep(moving, i, lambda m: m.twist.twist.linear.x),
                                 ODOM_QOS)
    node.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, on_command, GLOBAL_COMMAND_QOS)

    def on_log(msg):
        if msg.name.endswith("local_agents"):
            if "stopping" in msg.msg:
                events["stops"] += 1
                # the age the stop went by: since arrival ("is A s old"), or since the stamp when the
                # command was already old on arrival ("stamped A s ago (limit command_timeout + skew)")
                age = re.search(r"is ([0-9.]+) s old", msg.msg) or re.search(r"stamped ([0-9.]+) s ago", msg.msg)
                events["stop_age"] = None if age is None else float(age.group(1))
                events["stop_rule"] = "stamp" if "stamped" in msg.msg else "arrival"
            elif "robots moving" in msg.msg:
                events["goes"] += 1

    node.create_subscription(Log, "/rosout", on_log, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                                                 durability=DurabilityPolicy.TRANSIENT_LOCAL))

    def report():
        print(json.dumps({"t": time.monotonic(), "sim": clock.now().nanoseconds / 1e9, "command_sim": command_sim[0],
                          "cmd": max(commanded), "v": max(moving), "epoch": epoch[0], **events}), flush=True)

    node.create_timer(0.05, report)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
