"""GlobalCommand crosses a real ROS 2 graph intact: same process, and across processes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest


rclpy = pytest.importorskip("rclpy")
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from altmarl_msgs.msg import GlobalCommand  # noqa: E402
from altmarl_ros.names import GLOBAL_COMMAND_TOPIC as TOPIC  # noqa: E402


def _qos(depth):
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _fields(msg):
    return (msg.epoch, msg.global_state, msg.global_action, msg.k, list(msg.sampled_ids),
            list(msg.counts), msg.count_rank, msg.policy_id)


def test_field_types_and_bounds():
    msg = GlobalCommand(sampled_ids=[0, 4294967295], counts=[3, 0, 2], count_rank=2**63, policy_id="abc")
    assert list(msg.sampled_ids) == [0, 4294967295]
    with pytest.raises((AssertionError, OverflowError)):
        GlobalCommand(sampled_ids=[-1])  # uint32[] rejects negatives at construction


@pytest.mark.ros
def test_roundtrip_same_process(graph):
    pub_node = rclpy.create_node("gc_pub", context=graph.context)
    sub_node = rclpy.create_node("gc_sub", context=graph.context)
    received = []
    sub_node.create_subscription(GlobalCommand, TOPIC, received.append, _qos(10))
    pub = pub_node.create_publisher(GlobalCommand, TOPIC, _qos(10))
    graph.add(pub_node)
    graph.add(sub_node)
    sent = []
    for epoch in range(5):
        msg = GlobalCommand(epoch=epoch, global_state=2, global_action=epoch % 5, k=4,
                            sampled_ids=[7, 3, 11, epoch], counts=[2, 1, 0, 1, 0],
                            count_rank=1234 + epoch, policy_id="deadbeef")
        msg.header.stamp = pub_node.get_clock().now().to_msg()
        msg.header.frame_id = "map"
        pub.publish(msg)
        sent.append(msg)
    assert graph.spin_until(lambda: len(received) == 5, timeout=10.0), f"got {len(received)}/5"
    assert [_fields(m) for m in received] == [_fields(m) for m in sent]
    assert [m.header for m in received] == [m.header for m in sent]


@pytest.mark.ros
def test_roundtrip_across_processes(graph):
    count = 20
    child_env = dict(os.environ)  # same domain id and localhost-only discovery as this test
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_globalcommand_publisher.py")),
                              str(count)], stdin=subprocess.PIPE, env=child_env)
    try:
        received = {}
        node = rclpy.create_node("gc_remote_sub", context=graph.context)
        node.create_subscription(GlobalCommand, TOPIC, lambda m: received.setdefault(m.epoch, m), _qos(count))
        graph.add(node)
        assert graph.spin_until(lambda: len(received) == count or child.poll() is not None, timeout=60.0)
        assert child.poll() is None, f"publisher process exited early with code {child.returncode}"
        assert sorted(received) == list(range(count))
        for epoch, msg in received.items():
            assert _fields(msg) == (epoch, epoch % 5, (epoch + 1) % 5, 3, [epoch, epoch + 10, epoch + 20],
                                    [1, 0, 2, 0, 0], epoch * 7, f"p{epoch}")
    finally:
        child.stdin.close()
        child.wait(timeout=20)
