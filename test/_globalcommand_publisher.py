"""Child process for test_msgs: publishes GlobalCommand epochs 0..N-1 until told to stop."""
import sys

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from altmarl_msgs.msg import GlobalCommand
from altmarl_ros.names import GLOBAL_COMMAND_TOPIC


def main(count: int) -> None:
    rclpy.init()
    node = rclpy.create_node("globalcommand_publisher")
    qos = QoSProfile(depth=count, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, qos)
    for epoch in range(count):
        msg = GlobalCommand(epoch=epoch, global_state=epoch % 5, global_action=(epoch + 1) % 5, k=3,
                            sampled_ids=[epoch, epoch + 10, epoch + 20], counts=[1, 0, 2, 0, 0],
                            count_rank=epoch * 7, policy_id=f"p{epoch}")
        pub.publish(msg)
    # Transient-local keeps the history for a late subscriber; stay up until the parent closes stdin.
    sys.stdin.read()
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]))
