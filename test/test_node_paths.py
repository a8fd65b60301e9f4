"""Decision and stop paths of the nodes that the fleet tests do not reach (docs/testing.md, Branch coverage).

The coordinator tells the operator why it cannot decide from the depot's pose (none fresh, a foreign
frame, not finite) and decides once the pose is usable; the local agents warn when the coordinator runs
another policy, once per policy id; a failure to announce leaving the fleet never blocks shutdown.
Each in one in-process graph, a few seconds.
"""
import math
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from altmarl_msgs.msg import GlobalCommand  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402

from _ring_world import K  # noqa: E402
from altmarl_ros.core.counts import rank  # noqa: E402
from altmarl_ros.names import DEPOT_ODOM_TOPIC, GLOBAL_COMMAND_TOPIC, MAP_FRAME, odom_topic  # noqa: E402
from altmarl_ros.nodes._ros import GLOBAL_COMMAND_QOS, ODOM_QOS  # noqa: E402
from altmarl_sim.ring import zone_centre  # noqa: E402


class Log:
    """Stands in for a node's logger: keeps (level, message)."""

    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda message, **_: self.lines.append((level, message))


def _odometry(ring, zone, frame=MAP_FRAME):
    msg = Odometry()
    msg.header.frame_id = frame
    x, y = zone_centre(zone, ring)
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(x), float(y)
    msg.pose.pose.orientation.w = 1.0
    return msg


def test_the_coordinator_says_why_the_depots_pose_stops_its_decisions_and_decides_once_it_is_usable(graph, world):
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    ring = world["ring"]
    coordinator = graph.add(CoordinatorNode({"scenario": world["scenario"], "policy": world["random"], "k": K,
                                             "robots": K, "decision_period": 0.1, "odom_timeout": 0.5,
                                             "state_sampling": "subscribe_all"}, context=graph.context))
    fleet = graph.add(rclpy.create_node("fleet", context=graph.context))
    robot_pubs = [fleet.create_publisher(Odometry, odom_topic(i), ODOM_QOS) for i in range(K)]
    depot_pub = fleet.create_publisher(Odometry, DEPOT_ODOM_TOPIC, ODOM_QOS)
    received = []
    fleet.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, received.append, GLOBAL_COMMAND_QOS)
    depot = [None]
    last = [0.0]

    def publish():
        if time.monotonic() - last[0] >= 0.05:
            last[0] = time.monotonic()
            for i, pub in enumerate(robot_pubs):
                pub.publish(_odometry(ring, i % ring.n_zones))
            if depot[0] is not None:
                depot_pub.publish(depot[0])

    def reason():
        return coordinator.diagnostic_status()[1]

    assert graph.spin_until(lambda: "no depot pose younger than odom_timeout 0.5 s" in reason(), 10.0, publish)
    depot[0] = _odometry(ring, 2, frame="depot/odom")
    assert graph.spin_until(lambda: "the depot's pose is in frame 'depot/odom', expected 'map'" in reason(),
                            10.0, publish), reason()
    depot[0] = _odometry(ring, 2)
    depot[0].pose.pose.position.x = math.nan
    assert graph.spin_until(lambda: "the depot's pose is NaN/inf" in reason(), 10.0, publish), reason()
    assert not received and coordinator.epoch == 0
    depot[0] = _odometry(ring, 2)
    assert graph.spin_until(lambda: received, 10.0, publish), reason()
    assert received[0].global_state == 2


def _command(policy, session, epoch, policy_id, now_ns):
    """A well-formed fresh GlobalCommand for the ring world's policies (K robots all in zone 0)."""
    n_sl = policy.sizes[2]
    counts = [K] + [0] * (n_sl - 1)
    msg = GlobalCommand(session=session, epoch=epoch, global_state=0, global_action=0, k=K,
                        sampled_ids=list(range(K)), counts=counts, observer="fresh",
                        estimate=[1.0] + [0.0] * (n_sl - 1), query_counts=counts,
                        count_rank=int(rank(np.array(counts))), policy_id=policy_id)
    msg.header.frame_id = MAP_FRAME
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 10**9)
    return msg


def test_local_agents_warn_once_per_policy_id_that_differs_from_theirs(graph, world):
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    agents = graph.add(LocalAgentsNode({"scenario": world["scenario"], "policy": world["random"], "robots": [0, 1]},
                                       context=graph.context))
    log = Log()
    agents.get_logger = lambda: log
    own = agents.policy.policy_id
    warned = []
    for epoch, policy_id in enumerate([own, "a" * 16, "a" * 16, own, "b" * 16, "b" * 16, "a" * 16]):
        agents.on_command(_command(agents.policy, 7, epoch, policy_id, agents.get_clock().now().nanoseconds))
        warned.append(sum("the two halves of the equilibrium differ" in message for _, message in log.lines))
    assert agents.commands_received == 7  # a foreign policy id is warned about, never dropped
    # A warning at the first command of each foreign id after a different one: epochs 1, 4 and 6.
    assert warned == [0, 1, 1, 1, 2, 2, 3]
    assert all(level == "warning" for level, message in log.lines if "equilibrium" in message)


def test_a_failed_leave_announcement_is_logged_and_shutdown_goes_on(graph, world):
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    agents = LocalAgentsNode({"scenario": world["scenario"], "policy": world["random"], "robots": [0]},
                             context=graph.context)
    log = Log()
    agents.get_logger = lambda: log

    def leave():
        raise RuntimeError("publisher already gone")

    agents.answers.leave = leave
    agents.destroy_node()
    # Logged, and the rest of the shutdown ran: the robots were told to stop, every publisher is gone.
    assert log.lines == [("error", "could not announce leaving the fleet: publisher already gone")]
    assert not list(agents.publishers) and not list(agents.subscriptions)


def test_local_agents_say_why_their_last_command_stopped_counting(graph, world):
    """_staleness, what the stop is logged with: none yet, too old by arrival, from the future (sim time
    went back), or already stale by its stamp when it arrived (command_timeout 3 s, skew 0.5 s)."""
    import re

    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    agents = graph.add(LocalAgentsNode({"scenario": world["scenario"], "policy": world["random"], "robots": [0],
                                        "command_timeout": 3.0, "max_clock_skew": 0.5}, context=graph.context))
    assert agents._staleness(None) == "no GlobalCommand yet"
    assert agents._staleness(3_000_000_001) == "the last GlobalCommand is 3.00 s old (command_timeout 3 s)"
    assert agents._staleness(-2_000_000_000) == ("the last GlobalCommand is 2.00 s in the future (sim time went "
                                                 "back; command_timeout 3 s)")
    now_ns = agents.get_clock().now().nanoseconds
    agents.last_command = _command(agents.policy, 1, 0, agents.policy.policy_id, now_ns - 10 * 10**9)
    assert re.fullmatch(r"the last GlobalCommand epoch 0 stamped 10\.\d\d s ago \(limit 3 s \+ clock skew 0\.5 s\) "
                        r"\(arrived 1\.00 s ago\)", agents._staleness(1_000_000_000))
    agents.last_command = _command(agents.policy, 1, 0, agents.policy.policy_id, now_ns)
    assert agents._staleness(3_000_000_000) == "the last GlobalCommand is stale (arrived 3.00 s ago)"
