"""Commands that cannot be replayed, floods that cannot stop the fleet, stops that are always answered.

Real in-process graphs (n = 50, k = 5; test_nodes.py's world). A replayed GlobalCommand, byte for byte
or with a fresh stamp, never keeps a robot moving after its coordinator is gone; a flood of invalid
commands neither stops a moving fleet nor goes uncounted; 200 concurrent stop calls are all answered.
The freshness rule itself (stamps, epochs, sessions, clock skew) is checked without ROS below.
"""
import time

import numpy as np
import pytest

from altmarl_msgs.msg import GlobalCommand

from altmarl_ros.nodes._validate import CommandFreshness

SEC = 10**9


def _command(session, epoch, stamp_ns):
    msg = GlobalCommand(session=session, epoch=epoch)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, SEC)
    return msg


def test_freshness_by_stamp_epoch_and_session_with_clock_skew():
    fresh = CommandFreshness(max_age_ns=3 * SEC, skew_ns=SEC // 2)
    now = 100 * SEC
    assert fresh.problem(_command(7, 0, now), now) is None
    fresh.accept(_command(7, 0, now))
    # the same epoch again (a replay, whatever its stamp), or an earlier one: refused
    assert fresh.problem(_command(7, 0, now + SEC), now + SEC)[0] == "old epoch"
    fresh.accept(_command(7, 4, now))
    assert fresh.problem(_command(7, 3, now), now)[0] == "old epoch"
    assert fresh.problem(_command(7, 5, now), now) is None
    # stamps: older than max_age + skew refused, up to it accepted; the same on the future side at skew
    assert fresh.problem(_command(7, 5, now - 3 * SEC - SEC // 2), now) is None
    assert fresh.problem(_command(7, 5, now - 3 * SEC - SEC // 2 - 1), now) == (
        "stale stamp", "epoch 5 stamped 3.50 s ago (limit 3 s + clock skew 0.5 s)")
    assert fresh.problem(_command(7, 5, now + SEC // 2), now) is None
    assert fresh.problem(_command(7, 5, now + SEC // 2 + 1), now) == (
        "future stamp", "epoch 5 stamped 0.50 s ahead of this node's clock")
    # a restarted coordinator (new session, epochs from 0) is taken; the replaced session never again
    assert fresh.problem(_command(9, 0, now), now) is None
    fresh.accept(_command(9, 0, now))
    assert fresh.problem(_command(7, 99, now), now)[0] == "replaced session"
    fresh.accept(_command(3, 0, now))  # session ids are random: a restart may draw a smaller one
    assert fresh.problem(_command(9, 1, now), now)[0] == "replaced session"
    # by stamp only (what decides whether the last accepted command still counts)
    assert fresh.problem(_command(9, 0, now), now, check_epoch=False) is None
    assert fresh.problem(_command(9, 0, now), now + 4 * SEC, check_epoch=False)[0] == "stale stamp"


rclpy = pytest.importorskip("rclpy")

from altmarl_ros.names import GLOBAL_COMMAND_TOPIC  # noqa: E402
from altmarl_ros.nodes._ros import GLOBAL_COMMAND_QOS  # noqa: E402
from test_nodes import N, _sim_nodes  # noqa: E402

TIMEOUT = 1.0  # command_timeout of the local agents in these graphs (sim s)


def _sim_seconds(node):
    return node.get_clock().now().nanoseconds / 1e9


@pytest.mark.ros
@pytest.mark.parametrize("restamp", [False, True])
def test_a_replayed_last_command_does_not_keep_robots_moving(graph, world, restamp):
    """The coordinator goes; its last GlobalCommand is replayed every 0.5 s (as `ros2 bag play` would, with
    its recorded stamp, or rewritten to look fresh): the robots rest within command_timeout + 0.2 s."""
    sim, coordinator, agents = _sim_nodes(graph, world, world["next"], command_timeout=TIMEOUT)
    spy = graph.add(rclpy.create_node("bag", context=graph.context,  # stamps in sim time, as the fleet's
                                      parameter_overrides=[rclpy.parameter.Parameter("use_sim_time", value=True)]))
    heard = []
    spy.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, heard.append, GLOBAL_COMMAND_QOS)
    replay = spy.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, GLOBAL_COMMAND_QOS)
    assert graph.spin_until(lambda: coordinator.epoch >= 3 and not agents.stopped, timeout=40.0)
    graph.remove(coordinator)
    last = heard[-1]
    lost_at = _sim_seconds(agents)
    next_replay = [0.0]

    def replay_every_half_second():
        if time.monotonic() >= next_replay[0]:
            next_replay[0] = time.monotonic() + 0.5
            if restamp:
                last.header.stamp = spy.get_clock().now().to_msg()
            replay.publish(last)
    assert graph.spin_until(lambda: agents.stopped, timeout=10.0, every=replay_every_half_second)
    assert _sim_seconds(agents) - lost_at <= TIMEOUT + 0.2
    graph.spin_until(lambda: False, timeout=1.5, every=replay_every_half_second)
    assert agents.stopped and np.abs(sim.commands[:N]).max() == 0.0
    replays = agents.dropped.counts["GlobalCommand: old epoch"] + agents.dropped.counts["GlobalCommand: stale stamp"]
    assert replays >= 2, agents.dropped.counts


@pytest.mark.ros
def test_a_flood_of_invalid_commands_neither_stops_the_fleet_nor_goes_uncounted(graph, world):
    """A rogue process floods altmarl/global_command with 10,000 invalid commands a second for 4 s: the
    robots never stop (valid commands are not pushed out of the queue), and every message the flood got
    out is counted as dropped, on the node and on its /diagnostics."""
    import select
    import subprocess
    import sys
    from pathlib import Path

    from diagnostic_msgs.msg import DiagnosticArray

    from altmarl_ros.names import DIAGNOSTICS_TOPIC

    sim, coordinator, agents = _sim_nodes(graph, world, world["next"])
    spy = graph.add(rclpy.create_node("diagnostics_spy", context=graph.context))
    latest = {}
    spy.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, lambda a: latest.update({s.name: s for s in a.status}),
                            10)
    assert graph.spin_until(lambda: coordinator.epoch >= 2 and not agents.stopped, timeout=40.0)
    epochs_before = agents.commands_received
    flooder = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_flooder.py")), "10000", "4"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        stops = []
        watch = lambda: stops.append(agents.stopped)  # noqa: E731
        printed = lambda: select.select([flooder.stdout], [], [], 0)[0]  # noqa: E731 - it prints when done
        assert graph.spin_until(printed, timeout=120.0, every=watch), "the flooder never finished"
        sent = int(flooder.stdout.readline())
        counted = lambda: agents.dropped.counts["GlobalCommand: k"]  # noqa: E731
        assert graph.spin_until(lambda: counted() == sent, timeout=30.0, every=watch), (counted(), sent)
        assert sent > 5_000
        assert not any(stops), "the fleet stopped during the flood"
        assert agents.commands_received > epochs_before  # valid commands kept arriving through the flood

        def reported():
            status = [s for name, s in latest.items() if name.endswith(": local agents")]
            return status and {kv.key: kv.value for kv in status[0].values}.get("dropped GlobalCommand: k") == str(sent)
        assert graph.spin_until(reported, timeout=5.0)
    finally:
        flooder.kill()
        flooder.wait(10)


@pytest.mark.ros
def test_two_hundred_concurrent_stop_calls_are_all_answered_and_the_robots_rest(graph, world):
    """20 operators x 10 calls at once (another process, as `ros2 service call` is): every call is answered
    (the service keeps every request; with the default depth of 10, 30 of 50 went unanswered)."""
    import select
    import subprocess
    import sys
    from pathlib import Path

    sim, coordinator, agents = _sim_nodes(graph, world, world["next"])
    assert graph.spin_until(lambda: coordinator.epoch >= 1 and np.abs(sim.commands[:N, 0]).max() > 0.05,
                            timeout=40.0)
    storm = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_stop_storm.py")), "20", "10"],
                             stdout=subprocess.PIPE, text=True)
    try:
        printed = lambda: select.select([storm.stdout], [], [], 0)[0]  # noqa: E731
        assert graph.spin_until(printed, timeout=60.0)
        answered, total, ms = (int(word) for word in storm.stdout.readline().split())
    finally:
        storm.kill()
        storm.wait(10)
    assert (answered, total) == (200, 200)
    assert coordinator.stopped and agents.halted
    assert graph.spin_until(lambda: np.abs(sim.commands).max() == 0.0, timeout=2.0)
    print(f"200 stop calls answered in {ms} ms")
