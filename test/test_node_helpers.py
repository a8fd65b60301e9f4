"""Node building blocks: the CDR fast path, parameter validation, the raw odometry store."""
import math
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from altmarl_ros.nodes import _cdr  # noqa: E402
from altmarl_ros.nodes._params import (ParameterError, declare_float, declare_int,  # noqa: E402
                                       declare_robot_ids, declare_str, parse_robot_ids)


def _odometry(rng, frame_len, child_len, yaw):
    msg = Odometry()
    msg.header.frame_id = "f" * frame_len
    msg.child_frame_id = "c" * child_len
    msg.header.stamp.sec = int(rng.integers(0, 10**6))
    pose = msg.pose.pose
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in rng.normal(0, 5, 3))
    pose.orientation.z, pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    msg.pose.covariance = rng.normal(size=36).tolist()
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = (float(v) for v in rng.normal(size=2))
    msg.twist.covariance = rng.normal(size=36).tolist()
    return msg


def _reference_state(data):
    msg = deserialize_message(data, Odometry)
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y ** 2 + q.z ** 2))
    return p.x, p.y, yaw, msg.twist.twist.linear.x, msg.twist.twist.angular.z


def test_cdr_reader_matches_deserialize_for_every_string_alignment():
    rng = np.random.default_rng(0)
    for frame_len in range(0, 9):  # every padding case of both strings
        for child_len in range(0, 9):
            yaw = float(rng.uniform(-math.pi, math.pi))
            data = serialize_message(_odometry(rng, frame_len, child_len, yaw))
            got = _cdr.odometry_state(data)
            assert got == _reference_state(data)
            assert got[2] == pytest.approx(yaw, abs=1e-12)


def test_cdr_reader_falls_back_to_deserialize_for_other_encapsulations(monkeypatch):
    rng = np.random.default_rng(1)
    data = serialize_message(_odometry(rng, 4, 17, 0.5))
    monkeypatch.setattr(_cdr, "_CDR_LE", b"\xff\xff")  # pretend we cannot read this encoding
    assert _cdr.odometry_state(data) == _reference_state(data)
    twist = Twist()
    twist.linear.x, twist.angular.z = 0.25, -1.5
    assert _cdr.twist_velocity(serialize_message(twist)) == (0.25, -1.5)


def test_cdr_writers_produce_the_intended_messages():
    rng = np.random.default_rng(4)
    for frame_len in range(0, 9):  # every padding case of both strings
        for child_len in range(0, 9):
            x, y, yaw, v, w = (float(value) for value in rng.normal(size=5))
            sec, nanosec = int(rng.integers(0, 2**31)), int(rng.integers(0, 10**9))
            data = _cdr.odometry_cdr(_cdr.odometry_frames("f" * frame_len, "c" * child_len), sec, nanosec,
                                     x, y, math.sin(yaw / 2), math.cos(yaw / 2), v, w)
            expected = Odometry()
            expected.header.frame_id, expected.child_frame_id = "f" * frame_len, "c" * child_len
            expected.header.stamp.sec, expected.header.stamp.nanosec = sec, nanosec
            pose = expected.pose.pose
            pose.position.x, pose.position.y = x, y
            pose.orientation.z, pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
            expected.twist.twist.linear.x, expected.twist.twist.angular.z = v, w
            assert len(data) == len(serialize_message(expected))  # same layout (padding bytes may differ)
            assert deserialize_message(data, Odometry) == expected
    twist = Twist()
    twist.linear.x, twist.angular.z = 0.5, -0.25
    assert deserialize_message(_cdr.twist_cdr(0.5, -0.25), Twist) == twist


def test_twist_reader():
    twist = Twist()
    twist.linear.x, twist.linear.y, twist.angular.z = 0.7, 9.0, 0.125
    assert _cdr.twist_velocity(serialize_message(twist)) == (0.7, 0.125)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_pose_is_rejected(bad):
    msg = _odometry(np.random.default_rng(2), 4, 4, 0.0)
    msg.pose.pose.position.y = bad
    assert _cdr.odometry_pose(serialize_message(msg)) is None
    msg.pose.pose.position.y = 0.0
    msg.pose.pose.orientation.w = bad
    assert _cdr.odometry_pose(serialize_message(msg)) is None


def test_robot_ids_from_count_or_list():
    assert parse_robot_ids("robots", 3) == [0, 1, 2]
    assert parse_robot_ids("robots", [7]) == [7]
    assert parse_robot_ids("robots", [4, 0, 9]) == [4, 0, 9]
    for bad, words in [(0, ">= 1"), ([], "at least one"), ([1, -2], "negative"), ([3, 3], "more than once"),
                       (True, "robot count"), ("5", "robot count"), ([1.5], "robot")]:
        with pytest.raises(ParameterError, match="'robots'") as info:
            parse_robot_ids("robots", bad)
        assert words in str(info.value)


@pytest.mark.ros
def test_declared_parameters_are_validated_with_their_name(ros_context):
    import rclpy
    from rclpy.parameter import Parameter

    def node_with(**values):
        return rclpy.create_node("params_probe", context=ros_context,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])

    node = node_with(period=1, count=4, robots=[2, 5], name="x")
    try:
        assert declare_float(node, "period", 0.5, "d", positive=True) == 1.0  # an integer is a number
        assert declare_int(node, "count", 1, "d", minimum=1) == 4
        assert declare_robot_ids(node, "robots", "d", default_count=None) == [2, 5]
        assert declare_str(node, "name", "", "d", required=True) == "x"
        assert declare_robot_ids(node, "unset_robots", "d", default_count=3) == [0, 1, 2]
        with pytest.raises(ParameterError, match="'required_path' is required"):
            declare_str(node, "required_path", "", "a file", required=True)
    finally:
        node.destroy_node()
    for values, name, words in [({"period": -0.1}, "period", "> 0"), ({"period": "fast"}, "period", "number"),
                                ({"period": math.nan}, "period", "finite"),
                                ({"count": 0}, "count", ">= 1"), ({"count": "many"}, "count", "integer")]:
        node = node_with(**values)
        try:
            with pytest.raises(ParameterError, match=f"'{name}'") as info:
                declare_float(node, "period", 0.5, "d", positive=True)
                declare_int(node, "count", 1, "d", minimum=1)
            assert words in str(info.value)
        finally:
            node.destroy_node()


@pytest.mark.ros
def test_latest_odometry_stores_bytes_and_reports_fresh_robots(ros_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from altmarl_ros.nodes._odom_store import LatestOdometry
    from altmarl_ros.names import odom_topic
    from altmarl_ros.nodes._ros import ODOM_QOS

    listener = rclpy.create_node("store_probe", context=ros_context)
    talker = rclpy.create_node("odom_talker", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        store = LatestOdometry.of_robots(listener, [3, 8, 11])
        pubs = {rid: talker.create_publisher(Odometry, odom_topic(rid), ODOM_QOS) for rid in (3, 11, 42)}
        executor.add_node(listener)
        executor.add_node(talker)
        rng = np.random.default_rng(3)
        sent = {rid: _odometry(rng, 4, 16, 0.1 * rid) for rid in pubs}
        sent[11].pose.pose.position.x = math.nan
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and (store.received_count[[0, 2]] == 0).any():
            for rid, pub in pubs.items():
                pub.publish(sent[rid])
            executor.spin_once(timeout_sec=0.05)
        assert (store.received_count[[0, 2]] > 0).all() and store.received_count[1] == 0
        now = listener.get_clock().now().nanoseconds
        assert store.fresh_slots(now, 10**9).tolist() == [0, 2]  # robot 8 never spoke; 42 is not ours
        assert store.fresh_slots(now + 2 * 10**9, 10**9).tolist() == []  # too old
        assert store.fresh_slots(now - 2 * 10**9, 10**9).tolist() == []  # clock went back: not fresh
        assert store.is_fresh(0, now, 10**9) and not store.is_fresh(0, now - 2 * 10**9, 10**9)
        p = sent[3].pose.pose.position
        x, y, yaw = store.pose(0)
        assert (x, y) == (p.x, p.y) and yaw == pytest.approx(0.3)
        assert store.pose(1) is None and store.pose(2) is None  # never received; NaN
    finally:
        executor.shutdown()
        listener.destroy_node()
        talker.destroy_node()
