"""Child process for test_command_safety: a rogue node flooding altmarl/global_command with invalid commands.

    python _flooder.py RATE SECONDS

Publishes one pre-serialised GlobalCommand with a wrong k at up to RATE messages/s for SECONDS, reliable
and keep-all (nothing it sends is lost on its side; a reader that falls behind slows it down: a publish
that times out is not counted and is retried), then prints how many messages went out and waits until
every matched reader has acknowledged them.
"""
import sys
import time

import rclpy
from rclpy.duration import Duration
from rclpy.serialization import serialize_message

from altmarl_msgs.msg import GlobalCommand
from altmarl_ros.names import GLOBAL_COMMAND_TOPIC
from altmarl_ros.nodes._ros import GLOBAL_COMMAND_SUBSCRIPTION_QOS


def main(rate: float, seconds: float) -> None:
    rclpy.init()
    node = rclpy.create_node("flooder")
    pub = node.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, GLOBAL_COMMAND_SUBSCRIPTION_QOS)
    bad = GlobalCommand()
    bad.header.frame_id, bad.k = "map", 99  # k = 99: no local agent's policy has it
    data = serialize_message(bad)
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    sent, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(int(elapsed * rate) - sent):
            try:
                pub.publish(data)
            except rclpy._rclpy_pybind11.RCLError:  # the keep-all readers are full: they push back
                time.sleep(0.01)
                break
            sent += 1
        time.sleep(0.001)
    pub.wait_for_all_acked(Duration(seconds=30))
    print(sent, flush=True)
    sys.stdin.read()  # stay on the graph until the test is done counting
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]))
