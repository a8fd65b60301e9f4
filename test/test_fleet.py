"""FleetSim: reproducibility, zones, the epoch reward, both driving modes, argument errors."""
import dataclasses

import numpy as np
import pytest

from _kinematics_drivers import integrate_unicycle
from altmarl_sim.kinematics import Faults, Noise
from altmarl_sim.ring import target_zone, zone_of_pose
from altmarl_sim.fleet import FleetError, FleetSim, epoch_from_rest
from altmarl_sim.scenario import load_scenario


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("warehouse_ring")


@pytest.fixture(scope="module")
def quiet(scenario):
    """The default world without noise or faults."""
    return dataclasses.replace(scenario, noise=Noise(), faults=Faults())


def epoch_trajectory(scenario, seed, epochs=5, n=40):
    sim = FleetSim(scenario, n=n, seed=seed)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(epochs):
        zones, depot, reward = sim.step_epoch(rng.integers(0, 3, n), int(rng.integers(0, 5)))
        out.append((zones.copy(), depot, reward, sim.poses.copy()))
    return out


@pytest.mark.kernels
def test_same_seed_same_trajectory(scenario):
    a, b, c = (epoch_trajectory(scenario, s) for s in (7, 7, 8))
    for (za, da, ra, pa), (zb, db, rb, pb) in zip(a, b):
        np.testing.assert_array_equal(za, zb)
        np.testing.assert_array_equal(pa, pb)
        assert (da, ra) == (db, rb)
    assert not np.array_equal(a[-1][3], c[-1][3])


@pytest.mark.kernels
def test_commanded_mode_is_reproducible_and_advances_time(scenario):
    runs = []
    for _ in range(2):
        sim = FleetSim(scenario, n=20, seed=3)
        sim.set_commands(np.linspace(-2, 2, 21), np.linspace(3, -3, 21))
        for _ in range(40):
            sim.step_control()
        runs.append(sim.poses.copy())
        assert sim.time == pytest.approx(40 * scenario.timing.control_period)
        assert np.all(np.abs(sim.velocities[:, 0]) <= scenario.limits.max_speed)
    np.testing.assert_array_equal(*runs)


@pytest.mark.kernels
def test_reset_places_robots_in_the_requested_zones(scenario):
    sim = FleetSim(scenario, n=500, seed=1)
    zones = np.arange(500) % 5
    sim.reset(worker_zones=zones, depot_zone=3)
    np.testing.assert_array_equal(sim.zones(), zones)
    assert sim.depot_zone() == 3 and sim.depot_index == 500
    np.testing.assert_array_equal(sim.all_zones(), zone_of_pose(sim.poses[:, 0], sim.poses[:, 1], scenario.ring))
    assert np.all(sim.velocities == 0) and sim.time == 0.0
    with pytest.raises(ValueError):
        sim.poses[0, 0] = 1.0  # read-only view


@pytest.mark.kernels
def test_start_zones_follow_mu0(scenario):
    weights = (0.5, 0.3, 0.2, 0.0, 0.0)
    sim = FleetSim(dataclasses.replace(scenario, start_zone_weights=weights), n=20000, seed=2)
    freq = np.bincount(sim.zones(), minlength=5) / 20000
    np.testing.assert_allclose(freq, weights, atol=0.015)


@pytest.mark.kernels
def test_reward_of_a_still_fleet_is_the_served_fraction(quiet):
    """Robots exactly at their zone centres that stay do not move, so the epoch reward is
    service * (fraction of workers in the depot's zone) and nothing else."""
    still = dataclasses.replace(quiet, start_jitter=0.0)
    sim = FleetSim(still, n=100, seed=0)
    zones = np.repeat(np.arange(5), [10, 20, 30, 25, 15])
    sim.reset(worker_zones=zones, depot_zone=2)
    next_zones, depot, reward = sim.step_epoch(np.zeros(100, dtype=int), 2)
    np.testing.assert_array_equal(next_zones, zones)
    assert depot == 2
    assert reward == pytest.approx(still.rewards.service * 0.30, abs=1e-12)
    np.testing.assert_allclose(sim.last_local_rewards, still.rewards.service * (zones == 2), atol=1e-12)
    assert sim.last_global_reward == pytest.approx(0.0, abs=1e-12)


@pytest.mark.kernels
def test_moves_reach_the_neighbouring_zone_and_cost_energy(quiet):
    sim = FleetSim(quiet, n=300, seed=4)
    start = np.arange(300) % 5
    sim.reset(worker_zones=start, depot_zone=0)
    actions = np.repeat([0, 1, 2], 100)
    _, first_depot, _ = sim.step_epoch(actions, 2)
    moved_energy = -sim.last_local_rewards[100:] + quiet.rewards.service * (start[100:] == 0)
    assert np.all(moved_energy > 0.3 * quiet.rewards.worker_energy)  # drove > 0.3 m
    depots = [first_depot]
    for _ in range(4):  # then stay: every robot settles in the zone it was sent to
        zones, depot, _ = sim.step_epoch(np.zeros(300, dtype=int), 2)
        depots.append(depot)
    np.testing.assert_array_equal(zones, (start + np.array([0, 1, -1]).repeat(100)) % 5)
    # the depot drives along the ring from zone 0 through zone 1 to zone 2, and stays
    assert depots == sorted(depots) and 1 in depots and depots[-1] == 2


@pytest.mark.kernels
def test_commanded_mode_without_noise_follows_the_closed_form(quiet):
    """Under a constant command reached within limits, a control step is the exact arc."""
    sim = FleetSim(quiet, n=3, seed=0)
    v, w = np.array([0.5, 1.0, 0.0, 0.2]), np.array([0.3, -1.0, 2.0, 0.0])
    sim.set_commands(v, w)
    for _ in range(20):  # 1 s: enough to reach the commanded (v, w) at the accel limits
        sim.step_control()
    np.testing.assert_allclose(sim.velocities, np.column_stack([v, w]), atol=1e-12)
    before = sim.poses.copy()
    sim.step_control()
    np.testing.assert_allclose(sim.poses, integrate_unicycle(before, v, w, quiet.timing.control_period),
                               atol=1e-12)


def test_epoch_from_rest_matches_fleet_epochs_from_rest(scenario):
    """The batched generative view gives the same transition law as FleetSim epochs
    started from reset (both: robots at rest near a zone centre)."""
    m = 4000
    start = np.full(m, 2)
    actions = np.repeat([0, 1, 2], [m // 4, m // 2, m - m // 4 - m // 2])
    end, travelled = epoch_from_rest(scenario, start, target_zone(start, actions, scenario.ring), seed=5)
    sim = FleetSim(scenario, n=m, seed=6)
    sim.reset(worker_zones=start, depot_zone=0)
    fleet_end, _, _ = sim.step_epoch(actions, 0)
    for a in range(3):
        mine = np.bincount(end[actions == a], minlength=5) / np.sum(actions == a)
        theirs = np.bincount(fleet_end[actions == a], minlength=5) / np.sum(actions == a)
        np.testing.assert_allclose(mine, theirs, atol=0.05)
    assert np.all(np.isin(end[actions == 1], [2, 3])) and np.all(np.isin(end[actions == 2], [1, 2]))
    assert travelled[actions == 1].mean() > 0.5  # metres: a move drives most of a zone
    again, _ = epoch_from_rest(scenario, start, target_zone(start, actions, scenario.ring), seed=5)
    np.testing.assert_array_equal(end, again)


@pytest.mark.kernels
def test_a_lead_reads_the_workers_zones_that_many_control_steps_before_the_epochs_end(scenario, quiet):
    """step_epoch(lead=L) leaves in read_zones where the workers were L control steps before the epoch's
    end. Without noise that is where the same fleet ends an epoch L steps shorter (same start and goals);
    lead 0 is the end, lead = every step the start, and LaggedFleet (lag 0, step by step) reads the same.
    Reading moves nothing: with noise, the trajectory and reward are lead 0's."""
    from altmarl_ros.experiments.actuation_lag import LaggedFleet

    steps, n, lead = quiet.timing.steps_per_epoch, 60, 6  # from rest, workers cross 5-7 steps before the end
    shorter = dataclasses.replace(quiet, timing=dataclasses.replace(
        quiet.timing, decision_epoch=(steps - lead) * quiet.timing.control_period))
    assert shorter.timing.steps_per_epoch == steps - lead
    actions = np.random.default_rng(4).integers(1, 3, n)  # every worker heads for a neighbouring zone
    for seed in range(3):
        expected = FleetSim(shorter, n=n, seed=seed).step_epoch(actions, 2)[0]
        sim = FleetSim(quiet, n=n, seed=seed)
        start = sim.zones()
        end = sim.step_epoch(actions, 2, lead=lead)[0]
        assert np.array_equal(sim.read_zones, expected)
        assert (expected != start).any() and (expected != end).any()  # between the two, for some workers
        lagged = LaggedFleet(quiet, n=n, seed=seed)
        lagged.step_epoch(actions, 2, lead=lead)
        assert np.array_equal(lagged.read_zones, expected)
        for read, at in ((0, end), (steps, start)):
            edge = FleetSim(quiet, n=n, seed=seed)
            edge.step_epoch(actions, 2, lead=read)
            assert np.array_equal(edge.read_zones, at)
    plain, reading = FleetSim(scenario, n=n, seed=5), FleetSim(scenario, n=n, seed=5)
    for _ in range(3):
        assert plain.step_epoch(actions, 2)[1:] == reading.step_epoch(actions, 2, lead=lead)[1:]
    assert np.array_equal(plain.poses, reading.poses)


@pytest.mark.kernels
def test_set_command_drives_one_robot(quiet):
    sim = FleetSim(quiet, n=4, seed=0)
    before = sim.poses.copy()
    sim.set_command(4, 1.0, 0.0)  # the depot
    sim.step_control()
    moved = np.hypot(*(sim.poses[:, :2] - before[:, :2]).T)
    assert moved[4] > 0 and np.all(moved[:4] == 0)
    with pytest.raises(FleetError, match="robot: must be 0..4"):
        sim.set_command(5, 0.0, 0.0)


@pytest.mark.kernels
@pytest.mark.parametrize("call, message", [
    (lambda s: s.step_epoch(np.zeros(9, dtype=int), 0), "local_actions: must be 10 integers"),
    (lambda s: s.step_epoch(np.full(10, 3), 0), "local_actions[0]: must be 0 stay, 1 next or 2 previous"),
    (lambda s: s.step_epoch(np.zeros(10, dtype=int), 5), "global_action: must be a zone in 0..4"),
    (lambda s: s.step_epoch(np.zeros(10), 0), "local_actions: must be 10 integers"),
    (lambda s: s.step_epoch(np.zeros(10, dtype=int), 0, lead=21), "lead: is 21 control steps, more than an "
                                                                   "epoch's 20: use 0..20"),
    (lambda s: s.step_epoch(np.zeros(10, dtype=int), 0, lead=-1), "lead: must be an integer >= 0"),
    (lambda s: s.set_commands(np.zeros(11), [0.0] * 10 + [np.nan]), "w[10]: must be finite"),
    (lambda s: s.set_commands(np.zeros(10), np.zeros(11)), "v: must have shape [11]"),
    (lambda s: s.reset(worker_zones=np.full(10, 5)), "worker_zones[0]: must be a zone in 0..4"),
    (lambda s: FleetSim(s.scenario, n=0), "n: must be an integer >= 1"),
])
def test_bad_arguments_raise_named_errors(scenario, call, message):
    sim = FleetSim(scenario, n=10, seed=0)
    with pytest.raises(FleetError) as err:
        call(sim)
    assert str(err.value).startswith(message)


@pytest.mark.kernels
def test_commanded_steps_draw_the_stalls_and_noise_of_the_epochs_they_emulate(scenario):
    """Driven a control step at a time with the ring controller (LaggedFleet at lag 0: what the ROS
    fleet_sim node and the local agents do), FleetSim(seed) sees the stalls and noise that
    FleetSim(seed).step_epoch draws: the same zones and stalls every epoch, poses equal to rounding
    (the epoch kernel carries cos/sin of the yaw along the arcs, step_control recomputes them).
    So a ROS run and its offline twin (rollout.same_noise_as) share their noise."""
    from altmarl_ros.experiments.actuation_lag import LaggedFleet

    stormy = dataclasses.replace(scenario, faults=Faults(stall_probability=0.3, stall_duration_min=0.5,
                                                          stall_duration_max=3.0))
    n, rng = 50, np.random.default_rng(9)
    offline, stepped, other = (FleetSim(stormy, n=n, seed=11), LaggedFleet(stormy, n=n, seed=11),
                               LaggedFleet(stormy, n=n, seed=12))
    stalled = 0
    for _ in range(6):
        actions, a_g = rng.integers(0, 3, n), int(rng.integers(0, 5))
        zones, depot, reward = offline.step_epoch(actions, a_g)
        stepped_zones, stepped_depot, stepped_reward = stepped.step_epoch(actions, a_g)
        assert np.array_equal(stepped_zones, zones) and stepped_depot == depot
        assert stepped_reward == pytest.approx(reward, abs=1e-9)
        np.testing.assert_allclose(stepped.poses, offline.poses, atol=1e-9)
        np.testing.assert_allclose(stepped.stall_remaining, offline.stall_remaining, atol=1e-9)
        other.step_epoch(actions, a_g)
        stalled += int(np.count_nonzero(offline.stall_remaining > 0))
    assert stalled > 0  # the stalls were exercised
    assert not np.allclose(other.poses, offline.poses)  # another seed draws other noise


@pytest.mark.kernels
def test_fleet_arguments_that_do_not_fit_are_named(scenario):
    """Zones: integer indices, one per robot, inside the ring; poses: (n + 1, 3) finite; commands finite;
    a scenario that is a Scenario. The nearest valid value of each is accepted."""
    fleet = FleetSim(scenario, n=3, seed=0)
    z = scenario.ring.n_zones
    end, _ = epoch_from_rest(scenario, [0, z - 1], [1, 0])
    assert end.shape == (2,)
    rows = [(lambda: epoch_from_rest(scenario, [[0, 1]], [[1, 0]]), "start_zones: must be a 1-D array"),
            (lambda: epoch_from_rest(scenario, [0.0, 1.0], [1, 0]), "start_zones: must be 2 integer zone indices"),
            (lambda: epoch_from_rest(scenario, [0, 1], [1]), "goal_zones: must be 2 integer zone indices"),
            (lambda: epoch_from_rest(scenario, [0, z], [1, 0]), "start_zones"),
            (lambda: epoch_from_rest("warehouse_ring", [0], [1]), "scenario: must be a Scenario"),
            (lambda: FleetSim("warehouse_ring"), "scenario: must be a Scenario"),
            (lambda: fleet.start_from(np.zeros((3, 3))), r"poses: must be \(4, 3\) finite"),
            (lambda: fleet.start_from(np.full((4, 3), np.nan)), r"poses: must be \(4, 3\) finite"),
            (lambda: fleet.set_command(3, float("inf"), 0.0), "v: must be finite, got inf"),
            (lambda: fleet.set_command(3, 0.0, float("nan")), "w: must be finite, got nan")]
    for call, detail in rows:
        with pytest.raises(FleetError, match=detail):
            call()
    fleet.set_command(3, 0.5, -0.5)  # the depot, finite: accepted
    fleet.start_from(np.zeros((4, 3)))
