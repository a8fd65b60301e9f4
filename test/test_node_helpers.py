"""Node building blocks: the CDR fast path, parameter validation, the raw odometry store."""
import math

import numpy as np
import pytest

pytest.importorskip("rclpy")
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from altmarl_ros.nodes import _cdr  # noqa: E402
from altmarl_ros.nodes._validate import odometry_problem  # noqa: E402
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
    assert odometry_problem(serialize_message(msg)) == (None, "not finite")
    msg.pose.pose.position.y = 0.0
    msg.pose.pose.orientation.w = bad
    assert odometry_problem(serialize_message(msg)) == (None, "not finite")


def test_unusable_odometry_bytes_are_named_not_raised():
    data = serialize_message(_odometry(np.random.default_rng(3), 4, 4, 0.0))
    assert odometry_problem(data)[1] is None
    for cut in (0, 3, 10, 60, 200):
        assert odometry_problem(data[:cut]) == (None, "undecodable")
    assert odometry_problem(b"\x00\x01\x00\x00" + b"\xff" * 40) == (None, "undecodable")
    far = _odometry(np.random.default_rng(3), 4, 4, 0.0)
    far.pose.pose.position.x = 1e7
    assert odometry_problem(serialize_message(far)) == (None, "position out of range")
    # |x| or |y| up to 1e6 m is a position (docs/operations.md), on either side; anything beyond it is not
    for axis, limit in (("x", 1e6), ("y", 1e6), ("x", -1e6), ("y", -1e6)):
        edge = _odometry(np.random.default_rng(3), 4, 4, 0.0)
        setattr(edge.pose.pose.position, axis, limit)
        assert odometry_problem(serialize_message(edge))[1] is None
        setattr(edge.pose.pose.position, axis, np.nextafter(limit, math.copysign(math.inf, limit)))
        assert odometry_problem(serialize_message(edge)) == (None, "position out of range")


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
def test_each_parameter_bound_is_checked_on_both_sides_at_its_edge(ros_context):
    """positive: 0 refused, the smallest positive double accepted; minimum: the minimum accepted (float
    and int), the nearest value below it refused."""
    import rclpy
    from rclpy.parameter import Parameter

    def declared(name, value, declare):
        node = rclpy.create_node("bounds_probe", context=ros_context,
                                 parameter_overrides=[Parameter(name, value=value)])
        try:
            return declare(node)
        except ParameterError as err:
            assert f"'{name}'" in str(err)
            return None
        finally:
            node.destroy_node()

    period = lambda node: declare_float(node, "period", 0.5, "d", positive=True)  # noqa: E731
    lead = lambda node: declare_float(node, "lead", 3.0, "d", minimum=2.0)  # noqa: E731
    count = lambda node: declare_int(node, "count", 4, "d", minimum=1)  # noqa: E731
    assert declared("period", 0.0, period) is None and declared("period", -0.0, period) is None
    assert declared("period", 5e-324, period) == 5e-324
    assert declared("lead", 2.0, lead) == 2.0 and declared("lead", math.nextafter(2.0, 0.0), lead) is None
    assert declared("count", 1, count) == 1 and declared("count", 0, count) is None


@pytest.mark.ros
def test_latest_odometry_stores_bytes_and_reports_fresh_robots(graph):
    import rclpy

    from altmarl_ros.nodes._odom_store import LatestOdometry
    from altmarl_ros.names import odom_topic
    from altmarl_ros.nodes._ros import ODOM_QOS

    listener = rclpy.create_node("store_probe", context=graph.context)
    talker = rclpy.create_node("odom_talker", context=graph.context)
    store = LatestOdometry.of_robots(listener, [3, 8, 11])
    pubs = {rid: talker.create_publisher(Odometry, odom_topic(rid), ODOM_QOS) for rid in (3, 11, 42)}
    graph.add(listener)
    graph.add(talker)
    rng = np.random.default_rng(3)
    sent = {rid: _odometry(rng, 4, 16, 0.1 * rid) for rid in pubs}
    sent[11].pose.pose.position.x = math.nan

    def publish():
        for rid, pub in pubs.items():
            pub.publish(sent[rid])

    assert graph.spin_until(lambda: (store.received_count[[0, 2]] > 0).all(), timeout=10.0, every=publish)
    assert store.received_count[1] == 0
    now = listener.get_clock().now().nanoseconds
    assert store.fresh_slots(now, 10**9).tolist() == [0, 2]  # robot 8 never spoke; 42 is not ours
    assert store.fresh_slots(now + 2 * 10**9, 10**9).tolist() == []  # too old
    assert store.fresh_slots(now - 2 * 10**9, 10**9).tolist() == []  # clock went back: not fresh
    assert store.is_fresh(0, now, 10**9) and not store.is_fresh(0, now - 2 * 10**9, 10**9)
    p = sent[3].pose.pose.position
    x, y, yaw = store.pose(0)
    assert (x, y) == (p.x, p.y) and yaw == pytest.approx(0.3)
    assert store.pose(1) is None and store.pose(2) is None  # never received; NaN


# ----------------------------------------------------------------- GlobalCommand checks, field by field

def _command(**fields):
    """A GlobalCommand valid for sizes (3, 2, 3), k = 4, robots 0..9: fresh, 4 robots sampled."""
    from _command_fields import with_fields
    from altmarl_msgs.msg import GlobalCommand

    from altmarl_ros.core.counts import rank
    from altmarl_ros.names import MAP_FRAME

    msg = GlobalCommand()
    msg.header.frame_id = MAP_FRAME
    msg.global_state, msg.global_action, msg.k, msg.observer = 2, 1, 4, "fresh"
    msg.sampled_ids, msg.counts, msg.estimate = [1, 4, 7, 9], [2, 1, 1], [0.5, 0.25, 0.25]
    msg.query_counts = [2, 1, 1]
    msg.count_rank = int(rank(np.array([2, 1, 1])))
    msg.policy_id = "0" * 16
    return with_fields(msg, **fields)


def _filter_command(query, **fields):
    from altmarl_ros.core.counts import rank

    return _command(observer="filter", query_counts=query, count_rank=int(rank(np.array(query))), **fields)


COMMAND_ROWS = [  # (name, fields changed, reason or None for a usable command)
    ("valid", {}, None),
    ("frame", {"frame_id": "odom"}, "frame_id"),
    ("global state = n_sg", {"global_state": 3}, "global_state"),
    ("global action = n_ag", {"global_action": 2}, "global_action"),
    ("k not the policy's", {"k": 5}, "k"),
    ("observer unknown", {"observer": "kalman"}, "observer"),
    ("more ids than k", {"sampled_ids": [1, 2, 3, 4, 5], "counts": [3, 1, 1]}, "sampled_ids"),
    ("fresh with no sample", {"sampled_ids": [], "counts": [0, 0, 0]}, "sampled_ids"),
    ("repeated id", {"sampled_ids": [1, 4, 4, 9]}, "sampled_ids"),
    ("id not in the fleet", {"sampled_ids": [1, 4, 7, 10]}, "sampled_ids"),
    ("short sample", {"sampled_ids": [1, 4], "counts": [1, 1, 0], "estimate": [0.5, 0.5, 0.0],
                      "query_counts": [2, 2, 0], "count_rank": None}, None),
    ("counts too long", {"counts": [2, 1, 1, 0]}, "counts"),
    ("counts too short", {"counts": [3, 1]}, "counts"),
    ("counts sum not the sample", {"counts": [2, 1, 2]}, "counts"),
    ("estimate too short", {"estimate": [0.5, 0.5]}, "estimate"),
    ("estimate too long", {"estimate": [0.5, 0.25, 0.25, 0.0]}, "estimate"),
    ("estimate negative", {"estimate": [1.25, -0.25, 0.0]}, "estimate"),
    ("estimate not finite", {"estimate": [math.nan, 0.5, 0.5]}, "estimate"),
    ("estimate sums to 1 + 2e-6", {"estimate": [0.5 + 2e-6, 0.25, 0.25]}, "estimate"),
    ("estimate sums to 1 + 5e-7", {"estimate": [0.5 + 5e-7, 0.25, 0.25]}, None),
    ("query too short", {"query_counts": [2, 2]}, "query_counts"),
    ("query too long", {"observer": "filter", "query_counts": [2, 1, 1, 0], "count_rank": None}, "query_counts"),
    ("fresh query not the scaled counts", {"query_counts": [1, 2, 1], "count_rank": None}, "query_counts"),
    ("rank = N_F", {"count_rank": 15}, "count_rank"),  # C(4 + 2, 2) = 15 count vectors
    ("rank not the query's", {"count_rank": None, "shift": 1}, "count_rank"),
    ("policy id of 65 characters", {"policy_id": "0" * 65}, "policy_id"),
    ("policy id of 64 characters", {"policy_id": "0" * 64}, None),
]


@pytest.mark.parametrize("name, fields, reason", COMMAND_ROWS, ids=[row[0] for row in COMMAND_ROWS])
def test_command_check_names_the_first_bad_field(name, fields, reason):
    from altmarl_ros.core.counts import rank
    from altmarl_ros.nodes._validate import CommandCheck

    fields = dict(fields)
    shift = fields.pop("shift", 0)
    msg = _command(**{key: value for key, value in fields.items() if key != "count_rank" or value is not None})
    if fields.get("count_rank", 0) is None:  # the rank of the row's query_counts (plus a shift)
        msg.count_rank = (int(rank(np.array(list(msg.query_counts)))) + shift) % 15
    problem = CommandCheck((3, 2, 3), k=4, robot_ids=range(10)).problem(msg)
    assert (problem and problem[0]) == reason, problem


def test_a_state_or_action_out_of_range_is_named_with_the_range():
    from altmarl_ros.nodes._validate import CommandCheck

    check = CommandCheck((3, 2, 3), k=4)
    assert check.problem(_command(global_state=3)) == ("global_state", "global_state 3 not in 0..2")
    assert check.problem(_command(global_action=2)) == ("global_action", "global_action 2 not in 0..1")


def test_a_long_array_in_a_drop_reason_shows_its_first_eight_entries():
    """The reason is logged: an estimate or query over many local states is cut to 8 entries."""
    from altmarl_ros.nodes._validate import CommandCheck

    check = CommandCheck((3, 2, 10), k=4)
    ones = [1.0] * 10
    assert check.problem(_command(counts=[2, 1, 1] + [0] * 7, estimate=ones)) == (
        "estimate", f"estimate {ones[:8]} is not a distribution over 10 states")
    msg = _command(counts=[2, 1, 1] + [0] * 7, estimate=[0.1] * 10, query_counts=[0] * 10)
    assert check.problem(msg) == ("query_counts", f"query_counts {[0] * 8}: need 10 counts summing to 1..2147483647")


def test_command_check_without_a_policy_k_or_a_fleet_list():
    from altmarl_ros.core.counts import rank
    from altmarl_ros.nodes._validate import CommandCheck

    anyone = CommandCheck((3, 2, 3))  # k up to the fleet, robots not known
    assert anyone.problem(_command(sampled_ids=[1, 4, 7, 500])) is None
    assert anyone.problem(_command(k=0)) == ("k", "k 0 not in 1..n")
    one = _command(k=1, sampled_ids=[7], counts=[0, 0, 1], estimate=[0.0, 0.0, 1.0], query_counts=[0, 0, 1],
                   count_rank=int(rank(np.array([0, 0, 1]))))
    assert anyone.problem(one) is None  # k = 1, the smallest sample
    fleet = CommandCheck((3, 2, 3), robot_ids=range(4))
    assert fleet.problem(_command(sampled_ids=[0, 1, 2, 3])) is None  # k = 4 = the fleet
    assert fleet.problem(_command(k=5, sampled_ids=[0, 1, 2, 3])) == ("k", "k 5 not in 1..4")  # above the fleet


def test_a_filter_decides_on_its_prediction_and_queries_any_resolution():
    from altmarl_ros.nodes._validate import CommandCheck

    check = CommandCheck((3, 2, 3), k=4, robot_ids=range(10))
    assert check.problem(_filter_command([10, 6, 4])) is None  # resolution 20, not k
    assert check.problem(_filter_command([10, 6, 4], sampled_ids=[], counts=[0, 0, 0])) is None  # no sample
    assert check.problem(_filter_command([0, 0, 0]))[0] == "query_counts"  # resolution 0
    # a resolution up to int32's largest, 2^31 - 1, on either side; (K, 0) is the last count vector, rank K
    pair = CommandCheck((3, 2, 2), k=4)
    fields = dict(observer="filter", counts=[3, 1], estimate=[0.75, 0.25])
    assert pair.problem(_command(query_counts=[2**31 - 1, 0], count_rank=2**31 - 1, **fields)) is None
    assert pair.problem(_command(query_counts=[2**31, 0], count_rank=2**31, **fields))[0] == "query_counts"


def _largest_rankable_resolution(n_sl):
    """The largest K whose C(K + n_sl - 1, n_sl - 1) count vectors an int64 rank can hold (bisection)."""
    low, high = 1, 2**31
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if math.comb(mid + n_sl - 1, n_sl - 1) <= 2**63 - 1 else (low, mid - 1)
    return low


@pytest.mark.parametrize("n_sl", [4, 5])
def test_a_query_whose_count_vectors_outgrow_an_int64_rank_is_refused_at_the_first_resolution_beyond(n_sl):
    """The largest rankable resolution K is accepted with its closed-form rank (K, 0, ..., 0) is the last,
    N_F - 1; at K + 1 no int64 rank exists, so the command is dropped (not ranked with a wrapped int64)."""
    from altmarl_ros.nodes._validate import CommandCheck

    check = CommandCheck((3, 2, n_sl))
    K = _largest_rankable_resolution(n_sl)
    assert K < 2**31 - 1  # within MAX_RESOLUTION: the int64 limit is what refuses
    fields = dict(counts=[1] + [0] * (n_sl - 1), sampled_ids=[3], k=4, estimate=[1.0] + [0.0] * (n_sl - 1))
    last = _command(observer="filter", query_counts=[K] + [0] * (n_sl - 1),
                    count_rank=math.comb(K + n_sl - 1, n_sl - 1) - 1, **fields)
    assert check.problem(last) is None
    beyond = _command(observer="filter", query_counts=[K + 1] + [0] * (n_sl - 1), count_rank=0, **fields)
    assert check.problem(beyond)[0] == "query_counts"


def test_a_query_beyond_any_count_table_is_refused_not_raised():
    """With 200 local states a resolution of 2^31 - 1 has about 2^4900 count vectors: beyond the size the
    count functions compute (2^4096); the command is dropped like any unrankable query, not raised out of the
    subscription callback."""
    from altmarl_ros.nodes._validate import MAX_RESOLUTION, CommandCheck

    n_sl = 200
    bits = math.log2(math.comb(MAX_RESOLUTION + n_sl - 1, n_sl - 1))
    assert bits > 4096
    msg = _command(observer="filter", counts=[1] + [0] * (n_sl - 1), sampled_ids=[3],
                   estimate=[1.0] + [0.0] * (n_sl - 1), query_counts=[MAX_RESOLUTION] + [0] * (n_sl - 1),
                   count_rank=0)
    assert CommandCheck((3, 2, n_sl), k=4).problem(msg)[0] == "query_counts"


def test_decision_schedule_decides_once_in_every_period_with_a_tick():
    """Ticks on a float-summed sim clock, some fired twice at one time, stalls of 0.3 s and
    2.5 s, then a clock reset: every period window that holds a tick holds exactly one decision."""
    from altmarl_ros.nodes.coordinator import decision_schedule

    period, slack = 1_000_000_000, 25_000_000
    t, ticks = 0.0, []
    for i in range(400):
        t += 0.05
        if 100 <= i < 106 or 200 <= i < 250:  # stalls: no tick for 0.3 s, 2.5 s
            continue
        ticks += [int(t * 1e9)] * (2 if i % 7 == 0 else 1)  # now and then the same clock value twice
    due, decided = None, []
    for now in ticks:
        decide, due = decision_schedule(due, now, period, slack)
        if decide:
            decided.append(now)
    assert decided[0] == ticks[0]  # the first tick decides: the fleet does not wait a period first
    start = ticks[0] - slack  # the first boundary, less the slack
    assert len(set(decided)) == len(decided)
    for j in range((ticks[-1] - start) // period + 1):
        window = (start + j * period, start + (j + 1) * period)
        if any(window[0] <= now < window[1] for now in ticks):
            assert sum(window[0] <= now < window[1] for now in decided) == 1, (j, decided)
    # The simulator restarts: the first tick after the reset decides, and the schedule follows it.
    decide, due = decision_schedule(due, 50_000_000, period, slack)
    assert decide and due == 1_050_000_000
    assert decision_schedule(due, 1_024_999_999, period, slack) == (False, 1_050_000_000)
    assert decision_schedule(due, 1_049_999_000, period, slack) == (True, 2_050_000_000)


def test_decision_schedule_boundary_is_exact_to_the_nanosecond():
    """A tick slack_ns before the boundary decides; one nanosecond earlier it does not."""
    from altmarl_ros.nodes.coordinator import decision_schedule

    period, slack, due = 1_000_000_000, 25_000_000, 7_000_000_000
    assert decision_schedule(due, due - slack - 1, period, slack) == (False, due)
    assert decision_schedule(due, due - slack, period, slack) == (True, due + period)


def test_decision_schedule_restarts_only_on_a_clock_more_than_a_period_before_the_last_boundary():
    """The last boundary passed is due - period; a tick at most one period before it is a late
    or repeated clock reading (the schedule stays), one nanosecond earlier is a restart."""
    from altmarl_ros.nodes.coordinator import decision_schedule

    period, slack, due = 1_000_000_000, 25_000_000, 7_000_000_000
    back = due - period - period
    assert decision_schedule(due, back, period, slack) == (False, due)
    assert decision_schedule(due, back - 1, period, slack) == (True, back - 1 + period)


# ----------------------------------------------------------------- goal_pose holds

class _Publisher:
    def __init__(self, sent):
        self.sent = sent

    def publish(self, msg):
        self.sent.append(msg)


class _GoalNode:
    """What GoalSender uses of a node: publishers (recording), a clock."""

    def __init__(self):
        self.published = {}

    def create_publisher(self, msg_type, topic, qos):
        return _Publisher(self.published.setdefault(topic, []))

    def get_clock(self):
        from rclpy.clock import Clock

        return Clock()


def test_a_hold_waits_for_a_known_pose_and_never_goes_to_a_robot_never_sent_a_goal():
    """hold_all: robots 0 and 1 drive, robot 2 was never sent a goal. With robot 1's pose unknown, only
    robot 0 is held (at its pose, its own heading); robot 1 keeps its zone goal until a later hold sees its
    pose; robot 2 gets nothing ever; a held robot is not held again."""
    from altmarl_ros.nodes._goals import HOLD, GoalSender
    from altmarl_ros.names import goal_topic

    node = _GoalNode()
    names = ["r0", "r1", "r2"]
    goals = GoalSender(node, names, "map")
    goals.drive(0, 3, (1.0, 2.0), (0.0, 0.0, 0.0))
    goals.drive(1, 4, (5.0, 6.0), (0.0, 0.0, 0.0))
    poses = {0: (0.5, 0.25, 0.3), 1: None, 2: (9.0, 9.0, 0.0)}
    goals.hold_all(poses.get)
    assert goals.sent == [HOLD, 4, -2]
    held = node.published[goal_topic("r0")][-1].pose
    assert (held.position.x, held.position.y) == (0.5, 0.25)
    assert math.isclose(2 * math.atan2(held.orientation.z, held.orientation.w), 0.3)
    assert len(node.published[goal_topic("r1")]) == 1 and node.published[goal_topic("r2")] == []
    poses[1] = (4.0, 4.5, -1.0)
    goals.hold_all(poses.get)
    assert goals.sent == [HOLD, HOLD, -2] and goals.published == 4  # 2 drives + 2 holds
    held = node.published[goal_topic("r1")][-1].pose
    assert (held.position.x, held.position.y) == (4.0, 4.5)


def test_undecodable_bytes_are_dropped_and_counted_not_raised():
    """Any bytes can arrive on a raw subscription: a truncated GlobalCommand is dropped as undecodable."""
    from altmarl_msgs.msg import GlobalCommand
    from rclpy.serialization import serialize_message

    from altmarl_ros.nodes._validate import DroppedMessages, decoded

    warnings = []

    class Node:
        def get_logger(self):
            class Logger:
                def warning(self, text, **_):
                    warnings.append(text)
            return Logger()

    dropped = DroppedMessages(Node())
    whole = serialize_message(_command())
    assert decoded(whole, GlobalCommand, dropped).count_rank == _command().count_rank
    assert decoded(whole[:7], GlobalCommand, dropped) is None
    assert dict(dropped.counts) == {"GlobalCommand: undecodable": 1} and len(warnings) == 1
