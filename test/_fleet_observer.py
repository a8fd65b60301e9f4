"""Child process: watch a running fleet from outside, as a robotics engineer's tool would.

    python test/_fleet_observer.py N_ROBOTS K TIMEOUT_S

Subscribes robot_<i>/odom with default QoS (reliable, volatile, depth 10: what
`ros2 topic echo` and most robot code use) and altmarl/global_command. Exits 0
as soon as every robot's odometry has arrived, at least 3 GlobalCommands each
sampled K robots, and some robot has moved 0.3 m; else 1 at the timeout. Prints
one JSON line with what it saw either way.
"""
import json
import sys
import time

import numpy as np
import rclpy
from altmarl_msgs.msg import GlobalCommand
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile

from altmarl_ros.names import GLOBAL_COMMAND_TOPIC
from altmarl_ros.nodes._ros import GLOBAL_COMMAND_QOS, make_executor

MOVED_M = 0.3
COMMANDS = 3


def _track(tracks, robot):
    """Odometry callback keeping [first, latest] (x, y) of one robot."""
    def on_odometry(msg: Odometry) -> None:
        xy = (msg.pose.pose.position.x, msg.pose.pose.position.y)
        tracks.setdefault(robot, [xy, xy])[1] = xy
    return on_odometry


def main(n_robots: int, k: int, timeout: float) -> int:
    rclpy.init()
    node = rclpy.create_node("fleet_observer")
    commands, tracks = [], {}
    node.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, commands.append, GLOBAL_COMMAND_QOS)
    for robot in range(n_robots):
        node.create_subscription(Odometry, f"robot_{robot}/odom", _track(tracks, robot), QoSProfile(depth=10))
    executor = make_executor()
    executor.add_node(node)

    def moved() -> float:
        return max((float(np.hypot(*np.subtract(last, first))) for first, last in tracks.values()), default=0.0)

    def done() -> bool:
        return (len(tracks) == n_robots and len(commands) >= COMMANDS
                and all(len(msg.sampled_ids) == k for msg in commands) and moved() >= MOVED_M)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        executor.spin_once(timeout_sec=0.1)
    print(json.dumps({"robots_heard": len(tracks), "commands": len(commands),
                      "sampled": sorted({len(msg.sampled_ids) for msg in commands}), "moved_m": moved()}),
          flush=True)
    ok = done()
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
