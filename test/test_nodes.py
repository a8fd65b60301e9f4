"""The ROS nodes in real in-process graphs (n = 50 robots, k = 5), each test with its own Context.

What is checked against something independent: the simulator's own poses
(FleetSim, zones from core.ring) for the GlobalCommand counts, the policy table
for the action, hand-placed fake robots for NaN/stale/late/unknown odometry, and
the simulated robots' velocities for the safe stop.
"""
import itertools
import math
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from altmarl_msgs.msg import GlobalCommand  # noqa: E402
from geometry_msgs.msg import Twist, Vector3  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402

from altmarl_ros.core.counts import rank  # noqa: E402
from altmarl_sim.ring import zone_centre, zone_of_pose  # noqa: E402
from altmarl_ros.nodes._params import ParameterError  # noqa: E402
from altmarl_ros.names import DEPOT_ODOM_TOPIC, GLOBAL_COMMAND_TOPIC, cmd_vel_topic, odom_topic  # noqa: E402
from altmarl_ros.nodes._ros import CMD_VEL_QOS, GLOBAL_COMMAND_QOS, ODOM_QOS  # noqa: E402
from altmarl_sim.scenario import load_scenario  # noqa: E402


from _ring_world import K, N  # noqa: E402


def _sim_nodes(graph, world, policy, sim_params=None, **overrides):
    from altmarl_ros.nodes.coordinator import CoordinatorNode
    from altmarl_ros.nodes.fleet_sim import FleetSimNode
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    common = {"scenario": world["scenario"], "policy": policy, "n_robots": N, "k": K, "use_sim_time": True}
    common.update(overrides)
    sim = graph.add(FleetSimNode({"scenario": world["scenario"], "n_robots": N, "real_time_factor": 2.0,
                                  **(sim_params or {})}, context=graph.context))
    coordinator = graph.add(CoordinatorNode(common, context=graph.context))
    agents = graph.add(LocalAgentsNode(common, context=graph.context))
    return sim, coordinator, agents


def _listen(graph, node_name="listener"):
    node = graph.add(rclpy.create_node(node_name, context=graph.context))
    received = []
    node.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, received.append, GLOBAL_COMMAND_QOS)
    return node, received


def _record_poses(sim_node):
    """Keep the poses of every published step, keyed by sim time in ms."""
    history = {round(sim_node.sim.time * 1000): np.array(sim_node.sim.poses)}
    sim_node.add_step_listener(lambda sim: history.__setitem__(round(sim.time * 1000), np.array(sim.poses)))
    return history


def assert_counts_match_simulated_poses(received, history, ring, sim):
    """Each GlobalCommand's counts and s_g are the zones of its sampled robots and the depot in the
    simulator (map frame) at decision time t, give or take the one control step by which the decision
    and the newest delivered pose can differ. Returns the decision times in ms."""
    dt_ms, n = round(sim.sim.control_period * 1000), sim.sim.n
    stamps_ms = [msg.header.stamp.sec * 1000 + round(msg.header.stamp.nanosec / 1e6) for msg in received]
    for msg, t_ms in zip(received, stamps_ms):
        ids, matches = list(msg.sampled_ids), []
        for when in (t_ms, t_ms - dt_ms, t_ms + dt_ms):
            if when not in history:  # the step after the last decision may not have run yet
                continue
            poses = history[when]
            zones = zone_of_pose(poses[ids, 0], poses[ids, 1], ring)
            depot_zone = int(zone_of_pose(poses[n, 0], poses[n, 1], ring))
            matches.append(np.bincount(zones, minlength=ring.n_zones).tolist() == list(msg.counts)
                           and depot_zone == msg.global_state)
        assert any(matches), f"epoch {msg.epoch}: counts {list(msg.counts)} do not match the simulated poses"
    return stamps_ms


def test_closed_loop_commands_match_policy_and_simulated_poses(graph, world):
    """(Under the default state_sampling, request: also, no robot that was not asked ever reports its state.)"""
    from altmarl_msgs.msg import StateReport, StateRequest

    from altmarl_ros.names import STATE_REPORTS_TOPIC, STATE_REQUEST_TOPIC
    from altmarl_ros.nodes._ros import STATE_REPORT_QOS, STATE_REQUEST_QOS

    sim, coordinator, agents = _sim_nodes(graph, world, world["random"])
    history = _record_poses(sim)
    _, received = _listen(graph)
    spy = graph.add(rclpy.create_node("state_spy", context=graph.context))
    requests, reports = [], []
    spy.create_subscription(StateRequest, STATE_REQUEST_TOPIC, requests.append, STATE_REQUEST_QOS)
    spy.create_subscription(StateReport, STATE_REPORTS_TOPIC, reports.append, STATE_REPORT_QOS)
    assert graph.spin_until(lambda: len(received) >= 4, timeout=40.0), f"{len(received)} commands"
    asked = {(r.session, r.epoch): set(r.robot_ids) for r in requests}
    for report in reports:  # the privacy property: only asked robots speak, once per request
        assert report.robot_id in asked[(report.session, report.epoch)]
    assert len({(r.epoch, r.robot_id) for r in reports}) == len(reports)
    for msg in received:
        assert set(msg.sampled_ids) == {r.robot_id for r in reports if r.epoch == msg.epoch}
    # ... and the coordinator does not even subscribe to any robot's pose.
    for i in range(N):
        assert all(info.node_name != coordinator.get_name() for info in
                   coordinator.get_subscriptions_info_by_topic(f"/{odom_topic(i)}")), i
    policy = world["random_policy"]
    for epoch, msg in enumerate(received):
        assert msg.epoch == epoch and msg.k == K and msg.policy_id == policy.policy_id
        ids = list(msg.sampled_ids)
        assert len(ids) == K == len(set(ids)) and all(0 <= i < N for i in ids)
        assert sum(msg.counts) == K and msg.count_rank == rank(np.array(msg.counts))
        assert msg.global_action == policy.pi_g[msg.global_state, msg.count_rank]
    stamps_ms = assert_counts_match_simulated_poses(received, history, world["ring"], sim)
    assert agents.commands_received >= 4 and not agents.stopped
    assert np.abs(sim.sim.velocities[:N, 0]).max() > 0.1  # the workers drive
    assert coordinator.invalid_poses == 0 and coordinator.short_decisions == 0
    assert len(coordinator.tick_seconds) == coordinator.epoch
    # One decision per decision_period of sim time, each on the first control tick of its period.
    period_ms, dt_ms = round(coordinator.decision_period * 1000), round(sim.sim.control_period * 1000)
    assert all(abs(gap - period_ms) <= dt_ms for gap in np.diff(stamps_ms)), stamps_ms


def test_a_decisions_goals_steer_from_the_first_control_step_of_its_epoch(graph, world):
    """Offline (FleetSim.step_epoch) a decision's goals act from the epoch's first control step. So in the
    graph the first simulator step after each GlobalCommand must apply, to every worker and the depot, the
    ring controller towards the NEW goal zones from the poses the decision saw, not one more step towards
    the old ones (each local agents' control tick and the coordinator's decision fire at one /clock tick)."""
    from altmarl_sim.ring import steer_to_zone

    sim, coordinator, agents = _sim_nodes(graph, world, world["random"])
    scenario = sim.scenario
    steps = []  # per simulator step: (poses it started from, commands it applied, worker goals, depot goal, epoch)
    start = [np.array(sim.sim.poses)]

    def record(fleet):
        steps.append((start[0], sim.commands.copy(), agents.goal_zones.copy(), coordinator.goal_zone,
                      coordinator.epoch))
        start[0] = np.array(fleet.poses)

    sim.add_step_listener(record)
    assert graph.spin_until(lambda: coordinator.epoch >= 6, timeout=40.0), f"{coordinator.epoch} decisions"
    first_steps = [(steps[i - 1], steps[i]) for i in range(1, len(steps)) if steps[i][4] != steps[i - 1][4]]
    assert len(first_steps) >= 5
    on_time, goals_changed = [], 0
    for (_, _, old_goals, old_depot_goal, _), (poses, applied, goals, depot_goal, epoch) in first_steps:
        if epoch == 1 and not (goals >= 0).all():
            continue  # the first decision ends the fleet's hold: its first step may run before the agents hear it
        assert (goals >= 0).all(), f"epoch {epoch}: a worker without a goal"
        targets = np.append(goals, depot_goal)
        v, w = steer_to_zone(poses[:, 0], poses[:, 1], poses[:, 2], targets, scenario.ring, scenario.limits,
                             scenario.controller)
        on_time.append(np.allclose(applied, np.column_stack((v, w)), rtol=0, atol=1e-9))
        if epoch > 1:  # the commands towards the old goals differ: the check above could fail
            old = np.append(old_goals, old_depot_goal)
            v_old, w_old = steer_to_zone(poses[:, 0], poses[:, 1], poses[:, 2], old, scenario.ring,
                                         scenario.limits, scenario.controller)
            goals_changed += int(np.count_nonzero(np.hypot(v - v_old, w - w_old) > 1e-3))
    # The graph runs in real time (25 ms a step here): on a loaded machine a decision's cmd_vel can miss
    # its first step now and then. The old node, whose timer ran first, missed every one.
    assert sum(on_time) >= len(on_time) // 2, f"the first steps steered to their goals in {on_time}"
    assert goals_changed > 0


def test_stopping_the_coordinator_stops_the_robots_within_the_timeout(graph, world):
    timeout = 1.0
    sim, coordinator, agents = _sim_nodes(graph, world, world["next"], command_timeout=timeout)
    speed = lambda: float(np.abs(sim.sim.velocities[:, 0]).max())  # noqa: E731
    commands = []  # (sim time, v, w) of every cmd_vel robots 0..4 receive
    spy = graph.add(rclpy.create_node("cmd_vel_spy", context=graph.context))
    for rid in range(5):
        spy.create_subscription(Twist, cmd_vel_topic(rid), lambda m: commands.append(
            (sim.sim.time, m.linear.x, m.angular.z)), CMD_VEL_QOS)
    assert graph.spin_until(lambda: agents.commands_received >= 2 and speed() > 0.3, timeout=30.0)
    queued = [timer.callback for timer in coordinator.timers]
    graph.remove(coordinator)
    for callback in queued:  # an event the executor queued before the removal, delivered after it
        callback()
    stopped_at = sim.sim.time
    limits = sim.scenario.limits
    braking = max(limits.max_speed / limits.max_accel, limits.max_turn_rate / limits.max_angular_accel)
    # Zero commands start at most `timeout` after the last command; then the robots brake.
    deadline = stopped_at + timeout + braking + 0.2
    assert graph.spin_until(lambda: sim.sim.time >= deadline, timeout=30.0)
    assert agents.stopped
    assert np.abs(sim.sim.velocities).max() < 1e-9, "robots still moving after the command timeout"
    last_command = agents.command_received_ns / 1e9
    late = [(v, w) for t, v, w in commands if t > last_command + timeout + 2 * sim.sim.control_period]
    assert late and all(v == 0.0 and w == 0.0 for v, w in late), "cmd_vel not zero after the timeout"
    assert any(v != 0.0 for t, v, _ in commands if t <= last_command)
    # A coordinator coming back makes them move again.
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    graph.add(CoordinatorNode({"scenario": world["scenario"], "policy": world["next"], "n_robots": N,
                               "use_sim_time": True}, context=graph.context))
    assert graph.spin_until(lambda: not agents.stopped and speed() > 0.3, timeout=30.0)


def test_local_agents_log_the_age_of_the_command_they_stop_on(graph, world):
    """The stop warning names why and how old the last command is (the partition test reads that age)."""
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    agents = graph.add(LocalAgentsNode({"scenario": world["scenario"], "policy": world["next"], "robots": [0],
                                        "use_sim_time": True, "command_timeout": 3.0}, context=graph.context))
    assert agents._staleness(None) == "no GlobalCommand yet"
    assert agents._staleness(3_050_000_000) == "the last GlobalCommand is 3.05 s old (command_timeout 3 s)"
    assert agents._staleness(-2_000_000_000).startswith("the last GlobalCommand is 2.00 s in the future")


def test_local_agents_treat_a_clock_that_jumps_back_as_a_lost_coordinator(graph, world):
    """A GlobalCommand received "in the future" (sim time jumped back: the simulator restarted) is stale:
    the robots stop, although their odometry is fresh again, until a new command arrives."""
    from rosgraph_msgs.msg import Clock

    from altmarl_ros.core.policy import load_policy
    from altmarl_ros.names import CLOCK_TOPIC, MAP_FRAME
    from altmarl_ros.nodes._ros import CLOCK_QOS
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    agents = graph.add(LocalAgentsNode({"scenario": world["scenario"], "policy": world["next"], "robots": [0],
                                        "use_sim_time": True, "command_timeout": 30.0}, context=graph.context))
    driver = graph.add(rclpy.create_node("clock_driver", context=graph.context))
    clock_pub = driver.create_publisher(Clock, CLOCK_TOPIC, CLOCK_QOS)
    odom_pub = driver.create_publisher(Odometry, odom_topic(0), ODOM_QOS)
    command_pub = driver.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, GLOBAL_COMMAND_QOS)
    speeds = []  # |v| + |w| of every cmd_vel robot 0 receives
    driver.create_subscription(Twist, cmd_vel_topic(0), lambda m: speeds.append(abs(m.linear.x) + abs(m.angular.z)),
                               CMD_VEL_QOS)
    odometry = Odometry()
    odometry.header.frame_id = MAP_FRAME
    odometry.pose.pose.position.x, odometry.pose.pose.position.y = (float(v) for v in zone_centre(0, world["ring"]))
    odometry.pose.pose.orientation.w = 1.0
    sim_now = [100.0]
    due = _every(0.02)

    def tick():  # sim time runs at about real time; robot 0's odometry, stamped now, arrives every tick
        if due():
            sim_now[0] += 0.02
            now = rclpy.time.Time(seconds=sim_now[0]).to_msg()
            clock_pub.publish(Clock(clock=now))
            odometry.header.stamp = now
            odom_pub.publish(odometry)

    epochs = itertools.count()

    def command():  # a well-formed command, stamped now, a new epoch: all K sampled robots in zone 0
        counts = [K, 0, 0, 0, 0]
        msg = GlobalCommand(epoch=next(epochs), global_state=2, global_action=2, k=K, sampled_ids=list(range(K)),
                            counts=counts, observer="fresh", estimate=[c / K for c in counts], query_counts=counts,
                            count_rank=rank(np.array(counts)), policy_id=load_policy(world["next"]).policy_id)
        msg.header.frame_id = MAP_FRAME
        msg.header.stamp = rclpy.time.Time(seconds=sim_now[0]).to_msg()
        command_pub.publish(msg)

    def moving():
        return not agents.stopped and bool(speeds) and speeds[-1] > 0

    assert graph.spin_until(lambda: agents.get_clock().now().nanoseconds > 100e9, timeout=10.0, every=tick)
    again = _every(0.5)  # like a coordinator, repeat the command (the first may precede the first odometry)
    assert graph.spin_until(moving, timeout=10.0, every=lambda: tick() or (again() and command()))
    sim_now[0] = 50.0  # the clock jumps back 50 s (more than command_timeout); odometry keeps coming
    assert graph.spin_until(lambda: agents.stopped, timeout=5.0, every=tick), "moving on a command from the future"
    stopped_at = len(speeds)
    assert graph.spin_until(lambda: len(speeds) > stopped_at + 3, timeout=5.0, every=tick)
    assert all(v == 0.0 for v in speeds[stopped_at:])
    assert graph.spin_until(moving, timeout=10.0, every=lambda: tick() or (again() and command()))  # restarted


class FakeFleet:
    """A node publishing hand-placed odometry for chosen robot ids (robot i sits at the centre of zone i % Z)."""

    def __init__(self, graph, ring, ids):
        self.node = graph.add(rclpy.create_node("fake_fleet", context=graph.context))
        self.ring = ring
        self.pubs = {}
        self.messages = {}
        for rid in ids:
            self.pubs[rid] = self.node.create_publisher(Odometry, odom_topic(rid), ODOM_QOS)
            self.messages[rid] = self._at_zone(rid % ring.n_zones)
        self.depot_pub = self.node.create_publisher(Odometry, DEPOT_ODOM_TOPIC, ODOM_QOS)
        self.depot = self._at_zone(3)
        self.active = set(ids)

    def _at_zone(self, zone):
        msg = Odometry()
        msg.header.frame_id = "map"
        x, y = zone_centre(zone, self.ring)
        msg.pose.pose.position.x, msg.pose.pose.position.y = float(x), float(y)
        msg.pose.pose.orientation.w = 1.0
        return msg

    def zone(self, rid):
        return rid % self.ring.n_zones

    def publish(self):
        for rid in self.active:
            self.pubs[rid].publish(self.messages[rid])
        self.depot_pub.publish(self.depot)


def _every(period):
    """Call-rate limiter for the fake fleet (20 Hz odometry)."""
    last = [-math.inf]

    def due():
        now = time.monotonic()
        if now - last[0] >= period:
            last[0] = now
            return True
        return False
    return due


def _coordinator(graph, world, **params):
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    base = {"scenario": world["scenario"], "policy": world["random"], "k": K, "decision_period": 0.1,
            "odom_timeout": 0.5, "state_sampling": "subscribe_all"}  # a fake fleet of odometry, no agents
    base.update(params)
    return graph.add(CoordinatorNode(base, context=graph.context))


def test_nan_odometry_foreign_frames_and_unknown_robots_are_ignored_and_counted(graph, world):
    from altmarl_ros.nodes.markers import MarkersNode

    fleet = FakeFleet(graph, world["ring"], list(range(10)) + [99])
    bad = {2: ("position", "x", math.nan), 7: ("orientation", "w", math.inf), 8: ("position", "y", -math.inf)}
    for rid, (part, axis, value) in bad.items():
        setattr(getattr(fleet.messages[rid].pose.pose, part), axis, value)
    # Robot 9: 1000 m off the ring in a frame that is not the map (its own odom): never a zone.
    fleet.messages[9].header.frame_id = "robot_9/odom"
    fleet.messages[9].pose.pose.position.x = 1000.0
    coordinator = _coordinator(graph, world, robots=10)
    markers = graph.add(MarkersNode({"scenario": world["scenario"], "robots": 10}, context=graph.context))
    _, received = _listen(graph)
    due = _every(0.05)
    assert graph.spin_until(lambda: len(received) >= 10 and coordinator.unknown_robots,
                            timeout=20.0, every=lambda: due() and fleet.publish())
    for msg in received:
        ids = list(msg.sampled_ids)
        assert len(ids) == K and not set(ids) & {2, 7, 8, 9, 99}
        assert list(msg.counts) == np.bincount([fleet.zone(i) for i in ids], minlength=5).tolist()
        assert msg.global_state == 3
    assert coordinator.invalid_poses > 0 and coordinator.foreign_frames > 0
    assert coordinator.unknown_robots == {"robot_99"}
    # The markers show the 6 robots with finite map-frame poses, coloured by zone, and the sampled ones.
    array = markers.build()
    by_ns = {m.ns: m for m in array.markers}
    assert {"zones", "robots", "sampled", "depot", "status"} <= set(by_ns)
    assert len(by_ns["robots"].points) == 6 and len(by_ns["sampled"].points) == K
    assert f"epoch {markers.last_command.epoch}" in by_ns["status"].text
    zones = zone_of_pose([p.x for p in by_ns["robots"].points], [p.y for p in by_ns["robots"].points], world["ring"])
    colours = [(c.r, c.g, c.b) for c in by_ns["robots"].colors]
    pairs = set(zip(zones.tolist(), colours))
    assert len(pairs) == len(set(zones.tolist())) == len(set(colours)) > 1  # one colour per zone, all distinct


def test_stale_robots_are_not_sampled_and_late_robots_are_picked_up(graph, world):
    fleet = FakeFleet(graph, world["ring"], range(10))
    fleet.active = set(range(6))  # robots 6..9 have not started yet
    coordinator = _coordinator(graph, world, robots=10)
    _, received = _listen(graph)
    due = _every(0.05)
    publish = lambda: due() and fleet.publish()  # noqa: E731
    assert graph.spin_until(lambda: len(received) >= 10, timeout=20.0, every=publish)
    assert all(set(m.sampled_ids) <= set(range(6)) for m in received)
    # Late joiners: each of 6..9 is sampled with probability 1/2 per decision once fresh.
    fleet.active = set(range(10))
    start = len(received)
    seen = lambda: set().union(*[set(m.sampled_ids) for m in received[start:]])  # noqa: E731
    assert graph.spin_until(lambda: {6, 7, 8, 9} <= seen(), timeout=20.0, every=publish)
    # Robots 0..5 fall silent: after odom_timeout only 6..9 are eligible, fewer than k.
    fleet.active = {6, 7, 8, 9}
    silent_at = time.monotonic()
    assert graph.spin_until(lambda: time.monotonic() - silent_at > 1.0, timeout=5.0, every=publish)
    start = len(received)
    assert graph.spin_until(lambda: len(received) >= start + 5, timeout=20.0, every=publish)
    for msg in received[start:]:
        assert sorted(msg.sampled_ids) == [6, 7, 8, 9] and sum(msg.counts) == 4
        # The policy sees those 4 scaled to k = 5 (largest remainders).
        from altmarl_ros.core.observer import scale_counts

        assert msg.count_rank == rank(scale_counts(np.array(msg.counts), K))
    assert coordinator.short_decisions >= 5


def test_bad_parameters_stop_the_node_with_a_named_error(ros_context, world):
    from altmarl_ros.nodes.coordinator import CoordinatorNode
    from altmarl_ros.nodes.fleet_sim import FleetSimNode
    from altmarl_ros.nodes.local_agents import LocalAgentsNode
    from altmarl_ros.nodes.markers import MarkersNode

    ok = {"scenario": world["scenario"], "policy": world["random"]}
    cases = [
        (CoordinatorNode, {**ok, "robots": 3}, "'k' = 5 exceeds the fleet"),
        (CoordinatorNode, {**ok, "k": 4}, "trained for k = 5"),
        (CoordinatorNode, {**ok, "scenario": "warehouse_ring"}, "scenario hash"),
        (CoordinatorNode, {**ok, "policy": "/nonexistent/policy.npz"}, "no such policy file"),
        (CoordinatorNode, {"scenario": world["scenario"]}, "'policy' is required"),
        (CoordinatorNode, {**ok, "odom_timeout": 0}, "'odom_timeout' = 0.0: must be > 0"),
        (CoordinatorNode, {**ok, "robots": [1, 1, 2, 3, 4, 5]}, "more than once"),
        (CoordinatorNode, {**ok, "decision_period": 0.5, "control_period": 1.0}, "exceeds 'decision_period'"),
        (CoordinatorNode, {**ok, "state_sampling": "poll"}, "'state_sampling' = 'poll': choose one of request"),
        (CoordinatorNode, {**ok, "request_lead": 0.01}, "'request_lead' = 0.01 s: must be at least control_period"),
        (CoordinatorNode, {**ok, "request_lead": 5.0}, "at most decision_period"),
        (LocalAgentsNode, {**ok, "command_timeout": -1.0}, "'command_timeout'"),
        (LocalAgentsNode, {**ok, "scenario": "no_such_world"}, "'scenario' = 'no_such_world'"),
        (FleetSimNode, {"scenario": world["scenario"], "n_robots": 0}, "'n_robots' = 0"),
        (FleetSimNode, {"scenario": world["scenario"], "real_time_factor": -2.0}, "'real_time_factor'"),
        (FleetSimNode, {"scenario": world["scenario"], "control_period": "fast"}, "'control_period'"),
        (MarkersNode, {"scenario": world["scenario"], "marker_period": 0.0}, "'marker_period'"),
    ]
    for cls, params, words in cases:
        with pytest.raises(ParameterError) as info:
            cls(params, context=ros_context)
        assert words in str(info.value), (cls.__name__, params)


def test_main_logs_the_error_and_exits_nonzero(world):
    code = "from altmarl_ros.nodes.coordinator import main; main()"
    result = subprocess.run([sys.executable, "-c", code, "--ros-args", "-p", f"scenario:={world['scenario']}",
                             "-p", f"policy:={world['random']}", "-p", "k:=60"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "parameter 'k' = 60" in result.stderr and "Traceback" not in result.stderr


def test_main_exits_cleanly_on_sigint(world):
    """rclpy 7.1.6's EventsExecutor.spin() ignores SIGINT; run_node must not rely on it."""
    import signal
    import threading

    code = "from altmarl_ros.nodes.coordinator import main; main()"
    child = subprocess.Popen([sys.executable, "-c", code, "--ros-args", "-p", f"scenario:={world['scenario']}",
                              "-p", f"policy:={world['random']}"], stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60.0, child.kill)  # a hung child ends the read loop below
    watchdog.start()
    try:
        for line in child.stderr:  # wait until it is up and spinning
            if "sampling 5 of 50 robots" in line:
                break
        else:
            pytest.fail(f"coordinator exited with {child.wait()} before starting")
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()


def test_two_simulators_on_one_domain_are_reported(graph, world):
    from altmarl_ros.nodes.fleet_sim import FleetSimNode

    sims = [graph.add(FleetSimNode({"scenario": world["scenario"], "n_robots": 3}, node_name=f"sim_{name}",
                                   context=graph.context)) for name in "ab"]
    assert graph.spin_until(lambda: all(s.clock_clash for s in sims), timeout=20.0)


def test_fleet_sim_odometry_frames_and_command_timeout(graph, world):
    """Odometry carries the sim pose with REP-105 frames and sim-time stamps; a cmd_vel that stops
    arriving is replaced by zero after cmd_vel_timeout; NaN commands are dropped."""
    from altmarl_ros.nodes.fleet_sim import FleetSimNode

    sim = graph.add(FleetSimNode({"scenario": world["scenario"], "n_robots": 3, "real_time_factor": 2.0,
                                  "hold_until_decision": False,
                                  "cmd_vel_timeout": 0.5}, context=graph.context))
    history = _record_poses(sim)
    probe = graph.add(rclpy.create_node("probe", context=graph.context))
    odometry = []
    probe.create_subscription(Odometry, odom_topic(1), odometry.append, ODOM_QOS)
    drive = probe.create_publisher(Twist, cmd_vel_topic(1), CMD_VEL_QOS)
    forward = Twist()
    forward.linear.x = 0.4
    due = _every(0.05)
    assert graph.spin_until(lambda: abs(sim.sim.velocities[1, 0] - 0.4) < 1e-9, timeout=20.0,
                            every=lambda: due() and drive.publish(forward))
    msg = odometry[-1]
    assert (msg.header.frame_id, msg.child_frame_id) == ("map", "robot_1/base_link")
    pose = history[msg.header.stamp.sec * 1000 + round(msg.header.stamp.nanosec / 1e6)][1]
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    assert (p.x, p.y) == (pose[0], pose[1])
    assert math.atan2(2 * q.w * q.z, 1 - 2 * q.z ** 2) == pytest.approx(pose[2], abs=1e-12)
    assert np.abs(sim.sim.velocities[[0, 2, 3]]).max() == 0.0  # nobody else was commanded
    bad = Twist()
    bad.linear.x = math.nan
    drive.publish(bad)
    assert graph.spin_until(lambda: sim.rejected_commands == 1, timeout=10.0)
    # Silence: after cmd_vel_timeout (+ braking at max_accel) the robot stands still.
    silent_at = sim.sim.time
    braking = 0.4 / sim.scenario.limits.max_accel
    assert graph.spin_until(lambda: sim.sim.time > silent_at + 0.5 + braking + 0.2, timeout=20.0)
    assert sim.sim.velocities[1, 0] == 0.0


def test_coordinator_publishes_the_estimate_it_decided_on(graph, world):
    from altmarl_ros.nodes.markers import MarkersNode

    fleet = FakeFleet(graph, world["ring"], range(10))
    coordinator = _coordinator(graph, world, robots=10, policy=world["filter"])
    markers = graph.add(MarkersNode({"scenario": world["scenario"], "robots": 10}, context=graph.context))
    _, received = _listen(graph)
    due = _every(0.05)
    publish = lambda: due() and fleet.publish()  # noqa: E731
    assert graph.spin_until(lambda: len(received) >= 6, timeout=20.0, every=publish)
    fleet.active = set(range(4))  # 6 robots leave: short samples of 4 and a resized fleet
    left_at = time.monotonic()
    assert graph.spin_until(lambda: time.monotonic() - left_at > 1.0, timeout=5.0, every=publish)
    start = len(received)
    assert graph.spin_until(lambda: len(received) >= start + 4, timeout=20.0, every=publish)
    policy = world["filter_policy"]
    P, gain = policy.observer_P, policy.observer.gain
    # the filter's recursion, written out here: predict under the last broadcast s_g, blend by m / (w + m)
    mu, w = None, 0.0
    for epoch, msg in enumerate(received):
        assert msg.epoch == epoch and msg.observer == "filter"
        counts = np.array(msg.counts, dtype=float)
        m = counts.sum()
        if mu is None:
            mu = counts / m
        else:
            predicted = np.array(received[epoch - 1].estimate) @ P[received[epoch - 1].global_state]
            if epoch < 6:  # all 10 robots usable: the weight is known
                g = m / (w + m)
                mu = (1 - g) * predicted + g * counts / m
            else:  # the fleet shrank at some decision: the blend weight is some g in (0, 1)
                step = counts / m - predicted
                g = float(step @ (np.array(msg.estimate) - predicted) / (step @ step))
                assert 0 < g < 1
                mu = (1 - g) * predicted + g * counts / m
        w = (1 - gain) * (w + m)
        np.testing.assert_allclose(msg.estimate, mu, atol=1e-9, err_msg=f"epoch {epoch}")
        query = np.array(msg.query_counts)
        assert query.sum() == 20 and np.abs(query - mu * 20).max() < 1
        assert msg.count_rank == rank(query) and msg.global_action == policy.pi_g[msg.global_state, msg.count_rank]
    assert coordinator.short_decisions >= 4
    by_ns = {m.ns: m for m in markers.build().markers}
    assert "estimate" in by_ns and "filter" in by_ns["status"].text
    lengths = [math.dist((a.x, a.y), (b.x, b.y)) for a, b in zip(by_ns["estimate"].points[::2],
                                                                 by_ns["estimate"].points[1::2])]
    np.testing.assert_allclose(np.array(lengths) / max(lengths), np.array(markers.last_command.estimate)
                               / max(markers.last_command.estimate), atol=1e-6)


def test_fleet_sim_waits_for_a_slow_controller_so_every_step_uses_the_command_for_its_state(graph, world):
    """Lockstep: a controller answers the newest odometry 120 ms later (over two control periods of 50 ms).
    fleet_sim waits for the answer (max_command_wait 4 periods), so the steps apply the command computed
    from the state just published, and none is counted late; without waiting, most are late."""
    from altmarl_ros.nodes.fleet_sim import FleetSimNode

    def run(max_wait):
        sim = graph.add(FleetSimNode({"scenario": world["scenario"], "n_robots": 1, "cmd_vel_timeout": 60.0,
                                      "hold_until_decision": False,
                                      "max_command_wait": max_wait}, context=graph.context))
        controller = graph.add(rclpy.create_node(f"slow_controller_{int(max_wait)}", context=graph.context))
        pub = controller.create_publisher(Twist, cmd_vel_topic(0), CMD_VEL_QOS)
        pending = []  # (wall time due, the step it answers)

        def on_odometry(msg):  # busy 120 ms per answer, which is for the newest state it has seen
            step = round((msg.header.stamp.sec + msg.header.stamp.nanosec / 1e9) / 0.05)
            due = pending[0][0] if pending else time.monotonic() + 0.12
            pending[:] = [(due, step)]  # the answer names its state: v = 0.001 * step
        controller.create_subscription(Odometry, odom_topic(0), on_odometry, ODOM_QOS)
        applied = []  # per step: (the step whose state it started from, the command's v)
        sim.add_step_listener(lambda fleet: applied.append((sim.steps - 1, float(sim.commands[0, 0]))))

        def answer_due():
            while pending and pending[0][0] <= time.monotonic():
                pub.publish(Twist(linear=Vector3(x=0.001 * pending.pop(0)[1])))
        graph.spin_until(lambda: sim.steps >= 25, timeout=30.0, every=answer_due)
        graph.remove(controller)
        graph.remove(sim)
        answered = [(step, v) for step, v in applied[2:] if v > 0]
        return answered, sim.late_commands

    def on_time(answered):
        return sum(v == pytest.approx(0.001 * step) for step, v in answered) / len(answered)

    answered, late = run(4.0)
    assert len(answered) >= 20 and late == 0
    assert on_time(answered) >= 0.9, answered[:8]
    answered, late = run(0.0)
    assert late > 0 and on_time(answered) < 0.5, answered[:8]


def test_fleet_sim_steps_from_a_decision_state_only_with_that_decisions_commands(graph, world):
    """Ordering at decision times: a coordinator decides on the state at every epoch boundary but its
    GlobalCommand arrives 30 ms (wall) later, while a controller answers every state at once with the goals
    of the decisions it has seen, and again 20 ms after each decision (as local_agents does, more slowly).
    fleet_sim waits for
    the decision due at a boundary state and for the answers after it, so every epoch's first step already
    applies that epoch's decision, as offline; without waiting, most first steps apply the previous one."""
    from altmarl_ros.nodes.fleet_sim import FleetSimNode

    scenario = load_scenario(world["scenario"])
    steps_per_epoch, dt = scenario.timing.steps_per_epoch, scenario.timing.control_period

    def run(max_wait):
        sim = graph.add(FleetSimNode({"scenario": world["scenario"], "n_robots": 1, "cmd_vel_timeout": 60.0,
                                      "hold_until_decision": False, "real_time_factor": 2.0,
                                      "max_command_wait": max_wait}, context=graph.context))
        peers = graph.add(rclpy.create_node(f"decider_and_controller_{int(max_wait)}", context=graph.context))
        cmd_pub = peers.create_publisher(Twist, cmd_vel_topic(0), CMD_VEL_QOS)
        decision_pub = peers.create_publisher(GlobalCommand, GLOBAL_COMMAND_TOPIC, GLOBAL_COMMAND_QOS)
        seen = [0]  # decisions the controller has received
        pending = []  # (wall time due, the GlobalCommand to publish, or None: the controller's answer)
        running = [True]  # the executor may still deliver queued messages once the run's nodes are removed

        def answer():
            if running[0]:
                cmd_pub.publish(Twist(linear=Vector3(x=0.001 * seen[0])))

        def on_odometry(msg):
            step = round((msg.header.stamp.sec + msg.header.stamp.nanosec / 1e9) / dt)
            if step % steps_per_epoch == 0:
                command = GlobalCommand(epoch=step // steps_per_epoch)
                command.header.stamp = msg.header.stamp
                pending.append((time.monotonic() + 0.03, command))
            answer()

        def on_decision(msg):
            seen[0] = msg.epoch + 1
            pending.append((time.monotonic() + 0.02, None))
        peers.create_subscription(Odometry, odom_topic(0), on_odometry, ODOM_QOS)
        peers.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, on_decision, GLOBAL_COMMAND_QOS)
        applied = []  # per step: (the step whose state it started from, the command's v)
        sim.add_step_listener(lambda fleet: applied.append((sim.steps - 1, float(sim.commands[0, 0]))))

        def publish_due():
            pending.sort(key=lambda item: item[0])
            while pending and pending[0][0] <= time.monotonic():
                command = pending.pop(0)[1]
                if command is None:
                    answer()
                else:
                    decision_pub.publish(command)
        graph.spin_until(lambda: sim.steps >= 6 * steps_per_epoch + 1, timeout=30.0, every=publish_due)
        running[0] = False
        graph.remove(peers)
        graph.remove(sim)
        # from the third boundary: the first decisions may go out before discovery has matched every topic
        firsts = [(step, v) for step, v in applied if step % steps_per_epoch == 0 and step >= 2 * steps_per_epoch]
        return [v == pytest.approx(0.001 * (step // steps_per_epoch + 1)) for step, v in firsts], sim.late_decisions

    ordered, late = run(4.0)
    assert len(ordered) >= 4 and all(ordered) and late == 0, ordered
    ordered, late = run(0.0)
    assert sum(ordered) < len(ordered) / 2 and late > 0, ordered
