"""command_type navigate_to_pose: goals through Nav2's NavigateToPose action (nodes/_navigate.py).

Real in-process graphs: the coordinator and the local agents of 5 robots, a fake fleet of parked
robots (test_nodes.FakeFleet) and mock action servers playing the robots' Nav2 navigators
(_mock_navigators.py). What is checked is what the servers saw (goals, their poses and ends,
cancel requests), against goals computed here from the zones and the policy: accepted goals, one
per change; a new decision preempting the goal in flight; every goal in flight cancelled by a stop,
a lost coordinator and shutdown; a robot without a server counted and not waited for.
"""
import sys

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from action_msgs.msg import GoalStatus  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from altmarl_ros.core.counts import n_count_vectors  # noqa: E402
from altmarl_ros.core.policy import build_policy, save_policy  # noqa: E402
from altmarl_ros.names import DEPOT, DIAGNOSTICS_TOPIC, RESUME_SERVICE, STOP_SERVICE  # noqa: E402
from altmarl_sim.ring import zone_centre  # noqa: E402
from altmarl_sim.scenario import load_scenario, parse_scenario  # noqa: E402

from test_nodes import FakeFleet, _every  # noqa: E402

N, K = 5, 2
CANCELED, SUCCEEDED, ABORTED = GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED


@pytest.fixture(scope="module")
def nav_world(tmp_path_factory):
    """warehouse_ring with 5 workers and a policy whose local action is s_g mod 3 (stay, next, previous),
    so moving the depot changes every robot's goal; pi_g = 0 (the depot's goal is zone 0)."""
    root = tmp_path_factory.mktemp("navigate")
    data = load_scenario("warehouse_ring").to_dict()
    data["name"] = "navigate_ring"
    data["fleet"]["workers"] = N
    scenario_file = root / "navigate_ring.yaml"
    scenario_file.write_text(yaml.safe_dump(data))
    scenario = parse_scenario(data)
    z = scenario.ring.n_zones
    pi_l = np.zeros((z, z, 3))
    pi_l[:, np.arange(z), np.arange(z) % 3] = 1.0
    policy = build_policy(np.zeros((z, n_count_vectors(K, z)), dtype=int), pi_l, K, n_ag=z,
                          scenario=(scenario.name, scenario.content_hash()))
    return {"scenario": str(scenario_file), "policy": str(save_policy(policy, root / "policy.npz")),
            "ring": scenario.ring}


@pytest.fixture
def fleet(graph, nav_world):
    """Fleet(served, ...) builds one; their own executors are shut down before the graph's."""
    fleets = []
    yield lambda *args, **kwargs: fleets.append(Fleet(graph, nav_world, *args, **kwargs)) or fleets[-1]
    for built in fleets:
        for alone in built.alone:
            alone.shut_down()


class Alone:
    """A node on an executor of its own, spun with the graph's until frozen (a silent process) or shut down
    as run_node ends a process (the executor first, then the node). Not Graph.remove: an EventsExecutor
    that spins on after a node with action clients left it crashes (rclpy 7.1.6) when a message of
    one of those actions arrives."""

    def __init__(self, node):
        from altmarl_ros.nodes._ros import make_executor

        self.node, self.executor, self.spinning = node, make_executor(node.context), True
        self.executor.add_node(node)

    def spin(self, events: int = 5):
        for _ in range(events if self.spinning else 0):
            self.executor.spin_once(timeout_sec=0.0)

    def shut_down(self):
        if self.executor is not None:
            self.spinning = False
            self.executor.shutdown()
            self.node.destroy_node()
            self.executor = None


class Fleet:
    """The graph: fake robots parked at the centre of zone i mod 5, the depot in `depot_zone`, navigators for
    `served` (and the depot), and on executors of their own the coordinator and one local agents node for
    all 5 robots (navigate_to_pose)."""

    def __init__(self, graph, world, served, depot_zone=3, **agent_params):
        from altmarl_ros.nodes.local_agents import LocalAgentsNode

        from _mock_navigators import MockNavigators

        self.graph, self.world = graph, world
        self.robots = FakeFleet(graph, world["ring"], range(N))
        self.robots.depot = self.robots._at_zone(depot_zone)
        self.navigators = graph.add(MockNavigators(graph.context, [*served, DEPOT]))
        self.common = {"scenario": world["scenario"], "policy": world["policy"], "n_robots": N,
                       "command_type": "navigate_to_pose"}
        # the operator's clients, made before their calls (a new client's first answer can be lost)
        self.operator = {service: self.robots.node.create_client(Trigger, service)
                         for service in (STOP_SERVICE, RESUME_SERVICE)}
        self.alone = []
        self.coordinator = self.start_coordinator()
        self.agents = self.start(LocalAgentsNode({**self.common, **agent_params}, context=graph.context)).node
        self._odometry = _every(0.05)

    def start(self, node) -> Alone:
        self.alone.append(Alone(node))
        return self.alone[-1]

    def start_coordinator(self) -> Alone:
        from altmarl_ros.nodes.coordinator import CoordinatorNode

        return self.start(CoordinatorNode({**self.common, "decision_period": 0.2}, context=self.graph.context))

    def spin_until(self, done, timeout=10.0):
        def every():
            if self._odometry():
                self.robots.publish()
            for alone in self.alone:
                alone.spin()
        return self.graph.spin_until(done, timeout, every=every)

    def goal_centre(self, robot, depot_zone):
        """Where robot `robot` must be sent with the depot in `depot_zone`: the zone its action names."""
        z = self.world["ring"].n_zones
        zone = (robot % z + (0, 1, -1)[depot_zone % 3]) % z
        return tuple(float(c) for c in zone_centre(zone, self.world["ring"]))

    def running(self, robot):
        return self.navigators.running(robot)

    def driving_to(self, robots, depot_zone):
        """Every robot in `robots` has exactly one goal running, to where the depot's zone sends it, in map."""
        def ok(robot):
            running = self.running(robot)
            return len(running) == 1 and running[0].pose.header.frame_id == "map" and \
                (running[0].pose.pose.position.x, running[0].pose.pose.position.y) == \
                pytest.approx(self.goal_centre(robot, depot_zone))
        return all(ok(robot) for robot in robots)

    def goals_received(self):
        return {robot: len(goals) for robot, goals in self.navigators.goals.items()}

    def call(self, service):
        client = self.operator[service]
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        assert self.spin_until(future.done) and future.result().success


def _latest_values(node):
    """{status name: (level, {key: value})} of the newest /diagnostics from each node."""
    latest = {}
    node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC,
                             lambda array: latest.update({s.name: (s.level, {kv.key: kv.value for kv in s.values})
                                                          for s in array.status}), 10)

    def agents():
        found = [status for name, status in latest.items() if name.endswith(": local agents")]
        return found[0] if found else (None, {})
    return agents


def test_goals_are_accepted_preempted_by_a_new_decision_and_cancelled_by_a_stop(fleet, nav_world):
    """Robots 0-3 and the depot have navigators, robot 4 none yet. Goals go out once per change; moving
    the depot (a new decision for every robot) replaces each goal and cancels the old one; robot 4 is
    counted absent and its goal goes out when its server appears; feedback and results are counted;
    a stop cancels every goal in flight, from the stop itself (long before command_timeout), and
    nothing is sent until resume."""
    fleet = fleet(served=range(4))
    agents, navigators = fleet.agents, fleet.navigators
    diagnostics = _latest_values(fleet.robots.node)
    centre0 = tuple(float(c) for c in zone_centre(0, nav_world["ring"]))
    assert fleet.spin_until(lambda: fleet.driving_to(range(4), 3) and len(fleet.running(DEPOT)) == 1)
    assert (fleet.running(DEPOT)[0].pose.pose.position.x, fleet.running(DEPOT)[0].pose.pose.position.y) == \
        pytest.approx(centre0)
    assert fleet.spin_until(lambda: diagnostics()[1].get("navigators_absent") == "1", timeout=5.0), diagnostics()
    assert diagnostics()[0] == DiagnosticStatus.WARN

    # unchanged goals are not sent again, decision after decision
    seen = agents.commands_received
    assert fleet.spin_until(lambda: agents.commands_received >= seen + 3)
    assert fleet.goals_received() == {0: 1, 1: 1, 2: 1, 3: 1, DEPOT: 1}

    # a new decision (depot in zone 1: every robot's action is `next`) preempts every goal in flight
    fleet.robots.depot = fleet.robots._at_zone(1)
    assert fleet.spin_until(lambda: fleet.driving_to(range(4), 1)
                            and all(goals[0].status == CANCELED for goals in navigators.goals.values()
                                    if len(goals) > 1))
    assert fleet.goals_received() == {0: 2, 1: 2, 2: 2, 3: 2, DEPOT: 1}
    assert fleet.spin_until(lambda: agents.goals.counts["goals_preempted"] == 4)

    # robot 4's navigator appears: its goal goes out (it was skipped, not waited for)
    navigators.serve(4)
    assert fleet.spin_until(lambda: fleet.driving_to(range(5), 1))
    assert fleet.spin_until(lambda: diagnostics()[1].get("navigators_absent") == "0", timeout=5.0)

    # results: robot 0 arrives, robot 1's navigator gives up; neither goal is sent again
    navigators.finish(0, SUCCEEDED)
    navigators.finish(1, ABORTED)
    assert fleet.spin_until(lambda: agents.goals.counts["goals_succeeded"] == 1
                            and agents.goals.counts["goals_aborted"] == 1)
    seen = agents.commands_received
    assert fleet.spin_until(lambda: agents.commands_received >= seen + 3)
    assert fleet.goals_received() == {0: 2, 1: 2, 2: 2, 3: 2, 4: 1, DEPOT: 1}
    robots_feedback = sum(sent for robot, sent in navigators.feedback_sent.items() if robot != DEPOT)
    assert agents.goals.counts["feedback_received"] == robots_feedback == 9

    # the stop: every goal in flight (robots 2, 3, 4 and the depot) is cancelled, by the stop
    assert not agents.stopped
    fleet.call(STOP_SERVICE)
    assert fleet.spin_until(lambda: not any(fleet.running(robot) for robot in navigators.goals), timeout=5.0)
    assert not agents.stopped  # the last GlobalCommand still counted: the halt cancelled, not the timeout
    assert {robot: len(times) for robot, times in navigators.cancels.items()} == \
        {0: 1, 1: 1, 2: 2, 3: 2, 4: 1, DEPOT: 1}  # robots 0-3: the preempted goal's cancel, then the stop's
    assert fleet.spin_until(lambda: agents.goals.counts["goals_canceled"] == 3
                            and agents.goals.status()["goals_in_flight"] == 0)
    sent = fleet.goals_received()
    fleet.spin_until(lambda: False, timeout=0.5)
    assert fleet.goals_received() == sent  # held: nothing goes out while stopped

    # resume: every robot is sent its goal again (after a hold, even an unchanged one)
    fleet.call(RESUME_SERVICE)
    assert fleet.spin_until(lambda: fleet.driving_to(range(5), 1) and len(fleet.running(DEPOT)) == 1)
    assert fleet.spin_until(lambda: diagnostics()[1].get("goals_sent") == str(agents.goals.counts["goals_sent"]),
                            timeout=5.0)
    assert int(diagnostics()[1]["feedback_received"]) == agents.goals.counts["feedback_received"]


@pytest.mark.filterwarnings("ignore:failed to send response:RuntimeWarning")  # cancel answers to nodes gone
def test_a_lost_coordinator_and_shutdown_cancel_every_goal_in_flight(fleet):
    """The coordinator falls silent: every robot's goal in flight is cancelled once the last command is
    command_timeout old. It shuts down (its depot goal is cancelled) and a new one sends the goals again;
    the local agents shut down: every goal in flight is cancelled, even one whose answer is not in yet."""
    fleet = fleet(served=range(N), command_timeout=0.5)
    agents, navigators = fleet.agents, fleet.navigators
    assert fleet.spin_until(lambda: fleet.driving_to(range(N), 3) and len(fleet.running(DEPOT)) == 1)
    fleet.coordinator.spinning = False  # silent, as a frozen or partitioned process is
    assert fleet.spin_until(lambda: not any(fleet.running(robot) for robot in range(N)), timeout=5.0)
    assert agents.stopped and len(fleet.running(DEPOT)) == 1

    fleet.coordinator.shut_down()
    assert fleet.spin_until(lambda: not fleet.running(DEPOT))
    fleet.start_coordinator()
    assert fleet.spin_until(lambda: fleet.driving_to(range(N), 3))
    # robot 0 is sent a new goal just before the shutdown: its answer is never read, it is cancelled by id
    agents.goals.drive(0, 1, fleet.goal_centre(0, 1), (*fleet.goal_centre(0, 0), 0.0))
    fleet.alone[1].shut_down()
    assert fleet.spin_until(lambda: len(navigators.goals[0]) == 3
                            and not any(fleet.running(robot) for robot in range(N)), timeout=5.0)
    assert all(goal.status == CANCELED for robot in range(N) for goal in navigators.goals[robot])
    assert {robot: len(times) for robot, times in navigators.cancels.items()} == \
        {0: 3, 1: 2, 2: 2, 3: 2, 4: 2, DEPOT: 1}


def test_navigate_to_pose_without_nav2_msgs_is_refused_naming_the_fix(ros_context, nav_world, monkeypatch):
    from altmarl_ros.nodes._params import ParameterError
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    monkeypatch.setitem(sys.modules, "nav2_msgs.action", None)  # as if nav2_msgs were not installed
    monkeypatch.delitem(sys.modules, "altmarl_ros.nodes._navigate", raising=False)
    with pytest.raises(ParameterError, match=r"'command_type' = 'navigate_to_pose' needs nav2_msgs .*bootstrap"):
        LocalAgentsNode({"scenario": nav_world["scenario"], "policy": nav_world["policy"], "n_robots": N,
                         "command_type": "navigate_to_pose"}, context=ros_context)


def test_the_real_plans_remappings_reach_a_namespaced_robots_navigator(graph):
    """Jazzy's rcl ignores a remapping of an action's own name: the real plan remaps the action's topics and
    services, so amr_b's agent (namespace amr_b) finds the navigator at /amr_b/navigate_to_pose, not
    /amr_b/amr_b/navigate_to_pose."""
    from nav2_msgs.action import NavigateToPose
    from rclpy.action import ActionClient

    from altmarl_ros import fleet_plan
    from altmarl_ros.names import navigate_action

    from _mock_navigators import MockNavigators

    fleet = fleet_plan.load_fleet(None, {"robot_names": ["amr_a", "amr_b"], "n_robots": 2, "k": 1})
    spec = [spec for spec in fleet_plan.plan_nodes(fleet, "real") if spec.kind == "local_agents"][1]
    graph.add(MockNavigators(graph.context, ["amr_b"]))  # serves /amr_b/navigate_to_pose
    agent = graph.add(rclpy.create_node("agent", context=graph.context, cli_args=spec.ros_args()))
    assert agent.get_namespace() == "/amr_b"
    client = ActionClient(agent, NavigateToPose, navigate_action("amr_b"))
    try:
        assert graph.spin_until(client.server_is_ready, timeout=10.0)
    finally:
        client.destroy()
