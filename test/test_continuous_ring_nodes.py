"""An FA policy on the continuous ring through the ROS nodes (docs/continuous.md, The continuous ring, Deployment).

- One sequence of (depot zone, sampled poses), short samples among them, goes through CoordinatorNode.decide and
  through altmarl_sim.rollout.run_fa_episode (stubbed simulator and sampler): the same actions. The local
  agents' goals from given poses are the FA local network's actions recomputed by hand.
- A real in-process graph (fleet_sim, coordinator, local_agents; n = 50, k = 5): every GlobalCommand's action is
  the global network's on the poses the sampled robots reported, and the workers drive.
- Bad FA policy files given to the nodes stop them with one-line errors naming the file and the fix.
"""
import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from altmarl_msgs.msg import GlobalCommand, StateReport  # noqa: E402

from altmarl_ros.core.fa_observer import FRESH, default_observer  # noqa: E402
from altmarl_ros.core.fa_policy import build_fa_policy, mlp_apply, observation_sizes, save_fa_policy  # noqa: E402
from altmarl_ros.nodes._params import ParameterError  # noqa: E402
from altmarl_sim.continuous_ring import ContinuousRing  # noqa: E402
from altmarl_sim.ring import target_zone, zone_centre, zone_of_pose  # noqa: E402
from altmarl_sim.scenario import load_scenario, parse_scenario  # noqa: E402

N, K, EPOCHS = 50, 5, 30


def _random_fa(game, k, seed, local_bias=(0.0, 0.0, 0.0), observer=FRESH):
    """An FA policy with random weights (hidden 8) whose local net leans to `local_bias`."""
    rng = np.random.default_rng(seed)
    sizes = observation_sizes(game, k, "state+summary")

    def net(n_in, n_out, bias=None):
        b = rng.normal(size=n_out) if bias is None else np.asarray(bias)
        return [(rng.normal(size=(n_in, 8)), rng.normal(size=8)), (2 * rng.normal(size=(8, n_out)), b)]
    return build_fa_policy(game, k, net(sizes["global"], game.n_ag), net(sizes["local"], game.n_al, local_bias),
                           global_inputs="state+summary", hidden=[8], observer=observer)


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    root = tmp_path_factory.mktemp("continuous_ring")
    data = load_scenario("warehouse_ring_continuous").to_dict()
    data.update(name="test_continuous_ring", noise={"speed_std": 0.0, "turn_rate_std": 0.0},
                faults={"stall_probability": 0.0, "stall_duration_min": 0.0, "stall_duration_max": 0.0})
    data["fleet"]["workers"] = N
    scenario_file = root / "test_continuous_ring.yaml"
    scenario_file.write_text(yaml.safe_dump(data))
    scenario = parse_scenario(data)
    game = ContinuousRing(scenario)
    policy = _random_fa(game, K, 1, local_bias=(0.0, 4.0, 0.0))
    return {"root": root, "scenario": scenario, "file": str(scenario_file), "game": game, "policy": policy,
            "path": str(save_fa_policy(policy, root / "fa.npz"))}


def _sequence(ring):
    rng = np.random.default_rng(5)
    radius = ring["scenario"].ring.radius
    depot = rng.integers(0, 5, size=EPOCHS)
    sizes = np.where(rng.random(EPOCHS) < 0.25, rng.integers(1, K, size=EPOCHS), K)  # short samples
    angles = [rng.uniform(0, 2 * np.pi, m) for m in sizes]
    poses = [np.column_stack([radius * np.cos(a), radius * np.sin(a), rng.uniform(-3, 3, a.size)]) for a in angles]
    return depot, poses


def test_the_coordinator_and_the_rollout_decide_alike_on_an_fa_policy(ros_context, ring, monkeypatch):
    from altmarl_ros.nodes._sampling import Sample
    from altmarl_ros.nodes.coordinator import CoordinatorNode
    from altmarl_sim import rollout

    depot, poses = _sequence(ring)
    scenario, epoch = ring["scenario"], [0]

    def zones_of(p):
        return zone_of_pose(p[:, 0], p[:, 1], scenario.ring)

    node = CoordinatorNode({"scenario": ring["file"], "policy": ring["path"], "n_robots": N}, context=ros_context)

    class SequenceStates:
        def collect(self, _epoch, _now):
            p = poses[epoch[0]]
            return Sample(range(len(p)), zones_of(p), np.zeros(len(p)), p)

        def present(self, _now):
            return N

    node.states = SequenceStates()
    node._depot_pose = lambda _now: (*(float(c) for c in zone_centre(int(depot[epoch[0]]), scenario.ring)), 0.0)
    ros_actions = []
    try:
        for t in range(EPOCHS):
            epoch[0] = t
            assert node.decide(10**9 * (t + 1))
            ros_actions.append(node.last_command.global_action)
            assert list(node.last_command.counts) == np.bincount(zones_of(poses[t]), minlength=5).tolist()
    finally:
        node.destroy_node()

    class SequenceSim:
        n = N

        def __init__(self):
            self.scenario, self.poses = scenario, np.zeros((N + 1, 3))
            self._load(0)

        def _load(self, t):
            self.poses[:len(poses[t])] = poses[t]

        def zones(self):
            return zones_of(self.poses[:N])

        def depot_zone(self):
            return int(depot[epoch[0]])

        def step_epoch(self, actions, a_g, lead=0):
            epoch[0] += 1
            self._load(min(epoch[0], EPOCHS - 1))
            return None, None, 0.0

    monkeypatch.setattr(rollout, "sample_workers", lambda zones, k, n_sl, rng: (
        np.arange(len(poses[epoch[0]])), np.bincount(zones[:len(poses[epoch[0]])], minlength=n_sl)))
    sim_actions = []
    epoch[0] = 0
    rollout.run_fa_episode(SequenceSim(), rollout.decider_of(ring["policy"], scenario), EPOCHS,
                           np.random.default_rng(0), on_epoch=lambda sim, ids, a_g: sim_actions.append(a_g))
    assert ros_actions == sim_actions
    assert len(set(ros_actions)) > 1  # the sequence exercises the network, not one action
    # Independent: the global network by hand on one-hot(depot zone) and the 20-bin histogram of the samples.
    by_hand = []
    for t in range(EPOCHS):
        arc = (np.arctan2(poses[t][:, 1], poses[t][:, 0]) / (2 * np.pi)) % 1.0
        x = np.concatenate([np.eye(5)[depot[t]], np.bincount((arc * 20).astype(int), minlength=20) / len(arc)])
        by_hand.append(int(np.argmax(mlp_apply(ring["policy"].global_params, x))))
    assert by_hand == ros_actions


def test_the_local_agents_act_on_their_own_poses(ros_context, ring):
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    node = LocalAgentsNode({"scenario": ring["file"], "policy": ring["path"], "n_robots": N}, context=ros_context)
    try:
        _, poses = _sequence(ring)
        poses = np.concatenate(poses)[:N]
        node.last_command = GlobalCommand(global_state=3)
        slots = np.arange(N)
        node.draw_goals(slots, poses)
        zones = zone_of_pose(poses[:, 0], poses[:, 1], ring["scenario"].ring)
        arc = (np.arctan2(poses[:, 1], poses[:, 0]) / (2 * np.pi)) % 1.0
        eye = np.eye(5)
        x = np.column_stack([eye[zones], np.tile(eye[3], (N, 1)), eye[(zones - 3) % 5], arc * 5 - zones - 0.5])
        actions = np.argmax(mlp_apply(ring["policy"].local_params, x), axis=1)
        assert node.goal_zones.tolist() == target_zone(zones, actions, ring["scenario"].ring).tolist()
        assert len(set(actions.tolist())) > 1
    finally:
        node.destroy_node()


def test_an_fa_policy_drives_the_simulated_fleet(graph, ring):
    from altmarl_ros.names import GLOBAL_COMMAND_TOPIC, STATE_REPORTS_TOPIC
    from altmarl_ros.nodes._ros import GLOBAL_COMMAND_QOS, STATE_REPORT_QOS
    from altmarl_ros.nodes.coordinator import CoordinatorNode
    from altmarl_ros.nodes.fleet_sim import FleetSimNode
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    common = {"scenario": ring["file"], "policy": ring["path"], "n_robots": N, "use_sim_time": True}
    sim = graph.add(FleetSimNode({"scenario": ring["file"], "n_robots": N, "real_time_factor": 2.0},
                                 context=graph.context))
    graph.add(CoordinatorNode(common, context=graph.context))
    agents = graph.add(LocalAgentsNode(common, context=graph.context))
    spy = graph.add(rclpy.create_node("fa_spy", context=graph.context))
    commands, reports = [], []
    spy.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, commands.append, GLOBAL_COMMAND_QOS)
    spy.create_subscription(StateReport, STATE_REPORTS_TOPIC, reports.append, STATE_REPORT_QOS)
    assert graph.spin_until(lambda: len(commands) >= 3, timeout=40.0), f"{len(commands)} commands"
    game, policy = ring["game"], ring["policy"]
    for msg in commands:
        assert msg.policy_id == policy.policy_id and msg.observer == "fresh" and msg.k == K
        sampled = {r.robot_id: (r.x, r.y, r.yaw) for r in reports if r.epoch == msg.epoch}
        poses = np.array([sampled[i] for i in msg.sampled_ids])
        assert msg.global_action == policy.global_action(game, game.zone_state(msg.global_state), poses)
    assert agents.commands_received >= 3 and not agents.stopped
    assert np.abs(sim.sim.velocities[:N, 0]).max() > 0.1  # the workers drive


def test_bad_fa_policy_files_stop_the_nodes_with_one_line_errors(ros_context, ring, world):
    from altmarl_ros.nodes.coordinator import CoordinatorNode
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    root, game = ring["root"], ring["game"]
    other = ContinuousRing(parse_scenario({**ring["scenario"].to_dict(), "continuous": {"bins_per_zone": 2}}))
    coarse = str(save_fa_policy(_random_fa(other, K, 2), root / "coarse.npz"))
    k3 = str(save_fa_policy(_random_fa(game, 3, 3), root / "k3.npz"))
    pooled = str(save_fa_policy(_random_fa(game, K, 4, observer=default_observer("pool", K, 100)), root / "pool.npz"))
    broken = dict(np.load(ring["path"]))
    broken["l_W1"][0, 0] = np.nan
    np.savez(root / "nan.npz", **broken)
    ok = {"scenario": ring["file"], "n_robots": N}
    cases = [
        (CoordinatorNode, {**ok, "policy": world["random"]}, "is a tabular policy (pi_g, pi_l); a continuous model or "
                                                            "scenario needs an FA policy: train one with"),
        (LocalAgentsNode, {**ok, "policy": coarse}, "global network inputs 15 in the policy, 25 features"),
        (CoordinatorNode, {**ok, "policy": k3, "k": 5}, "trained for k = 3"),
        (LocalAgentsNode, {**ok, "policy": pooled}, "this FA policy reads its pool observer's estimate; the fleet "
                                                    "runs FA policies that read each decision's k samples: train "
                                                    "one with `--observer fresh` (the default)"),
        (LocalAgentsNode, {**ok, "policy": str(root / "nan.npz")}, "l_W1[0, 0]: is nan; weights are finite"),
        (CoordinatorNode, {"scenario": world["scenario"], "n_robots": N, "policy": ring["path"]},
         "is a function-approximation policy (a continuous model's networks); use it with --model <its continuous "
         "model> or --scenario <its continuous scenario>"),
    ]
    for cls, params, words in cases:
        with pytest.raises(ParameterError) as info:
            cls(params, context=ros_context)
        message = str(info.value)
        assert words in message and "\n" not in message, (cls.__name__, message)
        assert message.startswith("parameter 'policy' = " if "k" not in params else "parameter 'k' = 5"), message
