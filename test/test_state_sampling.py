"""state_sampling request in real in-process ROS graphs: the coordinator asks k robots, only they answer.

The robots here are a scripted answerer (a driver someone else wrote, and a faulty
one): it announces a roster, answers the requests it gets with zones it chose, and
on purpose drops 30% of its replies and sends duplicated, late, forged,
wrong-epoch and other-session ones. What is checked against the answerer's own
log: every decision uses exactly the valid replies to its request, every bad
reply is dropped under its reason and counted on /diagnostics, a robot that
missed a reply sits out the next draw, a robot that left is never asked, and a
restarted coordinator learns the fleet and goes on. With the real local agents:
no robot that was not asked ever reports, and the coordinator holds no robot
pose subscription.
"""
import math
import time
from collections import defaultdict

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from altmarl_msgs.msg import FleetMembership, GlobalCommand, StateReport, StateRequest  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402

from altmarl_ros.names import (DEPOT_ODOM_TOPIC, FLEET_MEMBERSHIP_TOPIC, GLOBAL_COMMAND_TOPIC,  # noqa: E402
                               STATE_REPORTS_TOPIC, STATE_REQUEST_TOPIC)
from altmarl_ros.nodes._ros import (GLOBAL_COMMAND_QOS, LATCHED_QOS, ODOM_QOS, STATE_REPORT_QOS,  # noqa: E402
                                    STATE_REQUEST_QOS)
from altmarl_sim.ring import zone_centre  # noqa: E402


N, K, DEPOT_ZONE = 12, 4, 3
SILENT = 11  # announced, never answers


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from _herding_policy import herding_policy

    from altmarl_ros.core.policy import save_policy
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario("warehouse_ring")
    policy = save_policy(herding_policy(scenario, K), tmp_path_factory.mktemp("sampling") / "policy.npz")
    return {"ring": scenario.ring, "policy": str(policy),
            "params": {"scenario": "warehouse_ring", "policy": str(policy), "n_robots": N, "k": K,
                       "decision_period": 0.25, "control_period": 0.05, "request_lead": 0.1}}


class ScriptedRobots:
    """Answers state requests for robots 0..N-1 (zone = id mod 5) from a driver of its own, with faults."""

    def __init__(self, graph, ring, loss=0.3, seed=0):
        self.node = graph.add(rclpy.create_node("scripted_robots", context=graph.context))
        self.rng = np.random.default_rng(seed)
        self.loss, self.present = loss, set(range(N))
        self.requests = []  # (session, epoch, asked ids)
        self.valid = defaultdict(dict)  # (session, epoch) -> {id: zone} of the valid replies sent
        self.sent_bad = defaultdict(int)  # drop reason -> bad replies sent
        self.previous, self.request = None, 0
        self.reports = self.node.create_publisher(StateReport, STATE_REPORTS_TOPIC, STATE_REPORT_QOS)
        self.membership = self.node.create_publisher(FleetMembership, FLEET_MEMBERSHIP_TOPIC, LATCHED_QOS)
        self.node.create_subscription(StateRequest, STATE_REQUEST_TOPIC, self.on_request, STATE_REQUEST_QOS)
        self.depot = self.node.create_publisher(Odometry, DEPOT_ODOM_TOPIC, ODOM_QOS)
        self.depot_msg = Odometry()
        self.depot_msg.header.frame_id = "map"
        x, y = zone_centre(DEPOT_ZONE, ring)
        self.depot_msg.pose.pose.position.x, self.depot_msg.pose.pose.position.y = float(x), float(y)
        self.depot_msg.pose.pose.orientation.w = 1.0
        self.announce()

    def announce(self):
        self.membership.publish(FleetMembership(host="/scripted_robots", robot_ids=sorted(self.present)))

    def report(self, session, epoch, rid, zone=None, frame="map", request=None):
        request = self.request if request is None else request
        msg = StateReport(session=session, epoch=epoch, request=request, robot_id=rid,
                          local_state=rid % 5 if zone is None else zone)
        msg.header.frame_id = frame
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.reports.publish(msg)

    def bad(self, reason, *args, **kwargs):
        self.sent_bad[reason] += 1
        self.report(*args, **kwargs)

    def on_request(self, req: StateRequest):
        asked = list(req.robot_ids)
        self.requests.append((req.session, req.epoch, asked))
        if self.previous is not None:  # an answer to the request before: its decision is made
            self.bad("late", req.session, self.previous[0], asked[0] if asked else 0, request=self.previous[1])
        self.previous, self.request = (req.epoch, req.request), req.request
        unasked = sorted(set(range(N)) - set(asked))
        for rid in asked:
            if rid == SILENT or self.rng.random() < self.loss:
                continue
            self.report(req.session, req.epoch, rid)
            self.valid[(req.session, req.epoch)][rid] = rid % 5
            if self.rng.random() < 0.3:
                self.bad("duplicate", req.session, req.epoch, rid, zone=(rid + 1) % 5)
        if unasked:
            self.bad("not sampled", req.session, req.epoch, unasked[0])
        self.bad("wrong epoch", req.session, req.epoch + 1000, asked[0] if asked else 0)  # this request's number
        self.bad("wrong epoch", req.session, req.epoch, asked[0] if asked else 0, request=req.request + 1000)
        self.bad("other session", req.session ^ 1, req.epoch, asked[0] if asked else 0)
        self.bad("out of range", req.session, req.epoch, asked[0] if asked else 0, zone=99)
        self.bad("foreign frame", req.session, req.epoch, asked[0] if asked else 0, frame="robot_0/odom")


def _commands(graph):
    node = graph.add(rclpy.create_node("command_listener", context=graph.context))
    received = []
    node.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, received.append, GLOBAL_COMMAND_QOS)
    diagnostics = {}

    def on_diagnostics(array):
        for status in array.status:
            if status.name.endswith(": coordinator"):
                diagnostics.update({kv.key: kv.value for kv in status.values})
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    return received, diagnostics


def _spin(graph, robots, done, timeout):
    last = [-math.inf]

    def publish_depot():
        if time.monotonic() - last[0] >= 0.05:
            last[0] = time.monotonic()
            robots.depot.publish(robots.depot_msg)
    assert graph.spin_until(done, timeout=timeout, every=publish_depot)


def test_decisions_use_exactly_the_valid_replies_and_every_bad_one_is_counted(graph, setting):
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    robots = ScriptedRobots(graph, setting["ring"])
    coordinator = graph.add(CoordinatorNode(setting["params"], context=graph.context))
    received, diagnostics = _commands(graph)
    _spin(graph, robots, lambda: len(received) >= 25, timeout=30.0)
    asked = {(s, e): ids for s, e, ids in robots.requests}
    for msg in received:
        valid = robots.valid[(msg.session, msg.epoch)]
        assert sorted(msg.sampled_ids) == sorted(valid), f"epoch {msg.epoch}"
        assert set(msg.sampled_ids) <= set(asked[(msg.session, msg.epoch)])
        assert list(msg.counts) == np.bincount([valid[i] for i in msg.sampled_ids], minlength=5).tolist()
        assert msg.global_state == DEPOT_ZONE
    # The draw: k distinct robots, never one that missed the request before (it sits out at least one).
    for (session, epoch, ids), (_, before, ids_before) in zip(robots.requests[1:], robots.requests):
        assert len(set(ids)) == len(ids) <= K
        missed_before = set(ids_before) - set(robots.valid[(session, before)])
        assert not missed_before & set(ids), f"epoch {epoch} asks {missed_before & set(ids)}, who just missed"
    assert any(len(m.sampled_ids) < K for m in received)  # the 30% loss shows as short samples
    # Every bad reply is dropped under its reason, none is lost or double-counted (up to the one in flight).
    counts = coordinator.dropped.counts
    for reason, sent in robots.sent_bad.items():
        assert sent - 2 <= counts[f"StateReport: {reason}"] <= sent, reason
    # ... and /diagnostics says so.
    _spin(graph, robots, lambda: int(diagnostics.get("dropped StateReport: duplicate", 0)) > 0, timeout=5.0)
    assert diagnostics["state_sampling"] == "request" and int(diagnostics["replies_missed"]) > 0


def test_a_silent_robot_backs_off_and_a_robot_that_left_is_not_asked_until_it_rejoins(graph, setting):
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    robots = ScriptedRobots(graph, setting["ring"], loss=0.0)
    graph.add(CoordinatorNode(setting["params"], context=graph.context))
    received, _ = _commands(graph)
    _spin(graph, robots, lambda: len(received) >= 30, timeout=40.0)
    # SILENT never answers: after its j-th miss it sits out the next 2^(j-1) requests.
    asked_at = [index for index, (_, _, ids) in enumerate(robots.requests) if SILENT in ids]
    assert len(asked_at) >= 2
    for j, (a, b) in enumerate(zip(asked_at, asked_at[1:]), start=1):
        assert b - a >= 1 + 2 ** (j - 1), asked_at
    # Robot 3 leaves cleanly: never asked after the coordinator has the news (one request may be in flight).
    robots.present.discard(3)
    robots.announce()
    left_at = len(robots.requests)
    _spin(graph, robots, lambda: len(robots.requests) >= left_at + 15, timeout=20.0)
    assert all(3 not in ids for _, _, ids in robots.requests[left_at + 1:])
    robots.present.add(3)
    robots.announce()
    back_at = len(robots.requests)
    _spin(graph, robots, lambda: any(3 in ids for _, _, ids in robots.requests[back_at:]), timeout=20.0)


def test_a_restarted_coordinator_learns_the_fleet_and_keeps_deciding(graph, setting):
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    robots = ScriptedRobots(graph, setting["ring"], loss=0.0)
    first = graph.add(CoordinatorNode(setting["params"], context=graph.context))
    received, _ = _commands(graph)
    _spin(graph, robots, lambda: len(received) >= 5, timeout=20.0)
    graph.remove(first)
    second = graph.add(CoordinatorNode(setting["params"], context=graph.context))
    assert second.session != first.session
    _spin(graph, robots, lambda: sum(m.session == second.session for m in received) >= 5, timeout=20.0)
    # It knew the whole roster from the latched membership alone (the answerer announced once, before).
    assert second.states.present(0) == N
    for msg in received:
        assert sorted(msg.sampled_ids) == sorted(robots.valid[(msg.session, msg.epoch)])


def test_a_coordinator_started_before_its_fleet_decides_once_the_fleet_and_the_depot_are_there(graph, setting):
    """Its first tries fail (no robot, then no depot pose): each try asks again, with the robots present then."""
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    coordinator = graph.add(CoordinatorNode(setting["params"], context=graph.context))
    received, _ = _commands(graph)
    graph.spin_until(lambda: False, timeout=1.0)  # > START_WAIT_PERIODS decision periods: it tries without robots
    robots = ScriptedRobots(graph, setting["ring"], loss=0.0)
    assert not graph.spin_until(lambda: received, timeout=1.0)  # robots answer, but there is no depot pose
    assert coordinator.skipped_decisions > 0 and robots.requests
    _spin(graph, robots, lambda: len(received) >= 3, timeout=10.0)
    for msg in received:  # every asked robot but SILENT answers
        assert len(msg.sampled_ids) >= K - 1 and set(msg.sampled_ids) <= set(robots.valid[(msg.session, msg.epoch)])


def test_replies_to_a_failed_decisions_request_are_late_not_forged_and_what_came_in_is_counted(graph, setting):
    """RequestedStates called directly: a decision that failed is asked again for the same epoch; a reply to
    the earlier request is late. Every byte of replies and memberships is counted, an undecodable membership
    is dropped, and each collected request records when its last reply came (NaN: none did)."""
    from rclpy.serialization import serialize_message

    from altmarl_ros.nodes.coordinator import CoordinatorNode

    coordinator = graph.add(CoordinatorNode(setting["params"], context=graph.context))
    states, now = coordinator.states, coordinator.get_clock().now().nanoseconds
    fed = [serialize_message(FleetMembership(host="/answerer", robot_ids=list(range(N)))), b"\x00\x01\x00\x00\xff"]
    for data in fed:
        states.on_membership(data)
    assert states.present(now) == N and coordinator.dropped.counts["FleetMembership: undecodable"] == 1

    def reply(rid, request, epoch=7):
        msg = StateReport(session=coordinator.session, epoch=epoch, request=request, robot_id=rid, local_state=rid % 5)
        msg.header.frame_id = "map"
        fed.append(serialize_message(msg))
        states.on_report(fed[-1])

    states.request(7, now, now + 10**8)
    first = list(states._pending_ids)
    assert len(states.collect(7, now).ids) == 0 and math.isnan(states.replies_in_seconds[-1])
    asked_at = time.perf_counter()
    states.request(7, now, now + 2 * 10**8)  # the same epoch again: its decision failed
    second = list(states._pending_ids)
    assert not set(first) & set(second)  # the robots that missed sit out the retry
    reply(first[0], request=0)
    assert coordinator.dropped.counts["StateReport: late"] == 1
    reply(next(r for r in range(N) if r not in first + second), request=1)
    assert coordinator.dropped.counts["StateReport: not sampled"] == 1
    reply(second[0], request=0)  # the robot was asked again, but this answers the failed request
    assert coordinator.dropped.counts["StateReport: late"] == 2
    reply(second[0], request=1)
    replied_by = time.perf_counter()
    assert states.collect(7, now).ids == [second[0]]
    assert 0 < states.replies_in_seconds[-1] <= replied_by - asked_at
    assert states.bytes_received == sum(len(data) for data in fed)
    assert states.messages_received == len(fed)


def test_a_stop_drops_the_open_request_so_no_state_from_before_it_is_used(graph, setting):
    from rclpy.serialization import serialize_message
    from std_srvs.srv import Trigger

    from altmarl_ros.nodes.coordinator import CoordinatorNode

    coordinator = graph.add(CoordinatorNode(setting["params"], context=graph.context))
    states, now = coordinator.states, coordinator.get_clock().now().nanoseconds
    states.on_membership(serialize_message(FleetMembership(host="/answerer", robot_ids=list(range(N)))))
    states.request(3, now, now + 10**8)
    asked = list(states._pending_ids)
    before = StateReport(session=coordinator.session, epoch=3, request=0, robot_id=asked[0], local_state=1)
    before.header.frame_id = "map"
    states.on_report(serialize_message(before))  # valid, and in before the operator's stop
    coordinator.on_stop(Trigger.Request(), Trigger.Response())
    coordinator.on_resume(Trigger.Request(), Trigger.Response())
    states.request(3, now, now + 10**8)  # the same epoch, asked afresh after the resume
    assert states.collect(3, now).ids == []
    assert states.missed == K  # only the fresh request's robots, which did not answer, are blamed
