"""The continuous ring (altmarl_sim/continuous_ring.py): its epochs against FleetSim's own epochs, its features
against the ring's zone rule, and an FA policy's simulator rollouts against the tabular rollouts of the same
policy written as tables, on the same streams."""
from dataclasses import replace

import numpy as np
import pytest

from _fa_ring import parked_depot_fa
from altmarl_ros.core.fa_policy import observation_sizes
from altmarl_ros.core.observers import fresh
from altmarl_sim.continuous_ring import ContinuousRing, robot_states
from altmarl_sim.fleet import FleetSim
from altmarl_sim.kinematics import Faults, Noise
from altmarl_sim.ring import zone_of_pose
from altmarl_sim.rollout import decider_of, fa_sim_rollout_welfare, sim_rollout_welfare
from altmarl_sim.scenario import ScenarioError, load_scenario, parse_scenario

CONTINUOUS = load_scenario("warehouse_ring_continuous")
GAME = ContinuousRing(CONTINUOUS)


def _fleet_epoch(scenario, n, seed, kernel_seed, actions, a_g):
    """(start states [n+1, 8], goals of the workers, FleetSim after one epoch) with float32-exact start poses."""
    sim = FleetSim(scenario, n=n, seed=seed)
    sim.start_from(np.array(sim.poses).astype(np.float32).astype(np.float64))
    start = robot_states(sim.poses, sim.all_zones())
    sim._draw_seed = lambda: np.uint64(kernel_seed)
    sim.step_epoch(actions, a_g)
    return start, sim


def test_an_epoch_is_the_fleets_epoch_robot_for_robot():
    n, kernel_seed = 40, 987654321
    actions = np.random.default_rng(3).integers(3, size=n)
    start, sim = _fleet_epoch(CONTINUOUS, n, 5, kernel_seed, actions, 2)
    goals = (start[:n, 7].astype(int) + np.array([0, 1, -1])[actions]) % 5
    workers = GAME.epoch(start[:n], goals, np.uint64(kernel_seed))  # streams (seed, i): the fleet's workers'
    assert CONTINUOUS.noise.speed_std > 0 and CONTINUOUS.faults.stall_probability > 0
    np.testing.assert_allclose(workers[:, :3], sim.poses[:n], atol=2e-6)
    np.testing.assert_allclose(workers[:, 3:5], sim.velocities[:n], atol=2e-5)
    np.testing.assert_array_equal(workers[:, 7], sim.zones())
    np.testing.assert_allclose(workers[:, 5], sim.stall_remaining[:n], atol=1e-6)
    # the reward: service now (the start's metres are 0) and the epoch's energy charged next epoch, / gamma
    service = GAME.reward_local(start[:n], start[n], actions)
    charged = GAME.reward_local(workers, start[n], actions) - GAME.reward_local(
        replace_metres(workers, 0.0), start[n], actions)
    np.testing.assert_allclose(service + CONTINUOUS.gamma * charged, sim.last_local_rewards, atol=1e-4)
    # the depot runs on stream (seed, 0) here, (seed, n) in the fleet: compared without noise or stalls
    quiet = replace(CONTINUOUS, noise=Noise(), faults=Faults())
    start, sim = _fleet_epoch(quiet, n, 5, kernel_seed, actions, 2)
    quiet_game = ContinuousRing(quiet)
    noise = np.random.default_rng(0).random(n)  # only seeds streams that draw nothing here
    workers = quiet_game.next_local(start[:n], start[n], actions, noise)  # the actions' goal zones, as the fleet's
    np.testing.assert_allclose(workers[:, :3], sim.poses[:n], atol=2e-6)
    depot = quiet_game.next_global(start[n], 2, noise[0])
    np.testing.assert_allclose(depot[:5], np.concatenate([sim.poses[n], sim.velocities[n]]), atol=2e-5)
    assert depot[7] == sim.depot_zone()
    assert ContinuousRing(quiet).reward_global(depot, 2) * CONTINUOUS.gamma == pytest.approx(
        sim.last_global_reward, abs=1e-5)


def replace_metres(states, metres):
    out = states.copy()
    out[..., 6] = metres
    return out


def test_the_jax_rollouts_step_through_the_same_kernel():
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(0)
    s_g, s_l = GAME.initial(rng, 30, 2)
    noise, actions = rng.random((2, 30), dtype=np.float32), rng.integers(3, size=(2, 30))
    expected = GAME.next_local(s_l, s_g, actions, noise, np)
    np.testing.assert_array_equal(np.asarray(GAME.next_local(jnp.asarray(s_l), jnp.asarray(s_g),
                                                             jnp.asarray(actions), jnp.asarray(noise), jnp)), expected)
    assert not np.array_equal(expected, GAME.next_local(s_l, s_g, actions, noise[::-1], np))  # the noise seeds it


def test_features_read_the_rings_zones_and_the_summary_holds_the_zone_counts():
    rng = np.random.default_rng(1)
    poses = np.column_stack([rng.uniform(-1.5, 1.5, (200, 2)), rng.uniform(-3, 3, 200)])
    zones = zone_of_pose(poses[:, 0], poses[:, 1], CONTINUOUS.ring)
    depot = poses[0]
    features = GAME.local_features(poses, depot)
    assert features.shape == (200, observation_sizes(GAME, 5, "state+summary")["local"]) == (200, 16)
    np.testing.assert_array_equal(features[:, :5].argmax(axis=1), zones)
    np.testing.assert_array_equal(features[:, 5:10].argmax(axis=1), np.full(200, zones[0]))
    np.testing.assert_array_equal(features[:, 10:15].argmax(axis=1), (zones - zones[0]) % 5)
    assert np.all(np.abs(features[:, 15]) <= 0.5)
    samples = poses[:7]
    summary = GAME.summary(samples)
    assert summary.shape == (20,) and summary.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(summary.reshape(5, 4).sum(axis=1), np.bincount(zones[:7], minlength=5) / 7)


def test_an_fa_policy_scores_as_the_same_policy_in_tables_on_the_same_streams():
    k = 5
    fa, pi_l = parked_depot_fa(GAME, k)
    pi_g = np.tile(np.arange(5, dtype=np.int32)[:, None], (1, 126))  # the depot stays in its zone
    anywhere = replace(CONTINUOUS, depot_start_zone=None)  # the depot starts in a random zone
    sizes = dict(n=60, horizon=15, seeds=1, rollouts=4, seed=4)
    fa_welfare = fa_sim_rollout_welfare(anywhere, decider_of(fa, anywhere), **sizes)
    tabular = sim_rollout_welfare(anywhere, pi_g, pi_l, k, observer=fresh(k), **sizes)
    np.testing.assert_array_equal(fa_welfare.returns, tabular.returns)
    other = fa_sim_rollout_welfare(anywhere, decider_of(fa, anywhere), **{**sizes, "seed": 5})
    assert not np.array_equal(other.returns, tabular.returns)  # the streams, not the policy, fix the returns


def test_a_continuous_section_is_checked_and_observes_its_twin():
    data = load_scenario("warehouse_ring").to_dict()
    assert parse_scenario(data).continuous is None
    twin = parse_scenario({**data, "continuous": None})
    assert twin.continuous.bins_per_zone == 4 and twin.content_hash() == parse_scenario(data).content_hash()
    with pytest.raises(ScenarioError, match=r"continuous\.bins: unknown key \(allowed: bins_per_zone, "):
        parse_scenario({**data, "continuous": {"bins": 3}})
    with pytest.raises(ScenarioError, match=r"continuous\.train_workers: must be an integer >= 1"):
        parse_scenario({**data, "continuous": {"train_workers": 0}})
    with pytest.raises(ScenarioError, match=r"gamma: must be > 0 in a continuous scenario"):
        parse_scenario({**data, "gamma": 0.0, "continuous": {}})
    with pytest.raises(ScenarioError, match=r"continuous: scenario 'warehouse_ring' has no continuous section"):
        ContinuousRing(load_scenario("warehouse_ring"))


def test_the_start_is_the_fleets_start_distribution():
    s_g, s_l = GAME.initial(np.random.default_rng(2), 50, 40)
    assert s_g.shape == (40, 8) and s_l.shape == (40, 50, 8)
    np.testing.assert_array_equal(s_g[:, 7], 0)  # depot_start_zone: 0
    for states in (s_g, s_l.reshape(-1, 8)):
        np.testing.assert_array_equal(states[:, 7], zone_of_pose(states[:, 0], states[:, 1], CONTINUOUS.ring))
        assert not states[:, 3:7].any()  # at rest, no stall, nothing driven yet
    counts = np.bincount(s_l[..., 7].astype(int).ravel(), minlength=5)
    assert counts.min() > 0.8 * 400 and counts.max() < 1.2 * 400  # uniform start_zone_weights: 400 expected each


def test_the_tabular_global_states_are_the_depot_in_each_zone_of_the_zone_model():
    """--global-init best_feedback fits rule[s_g] at tabular_global_states()[s_g]: the depot in zone s_g."""
    states = GAME.tabular_global_states()
    assert CONTINUOUS.sizes[:2] == (len(states), GAME.n_ag)  # the zone model's (S_g, A_g)
    np.testing.assert_array_equal(zone_of_pose(states[:, 0], states[:, 1], CONTINUOUS.ring), np.arange(len(states)))
    np.testing.assert_array_equal(GAME.global_state_features(states), np.eye(len(states)))
