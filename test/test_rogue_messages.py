"""A running fleet survives rogue messages: each kind is dropped, counted, and the fleet keeps moving.

The whole sim graph (fleet_sim, coordinator, local_agents, markers, welfare_monitor)
runs in one executor; a rogue node publishes every kind of malformed GlobalCommand
and odometry message. An exception in any callback would propagate out of
spin_once and fail the test (in a launched fleet it kills the process), so
spinning on is the "no node dies" check. Independent checks: the counters name
each reason; after the barrage the coordinator still decides, the local agents
still act on its commands, the simulated robots still move, and every command the
markers and local agents hold is one the coordinator really sent.
"""
import math

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from altmarl_msgs.msg import GlobalCommand  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from _command_fields import with_fields  # noqa: E402
from test_nodes import K, N  # noqa: E402

from altmarl_ros.core.counts import n_count_vectors  # noqa: E402
from altmarl_ros.names import GLOBAL_COMMAND_TOPIC, odom_topic  # noqa: E402
from altmarl_ros.nodes._ros import GLOBAL_COMMAND_QOS, ODOM_QOS  # noqa: E402


def _commands(valid: GlobalCommand) -> dict:
    """reason -> a GlobalCommand (or raw bytes) wrong in exactly that field, built from a real one."""
    def changed(**fields):
        return with_fields(deserialize_message(serialize_message(valid), GlobalCommand), **fields)  # a deep copy

    counts = list(valid.counts)
    n_f = n_count_vectors(K, len(counts))
    good_bytes = serialize_message(valid)
    return {
        "global_action": changed(global_action=99),
        "global_state": changed(global_state=99),
        "k": changed(k=K + 1),
        "counts": changed(counts=counts + [0]),
        "sampled_ids": changed(sampled_ids=list(valid.sampled_ids)[:-1] + [list(valid.sampled_ids)[0]]),
        "count_rank": changed(count_rank=10 ** 9),
        "frame_id": changed(frame_id="elsewhere"),
        "undecodable": good_bytes[: len(good_bytes) // 2],
        "unknown robot": changed(sampled_ids=list(valid.sampled_ids)[:-1] + [N + 500]),
        "counts sum": changed(counts=[c + 1 for c in counts]),
        "rank mismatch": changed(count_rank=(valid.count_rank + 1) % n_f),
    }


def _odometry_messages() -> dict:
    """reason -> serialized odometry wrong in that way."""
    def odom(x=1.0, y=0.0, w=1.0):
        msg = Odometry()
        msg.header.frame_id = "odom"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation.w = w
        return serialize_message(msg)

    good = odom()
    return {"not finite": [odom(x=math.nan), odom(w=math.inf)],
            "position out of range": [odom(x=1e9)],
            "undecodable": [good[:20], b"\x00\x01\x00\x00" + b"\xff" * 64]}


def test_fleet_survives_every_kind_of_bad_message_and_counts_them(graph, world):
    from altmarl_ros.nodes.coordinator import CoordinatorNode
    from altmarl_ros.nodes.fleet_sim import FleetSimNode
    from altmarl_ros.nodes.local_agents import LocalAgentsNode
    from altmarl_ros.nodes.markers import MarkersNode
    from altmarl_ros.nodes.welfare_monitor import WelfareMonitorNode

    common = {"scenario": world["scenario"], "policy": world["random"], "n_robots": N, "k": K, "use_sim_time": True}
    sim = graph.add(FleetSimNode({"scenario": world["scenario"], "n_robots": N, "real_time_factor": 2.0},
                                 context=graph.context))
    coordinator = graph.add(CoordinatorNode(common, context=graph.context))
    agents = graph.add(LocalAgentsNode(common, context=graph.context))
    markers = graph.add(MarkersNode({"scenario": world["scenario"], "robots": N, "use_sim_time": True},
                                    context=graph.context))
    monitor = graph.add(WelfareMonitorNode({"scenario": world["scenario"], "n_robots": N, "use_sim_time": True,
                                            "log_every": 0}, context=graph.context))
    rogue = graph.add(rclpy.create_node("rogue", context=graph.context))
    command_pub = rogue.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, GLOBAL_COMMAND_QOS)
    odom_pubs = [rogue.create_publisher(Odometry, odom_topic(i), ODOM_QOS) for i in range(3)]

    assert graph.spin_until(lambda: coordinator.epoch >= 2 and agents.commands_received >= 2, timeout=40.0)
    bad_commands = _commands(coordinator.last_command)
    bad_odometry = _odometry_messages()
    def dropped(node):
        return sum(n for key, n in node.dropped.counts.items() if key.startswith("GlobalCommand"))

    for kind, msg in bad_commands.items():
        # who must drop it: markers and the monitor take any k; the agents need not know every robot
        required = {"k": (agents,), "unknown robot": (markers, monitor)}.get(kind, (agents, markers, monitor))
        before = [dropped(node) for node in required]
        for _ in range(3):  # keep-last(1): the coordinator's next command can replace it before it is taken
            command_pub.publish(msg)
            def all_dropped(required=required, before=before):
                return all(dropped(n) > b for n, b in zip(required, before))
            if graph.spin_until(all_dropped, timeout=1.0):
                break
    for _ in range(5):
        for messages in bad_odometry.values():
            for data in messages:
                for pub in odom_pubs:
                    pub.publish(data)
        graph.spin_until(lambda: False, timeout=0.1)

    # The fleet goes on: more decisions, acted on, robots moving.
    epoch, received, poses = coordinator.epoch, agents.commands_received, np.array(sim.sim.poses)
    assert graph.spin_until(lambda: coordinator.epoch >= epoch + 3 and agents.commands_received >= received + 3,
                            timeout=40.0)
    assert np.abs(np.array(sim.sim.poses) - poses).max() > 0.05
    # What the agents and markers act on now is the coordinator's, not a rogue copy of an old epoch.
    assert agents.last_command.epoch >= epoch and markers.last_command.epoch >= epoch

    def reasons(node, kind):
        return {key.split(": ", 1)[1] for key in node.dropped.counts if key.startswith(kind)}

    command_reasons = {"global_action", "global_state", "k", "counts", "sampled_ids", "count_rank", "frame_id",
                       "undecodable"}
    assert command_reasons <= reasons(agents, "GlobalCommand"), agents.dropped.counts
    # Markers and the monitor know the whole fleet: an unknown robot id is dropped there too.
    for node in (markers, monitor):
        assert command_reasons - {"k"} <= reasons(node, "GlobalCommand"), node.dropped.counts
        assert node.dropped.counts["GlobalCommand: sampled_ids"] >= 2  # repeated id, unknown id
    assert reasons(monitor, "Odometry") == set(bad_odometry), monitor.dropped.counts
    for node in (agents, markers, monitor):
        assert node.dropped.counts["GlobalCommand: counts"] >= 2  # wrong length, wrong sum
    assert markers.build().markers  # still draws (an unchecked global_action 99 raised IndexError here)
