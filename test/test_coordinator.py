"""The coordinator's decision and stop paths against a hand-driven fleet (one in-process graph each, a few
seconds): the durations, sampled states' ages and epochs it reports, short decisions, robots leaving and
coming back, the depot held still on an operator stop and the resume, and what its warnings say about the
odometry timeout."""
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from altmarl_msgs.msg import GlobalCommand  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from _ring_world import K  # noqa: E402
from test_node_paths import Log, _odometry  # noqa: E402
from altmarl_ros.names import (DEPOT_CMD_VEL_TOPIC, DEPOT_ODOM_TOPIC, GLOBAL_COMMAND_TOPIC, STOPPED_TOPIC,  # noqa: E402
                               odom_topic)
from altmarl_ros.nodes._ros import CMD_VEL_QOS, GLOBAL_COMMAND_QOS, LATCHED_QOS, ODOM_QOS  # noqa: E402


def _coordinator(graph, world, **parameters):
    """A coordinator of K robots, k = K, deciding every 0.1 s on every robot's odometry (odom_timeout 2 s)."""
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    return graph.add(CoordinatorNode({"scenario": world["scenario"], "policy": world["random"], "k": K, "robots": K,
                                      "decision_period": 0.1, "odom_timeout": 2.0,
                                      "state_sampling": "subscribe_all", **parameters}, context=graph.context))


def _fleet(graph, world, robots):
    """(publish, heard): publish() sends the odometry of the robots in `robots` (a set the test may change)
    and of the depot (the zone after its goal) every 50 ms when called (spin_until's `every`);
    heard["command"], ["depot"] and ["stopped"] fill with the coordinator's GlobalCommands, depot cmd_vels
    and altmarl/stopped."""
    fleet = graph.add(rclpy.create_node("fleet", context=graph.context))
    pubs = {i: fleet.create_publisher(Odometry, odom_topic(i), ODOM_QOS) for i in range(K)}
    depot_pub = fleet.create_publisher(Odometry, DEPOT_ODOM_TOPIC, ODOM_QOS)
    heard = {"command": [], "depot": [], "stopped": []}
    fleet.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, heard["command"].append, GLOBAL_COMMAND_QOS)
    fleet.create_subscription(Twist, DEPOT_CMD_VEL_TOPIC, heard["depot"].append, CMD_VEL_QOS)
    fleet.create_subscription(Bool, STOPPED_TOPIC, heard["stopped"].append, LATCHED_QOS)
    ring, last = world["ring"], [0.0]

    def publish():
        now = fleet.get_clock().now().nanoseconds / 1e9
        if now - last[0] >= 0.05:
            last[0] = now
            for i in sorted(robots):
                pubs[i].publish(_odometry(ring, i % ring.n_zones))
            goal = heard["command"][-1].global_action if heard["command"] else 0
            depot_pub.publish(_odometry(ring, (goal + 1) % ring.n_zones))  # never at its goal: it drives

    return publish, heard


def _call(service):
    """(success, message) of a std_srvs/Trigger service handler called directly."""
    response = service(Trigger.Request(), Trigger.Response())
    return response.success, response.message


def test_state_ages_are_seconds_within_the_timeout_and_a_stop_holds_the_depot_still(graph, world, monkeypatch):
    """Each decision's duration is read off the module's clock (stubbed: 0.25 s a reading); each sampled
    pose is younger than odom_timeout (2 s), so every reported age is in (0, 2] s; no epoch is skipped
    (the depot's pose is never 2 s old), so each command after the first says one epoch elapsed
    (msg/GlobalCommand.msg: 0 at the first, 1 normally). The depot drives to its goal; after altmarl/stop
    no decision is made and every depot cmd_vel is zero; altmarl/resume publishes that the fleet goes on,
    and decisions resume. Each service answers whether it changed anything."""
    from altmarl_ros.nodes import coordinator as module

    readings = iter(range(10**6))
    monkeypatch.setattr(module, "time", SimpleNamespace(perf_counter=lambda: 0.25 * next(readings)))
    coordinator = _coordinator(graph, world)
    sampled_ns, collect_states = [], coordinator.states.collect

    def collect(*args):  # what the sampler handed the decision, in nanoseconds
        sample = collect_states(*args)
        sampled_ns.extend(sample.ages_ns.tolist())
        return sample

    coordinator.states.collect = collect
    publish, heard = _fleet(graph, world, set(range(K)))
    commands, depot_commands = heard["command"], heard["depot"]
    assert graph.spin_until(lambda: len(commands) >= 3, 10.0, publish)
    assert set(coordinator.tick_seconds) == {0.25}
    assert [msg.epochs_elapsed for msg in commands] == [0] + [1] * (len(commands) - 1)
    ages = list(coordinator.state_ages)
    assert len(ages) >= 3 * K and all(0.0 < age <= 2.0 for age in ages), ages
    assert ages == [ns / 10**9 for ns in sampled_ns[:len(ages)]]  # seconds, as the samples' nanoseconds say
    assert graph.spin_until(lambda: any(m.linear.x or m.angular.z for m in depot_commands), 10.0, publish)
    assert [_call(coordinator.on_stop), _call(coordinator.on_stop)] == [(True, "fleet stopped"),
                                                                      (True, "already stopped")]
    graph.spin_until(lambda: False, 0.3, publish)  # what was on its way before the stop arrives
    decided, depot_commands[:] = len(commands), []
    assert graph.spin_until(lambda: len(depot_commands) >= 5, 10.0, publish)
    assert all(m.linear.x == 0.0 and m.angular.z == 0.0 for m in depot_commands)
    assert heard["stopped"][-1].data and len(commands) == decided
    assert [_call(coordinator.on_resume), _call(coordinator.on_resume)] == [(True, "fleet resumed"),
                                                                          (True, "was not stopped")]
    assert graph.spin_until(lambda: not heard["stopped"][-1].data and len(commands) > decided, 10.0, publish)


def test_the_observer_hears_of_robots_that_leave_and_come_back(graph, world):
    """Robot K - 1 goes quiet for longer than odom_timeout (0.3 s), then reports again: the observer is
    told the usable robots went from K to K - 1, and back."""
    coordinator = _coordinator(graph, world, odom_timeout=0.3)
    changes, resized = [], coordinator.observer.resized
    coordinator.observer.resized = lambda before, after: (changes.append((before, after)), resized(before, after))
    robots = set(range(K))
    publish, heard = _fleet(graph, world, robots)
    assert graph.spin_until(lambda: len(heard["command"]) >= 2, 10.0, publish)
    robots.discard(K - 1)
    assert graph.spin_until(lambda: (K, K - 1) in changes, 10.0, publish), changes
    robots.add(K - 1)
    assert graph.spin_until(lambda: (K - 1, K) in changes, 10.0, publish), changes


def test_every_decision_on_fewer_than_k_robots_counts_once_as_short(graph, world):
    """Robot K - 1 never reports: after its start wait the coordinator decides on K - 1 robots each time."""
    coordinator = _coordinator(graph, world)
    publish, heard = _fleet(graph, world, set(range(K - 1)))
    assert graph.spin_until(lambda: len(heard["command"]) >= 3, 10.0, publish)
    assert all(len(msg.sampled_ids) == K - 1 for msg in heard["command"])
    assert coordinator.short_decisions == coordinator.epoch >= 3


def test_a_filter_decides_on_its_prediction_alone_only_when_no_robot_reports(graph, world):
    """The warning that a decision rests on the filter's prediction alone comes when no robot reported,
    never while robots do."""
    coordinator = _coordinator(graph, world, policy=world["filter"], odom_timeout=0.3)
    log = Log()
    coordinator.get_logger = lambda: log
    robots = set(range(K))
    publish, heard = _fleet(graph, world, robots)
    alone = lambda: [m for _, m in log.lines if "deciding on the filter's prediction alone" in m]  # noqa: E731
    assert graph.spin_until(lambda: len(heard["command"]) >= 2, 10.0, publish)
    assert not alone()
    robots.clear()
    assert graph.spin_until(lambda: any(not msg.sampled_ids for msg in heard["command"]), 10.0, publish)
    assert alone()


def test_epochs_that_cannot_be_decided_are_counted_skipped(graph, world):
    """No robot reports (only the depot): a fresh coordinator has nothing to decide on; past its start wait
    (3 periods of 0.1 s) the skipped decisions keep growing, at least one a period, and no command goes out."""
    coordinator = _coordinator(graph, world)
    publish, heard = _fleet(graph, world, set())
    graph.spin_until(lambda: False, 0.6, publish)
    skipped = coordinator.skipped_decisions
    graph.spin_until(lambda: False, 0.5, publish)
    assert coordinator.skipped_decisions >= skipped + 2 and coordinator.epoch == 0 and not heard["command"]


@pytest.mark.parametrize("timeout, shown", [(3.783775003, "3.78378"), (3.783774997, "3.78377")])
def test_the_odometry_timeout_is_named_to_six_significant_digits(graph, world, timeout, shown):
    """Rounded at the seventh digit, a 5 followed by 003 (up) or a 4 followed by 997 (down)."""
    coordinator = _coordinator(graph, world, odom_timeout=timeout)
    assert coordinator._sampled_what == f"have a fresh, finite map-frame pose (odom_timeout {shown} s)"
    assert coordinator._why_no_depot_pose(coordinator.get_clock().now().nanoseconds) == \
        f"no depot pose younger than odom_timeout {shown} s (pose_source 'odometry')"
