"""The conventions real robots use, in real in-process ROS graphs (n = 50, k = 5).

Frames and pose sources (checked against the simulator's own map-frame poses),
command types (TwistStamped robots move; goal-pose robots get the zone centre
their local action picked), the operator's stop/resume (counted in simulator
steps), zero commands when a node process is stopped, read-only parameters,
/diagnostics, and named robots.
"""
import signal
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from altmarl_ros.names import DIAGNOSTICS_TOPIC, RESUME_SERVICE, STOP_SERVICE, goal_topic, pose_topic  # noqa: E402
from altmarl_ros.nodes._ros import GOAL_QOS  # noqa: E402
from altmarl_sim.ring import zone_centre  # noqa: E402
from test_nodes import K, N, _listen, _record_poses, _sim_nodes, assert_counts_match_simulated_poses  # noqa: E402


def _localizer(graph, sim):
    """A node publishing every robot's (and the depot's) map pose as PoseWithCovarianceStamped, like AMCL."""
    node = graph.add(rclpy.create_node("localizer", context=graph.context))
    names = [f"robot_{i}" for i in range(sim.sim.n)] + ["depot"]
    pubs = [node.create_publisher(PoseWithCovarianceStamped, pose_topic(name), 10) for name in names]

    def publish(fleet):
        stamp = node.get_clock().now().to_msg()
        for pub, (x, y, yaw) in zip(pubs, fleet.poses.tolist()):
            msg = PoseWithCovarianceStamped()
            msg.header.stamp, msg.header.frame_id = stamp, "map"
            msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
            msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = np.sin(yaw / 2), np.cos(yaw / 2)
            pub.publish(msg)
    sim.add_step_listener(publish)


@pytest.mark.parametrize("odom_frames, pose_source", [("map", "odometry"), ("per_robot", "tf"),
                                                      ("per_robot", "pose_topic")])
def test_zones_come_from_map_frame_poses_whatever_the_source(graph, world, odom_frames, pose_source):
    sim, coordinator, agents = _sim_nodes(graph, world, world["random"], sim_params={"odom_frames": odom_frames},
                                          pose_source=pose_source)
    if pose_source == "pose_topic":
        _localizer(graph, sim)
    if odom_frames == "per_robot":  # the offsets are real: odometry poses differ from map poses
        assert np.abs(sim.odometry_poses()[:, :2] - sim.sim.poses[:, :2]).max() > 1.0
    history = _record_poses(sim)
    _, received = _listen(graph)
    # Until the first transforms (and /tf_static, latched) arrive, a TF chain may not reach the map
    # yet: such poses are rightly skipped. From the first command on, every pose must be usable.
    assert graph.spin_until(lambda: len(received) >= 1, timeout=40.0), "no command"
    settled = (coordinator.foreign_frames, coordinator.short_decisions)
    assert graph.spin_until(lambda: len(received) >= 5, timeout=40.0), f"{len(received)} commands"
    assert_counts_match_simulated_poses(received, history, world["ring"], sim)
    assert (coordinator.foreign_frames, coordinator.short_decisions) == settled
    assert graph.spin_until(lambda: np.abs(sim.sim.velocities[:N, 0]).max() > 0.1, timeout=20.0)


def test_odometry_in_robot_frames_is_not_taken_for_map_poses(graph, world):
    sim, coordinator, _ = _sim_nodes(graph, world, world["random"], sim_params={"odom_frames": "per_robot"})
    _, received = _listen(graph)
    assert graph.spin_until(lambda: coordinator.skipped_decisions >= 3, timeout=30.0)
    # Not even the depot's pose is taken (robot_<i>/odom and depot/odom are in their own odom frames).
    assert received == [] and coordinator.foreign_frames > 0


def test_twist_stamped_robots_with_names_move(graph, world):
    names = [f"amr_{chr(97 + i % 26)}{i}" for i in range(N)]
    sim, coordinator, agents = _sim_nodes(graph, world, world["random"],
                                          sim_params={"command_type": "twist_stamped", "robot_names": names},
                                          command_type="twist_stamped", robot_names=names)
    _, received = _listen(graph)
    assert graph.spin_until(lambda: len(received) >= 2 and np.abs(sim.sim.velocities[:N, 0]).max() > 0.1,
                            timeout=40.0)
    assert sim.rejected_commands == 0
    assert {topic for topic, _ in coordinator.get_topic_names_and_types()} >= {f"/{n}/odom" for n in names}


def test_goal_pose_robots_receive_their_goal_zone_centre(graph, world):
    sim, coordinator, agents = _sim_nodes(graph, world, world["random"], command_type="goal_pose")
    spy = graph.add(rclpy.create_node("goal_spy", context=graph.context))
    goals = {}
    for robot in list(range(N)) + ["depot"]:
        spy.create_subscription(PoseStamped, goal_topic(robot), lambda m, r=robot: goals.__setitem__(r, m), GOAL_QOS)
    assert graph.spin_until(lambda: agents.commands_received >= 2 and len(goals) == N + 1, timeout=40.0)

    def goals_are_zone_centres():  # each robot's latest goal: its goal zone's centre; the depot's: a_g's
        xs, ys = zone_centre(np.append(agents.goal_zones, coordinator.goal_zone), world["ring"])
        return all(goals[robot].header.frame_id == "map" and
                   (goals[robot].pose.position.x, goals[robot].pose.position.y) == pytest.approx((xs[slot], ys[slot]))
                   for slot, robot in enumerate(list(range(N)) + ["depot"]))
    # (the goals of a decision made just now may still be on their way: wait for them)
    assert graph.spin_until(goals_are_zone_centres, timeout=5.0)
    assert np.abs(sim.sim.velocities[:N]).max() == 0.0  # nobody sent a velocity


def test_goal_pose_goals_go_out_once_per_change_facing_the_way_to_the_goal(graph, world):
    """A navigator re-plans on every goal: with pi_l = stay and pi_g = 0 and robots that do not move (no
    navigator here), every decision names the same goals, so each robot and the depot get exactly one,
    at the goal zone's centre, facing along the way from the robot's pose to it (not yaw 0)."""
    import math

    from altmarl_sim.ring import zone_of_pose

    sim, coordinator, agents = _sim_nodes(graph, world, world["stay"], command_type="goal_pose")
    spy = graph.add(rclpy.create_node("goal_spy", context=graph.context))
    goals = {robot: [] for robot in list(range(N)) + ["depot"]}
    for robot in goals:
        spy.create_subscription(PoseStamped, goal_topic(robot), goals[robot].append, GOAL_QOS)
    assert graph.spin_until(lambda: coordinator.epoch >= 4 and all(goals.values()), timeout=40.0)
    graph.spin_until(lambda: False, timeout=0.3)
    assert {robot: len(sent) for robot, sent in goals.items() if len(sent) != 1} == {}
    poses = sim.sim.poses  # nobody moved: the poses every goal was computed from
    zones = list(zone_of_pose(poses[:N, 0], poses[:N, 1], world["ring"])) + [0]  # stay; the depot: a_g = 0
    xs, ys = zone_centre(np.array(zones), world["ring"])
    for slot, robot in enumerate(goals):
        goal = goals[robot][0].pose
        assert (goal.position.x, goal.position.y) == pytest.approx((xs[slot], ys[slot]))
        expected = math.atan2(ys[slot] - poses[slot, 1], xs[slot] - poses[slot, 0])
        yaw = 2 * math.atan2(goal.orientation.z, goal.orientation.w)
        assert math.cos(yaw - expected) == pytest.approx(1.0, abs=1e-9), (robot, yaw, expected)


def test_stop_halts_every_robot_within_one_control_period_and_resume_restarts(graph, world):
    sim, coordinator, agents = _sim_nodes(graph, world, world["random"])
    applied = []  # per simulator step: (step, largest command any robot or the depot was driven with)
    sim.add_step_listener(lambda fleet: applied.append((sim.steps, float(np.abs(sim.commands).max()))))
    client_node = graph.add(rclpy.create_node("operator", context=graph.context))
    diagnostics = []
    client_node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, diagnostics.append, 10)
    speed = lambda: float(np.abs(sim.sim.velocities[:, 0]).max())  # noqa: E731

    def call(service):
        client = client_node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        assert graph.spin_until(future.done, timeout=10.0)
        assert future.result().success
        return sim.steps  # the simulator step during which the operator got the answer

    assert graph.spin_until(lambda: agents.commands_received >= 2 and speed() > 0.3, timeout=40.0)
    stopped_at = call(STOP_SERVICE)
    assert graph.spin_until(lambda: sim.steps >= stopped_at + 20, timeout=20.0)
    after = [command for step, command in applied if step > stopped_at]
    # The step running when the answer came may still apply the old commands; every later one is zero.
    assert all(command == 0.0 for command in after[1:]), after[:5]
    assert agents.halted and coordinator.stopped
    stopped_epoch = coordinator.epoch
    assert graph.spin_until(lambda: any(s.level == s.WARN and s.message == "stopped by operator"
                                        for d in diagnostics for s in d.status), timeout=5.0)
    call(RESUME_SERVICE)
    assert graph.spin_until(lambda: coordinator.epoch > stopped_epoch + 1 and speed() > 0.3, timeout=30.0)
    def values():  # the coordinator's latest diagnostics (they go out on their own timer, so may lag)
        mine = [s for d in diagnostics for s in d.status if s.name.endswith(": coordinator")]
        return {kv.key: kv.value for kv in mine[-1].values}

    assert graph.spin_until(lambda: values()["stopped"] == "False", timeout=10.0), values()
    assert values()["policy_id"] == world["random_policy"].policy_id and values()["robots"] == str(N)
    assert int(values()["decisions"]) >= stopped_epoch


def test_parameters_are_read_only(graph, world):
    _, coordinator, _ = _sim_nodes(graph, world, world["random"])
    result = coordinator.set_parameters([Parameter("k", value=7)])[0]
    assert not result.successful and "read-only" in result.reason
    assert coordinator.k == K and coordinator.get_parameter("k").value == K


def _node_process(kind, world, policy):
    argv = [sys.executable, "-c", f"import sys; from altmarl_ros.nodes.{kind} import main; sys.exit(main())",
            "--ros-args", "-p", f"scenario:={world['scenario']}", "-p", f"policy:={policy}",
            "-p", f"n_robots:={N}", "-p", f"k:={K}", "-p", "use_sim_time:=true"]
    return subprocess.Popen(argv)


def test_stopped_node_processes_leave_their_robots_at_zero_velocity(graph, world):
    from altmarl_ros.supervisor import warm_up_kernels
    from altmarl_ros.nodes.fleet_sim import FleetSimNode

    warm_up_kernels()
    sim = graph.add(FleetSimNode({"scenario": world["scenario"], "n_robots": N, "cmd_vel_timeout": 60.0},
                                 context=graph.context))
    children = [_node_process(kind, world, world["random"]) for kind in ("local_agents", "coordinator")]
    driven = np.zeros(2)  # the largest speed commanded so far to a worker (local_agents), to the depot

    def watch():
        driven[:] = np.maximum(driven, [np.abs(sim.commands[:N, 0]).max(), abs(sim.commands[N, 0])])
    try:
        assert graph.spin_until(lambda: driven.min() > 0.05, timeout=60.0, every=watch), driven
        for child in children:
            child.send_signal(signal.SIGTERM)
        assert graph.spin_until(lambda: all(child.poll() is not None for child in children), timeout=20.0,
                                every=lambda: None)
        assert [child.returncode for child in children] == [0, 0]
        graph.spin_until(lambda: False, timeout=0.3)
        # The last command each robot got says stop (cmd_vel_timeout is 60 s: no timeout did this).
        assert np.abs(sim.commands).max() == 0.0, sim.commands[np.abs(sim.commands).max(axis=1) > 0]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def test_thirty_static_transforms_published_before_the_coordinator_starts_all_place_their_robots(graph, world):
    """tf2 style: one latched map -> <robot>/odom broadcaster per robot, all before the coordinator joins;
    /tf_static kept with depth 1 lost most of them, so robots were never placed in the map."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from altmarl_ros.names import TF_STATIC_TOPIC, TF_TOPIC
    from altmarl_ros.nodes._ros import LATCHED_QOS
    from test_nodes import _coordinator

    n = 30
    broadcaster = graph.add(rclpy.create_node("static_broadcasters", context=graph.context))
    statics = []
    for i, name in enumerate([f"robot_{i}" for i in range(n)] + ["depot"]):
        pub = broadcaster.create_publisher(TFMessage, TF_STATIC_TOPIC, LATCHED_QOS)  # as tf2_ros's
        t = TransformStamped(child_frame_id=f"{name}/odom")
        t.header.frame_id = "map"
        t.transform.translation.x, t.transform.translation.y, t.transform.rotation.w = 0.1 * i, -0.2 * i, 1.0
        pub.publish(TFMessage(transforms=[t]))
        statics.append(pub)
    moving = broadcaster.create_publisher(TFMessage, TF_TOPIC, 100)
    odom = TFMessage(transforms=[TransformStamped(child_frame_id=f"{name}/base_link")
                                 for name in [f"robot_{i}" for i in range(n)] + ["depot"]])
    for t in odom.transforms:
        t.header.frame_id = t.child_frame_id.replace("base_link", "odom")
        t.transform.rotation.w = 1.0
    graph.spin_until(lambda: False, timeout=1.0)  # the broadcasters are up and latched before the coordinator
    coordinator = _coordinator(graph, world, pose_source="tf", n_robots=n)
    placed = lambda: sum(coordinator.poses.pose(slot) is not None for slot in range(n + 1))  # noqa: E731
    assert graph.spin_until(lambda: placed() == n + 1, timeout=15.0, every=lambda: moving.publish(odom)), placed()
    assert coordinator.poses.pose(7)[:2] == pytest.approx((0.7, -1.4))


def _diagnostics_of(graph):
    spy = graph.add(rclpy.create_node("diagnostics_spy", context=graph.context))
    latest = {}  # status name -> the latest DiagnosticStatus
    spy.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC,
                            lambda array: latest.update({s.name: s for s in array.status}), 10)
    return latest


def test_without_a_clock_every_node_still_reports_and_says_why_nothing_happens(graph, world):
    """use_sim_time on a fleet with no /clock: ROS time stands still, so nothing is decided; /diagnostics
    runs on the wall clock and says so (with ROS-time timers the node was silent)."""
    from altmarl_ros.nodes.coordinator import CoordinatorNode
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    latest = _diagnostics_of(graph)
    params = {"scenario": world["scenario"], "policy": world["random"], "n_robots": N, "use_sim_time": True}
    coordinator = graph.add(CoordinatorNode(params, context=graph.context))
    graph.add(LocalAgentsNode(params, context=graph.context))
    reported = lambda: {name.rsplit(": ", 1)[1] for name, s in latest.items()  # noqa: E731
                        if s.level == s.ERROR and "/clock" in s.message}
    assert graph.spin_until(lambda: reported() == {"coordinator", "local agents"}, timeout=15.0), latest
    assert coordinator.epoch == 0
    # k reads back the policy's k when the fleet does not name it (it read 0 before)
    assert coordinator.get_parameter("k").value == world["random_policy"].k == coordinator.k


def test_a_depot_pose_in_the_wrong_frame_is_reported_with_both_frames(graph, world):
    sim, coordinator, _ = _sim_nodes(graph, world, world["random"], sim_params={"odom_frames": "per_robot"})
    latest = _diagnostics_of(graph)
    mine = lambda: [s for name, s in latest.items() if name.endswith(": coordinator")]  # noqa: E731
    assert graph.spin_until(lambda: mine() and "frame 'depot/odom', expected 'map'" in mine()[0].message,
                            timeout=20.0), [s.message for s in mine()]
    assert mine()[0].level == mine()[0].ERROR and coordinator.epoch == 0
