"""The bridge from the kinematic simulator to learning and back (sim/estimate.py,
sim/sampler.py, sim/rollout.py, sim/render.py, train/evaluate/render --scenario).

References are independent of the code under test: transitions and rewards counted
from FleetSim.step_epoch trajectories (the simulator's public offline API), a closed
form for a fleet that never moves, and Pillow reading the pictures back.
"""
import json

import numpy as np
import pytest
from PIL import Image

from altmarl_ros.cli import main
from altmarl_ros.core.counts import n_count_vectors, rank
from altmarl_ros.core.policy import load_policy
from altmarl_ros.core.sampler import as_game
from altmarl_sim import estimate as estimate_module
from altmarl_sim.estimate import estimate_model
from altmarl_sim.fleet import FleetSim
from altmarl_sim.render import record_frames, render
from altmarl_sim.rollout import policy_sim_welfare, run_episode, sim_rollout_welfare
from altmarl_sim.sampler import SamplerError, SimSampler
from altmarl_sim.scenario import load_scenario, parse_scenario

SCENARIO = load_scenario("warehouse_ring")


def variant(**sections):
    """warehouse_ring with some YAML sections' keys replaced."""
    data = SCENARIO.to_dict()
    for section, values in sections.items():
        data[section].update(values)
    return parse_scenario(data, name="variant")


@pytest.fixture(scope="module")
def model():
    return estimate_model(SCENARIO, samples_per_pair=1000, seed=3, runs_dir=None)


def test_estimated_rows_are_stochastic_with_the_requested_counts(model):
    game, counts = model
    assert np.allclose(game.P_l.sum(axis=-1), 1.0) and np.allclose(game.P_g.sum(axis=-1), 1.0)
    assert (counts.local_counts.sum(axis=-1) == 1000).all()
    assert (counts.global_counts.sum(axis=-1) == 1000).all()
    assert game.gamma == SCENARIO.gamma and np.array_equal(game.mu0_l, SCENARIO.mu0_l)


def test_local_model_matches_step_epoch_trajectories(model):
    """A running FleetSim with uniformly random local actions, counted directly, is the
    process the local exploration pool samples from."""
    game, _ = model
    z = SCENARIO.ring.n_zones
    sim = FleetSim(SCENARIO, n=3000, seed=11)
    rng = np.random.default_rng(5)
    counts = np.zeros((z, 3, z))
    metres = np.zeros((z, 3))
    for epoch in range(25):
        start, depot = sim.zones(), sim.depot_zone()
        actions = rng.integers(0, 3, sim.n)
        end, _, _ = sim.step_epoch(actions, int(rng.integers(z)))
        if epoch >= 10:  # past the start at rest
            np.add.at(counts, (start, actions, end), 1)
            served = SCENARIO.rewards.service * (start == depot)
            driven = (served - sim.last_local_rewards) / SCENARIO.rewards.worker_energy
            np.add.at(metres, (start, actions), driven)
    n = counts.sum(axis=-1)
    reference = counts / n[..., None]
    estimated = game.P_l.mean(axis=1)  # workers' motion does not depend on s_g
    assert np.abs(estimated - reference).max() < 0.04
    energy = -(game.r_l - SCENARIO.rewards.service * np.eye(z)[:, :, None]).mean(axis=1)
    assert np.allclose(energy, SCENARIO.rewards.worker_energy * metres / n, rtol=0.1, atol=0.01)


def test_global_model_matches_depot_trajectories(model):
    game, _ = model
    z = SCENARIO.ring.n_zones
    sim = FleetSim(SCENARIO, n=1, seed=2)
    rng = np.random.default_rng(9)
    counts = np.zeros((z, z, z))
    for epoch in range(6000):
        start, a_g = sim.depot_zone(), int(rng.integers(z))
        _, end, _ = sim.step_epoch(np.zeros(1, np.int64), a_g)
        if epoch >= 10:
            counts[start, a_g, end] += 1
    reference = counts / counts.sum(axis=-1, keepdims=True)
    assert np.abs(game.P_g - reference).max() < 0.1


def test_estimate_converges_as_samples_grow(model):
    reference, _ = model
    errors = [np.abs(estimate_model(SCENARIO, samples_per_pair=s, seed=s, runs_dir=None)[0].P_l
                     - reference.P_l).max() for s in (10, 250)]
    assert errors[1] < 0.5 * errors[0]


def test_estimate_is_deterministic_per_seed():
    first = estimate_model(SCENARIO, samples_per_pair=20, seed=1, runs_dir=None)[0]
    again = estimate_model(SCENARIO, samples_per_pair=20, seed=1, runs_dir=None)[0]
    other = estimate_model(SCENARIO, samples_per_pair=20, seed=2, runs_dir=None)[0]
    assert first.content_hash() == again.content_hash() != other.content_hash()


def test_cache_is_reused_and_invalidated_by_a_scenario_change(tmp_path, monkeypatch):
    game, _ = estimate_model(SCENARIO, samples_per_pair=20, runs_dir=tmp_path)
    assert (tmp_path / "warehouse_ring" / "model.npz").is_file()

    def no_simulation(*args, **kwargs):
        raise AssertionError("estimated again although the cache matches")

    monkeypatch.setattr(estimate_module, "tabulate", no_simulation)
    cached, counts = estimate_model(SCENARIO, samples_per_pair=20, runs_dir=tmp_path)
    assert cached.content_hash() == game.content_hash()
    assert (counts.local_counts.sum(axis=-1) == 20).all()
    monkeypatch.undo()
    changed = parse_scenario({**SCENARIO.to_dict(), "gamma": 0.9}, name="warehouse_ring")
    recomputed, _ = estimate_model(changed, samples_per_pair=20, runs_dir=tmp_path)
    assert recomputed.gamma == 0.9


def test_sampler_pooled_by_the_learner_matches_the_estimated_model(model):
    game, _ = model
    pooled = as_game(SimSampler(SCENARIO, seed=7, reward_samples=200), pool=400, seed=0)
    assert np.abs(pooled.P_l - game.P_l).max() < 0.1
    assert np.abs(pooled.P_g - game.P_g).max() < 0.1
    assert np.abs(pooled.r_l - game.r_l).max() < 0.05


@pytest.mark.kernels
def test_sampler_names_a_zone_its_robots_never_reach():
    crawling = variant(robots={"max_speed": 1e-4})
    sampler = SimSampler(crawling, pool_size=2)  # robots in zones 0 and 1 only
    with pytest.raises(SamplerError, match="zone 3"):
        sampler.sample_local(np.array([3]), np.array([0]), np.array([0]))
    with pytest.raises(SamplerError, match=r"a_l\[0\]"):
        sampler.sample_local(np.array([0]), np.array([0]), np.array([3]))


@pytest.mark.kernels
def test_rollout_welfare_of_a_fleet_that_stays_at_the_depot():
    """All workers start in the depot's zone, nobody moves: every epoch pays `service`
    per worker, so welfare is service * (1 - gamma^H) / (1 - gamma) (energy ~ 0)."""
    still = variant(fleet={"start_zone_weights": [1, 0, 0, 0, 0], "depot_start_zone": 0},
                    noise={"speed_std": 0.0, "turn_rate_std": 0.0},
                    faults={"stall_probability": 0.0})
    z, k, horizon = still.ring.n_zones, 3, 30
    stay = np.zeros((z, z, 3))
    stay[..., 0] = 1.0
    pi_g = np.zeros((z, n_count_vectors(k, z)), np.int32)
    welfare = sim_rollout_welfare(still, pi_g, stay, k, n=30, horizon=horizon, seeds=2, rollouts=2)
    closed_form = still.rewards.service * (1 - still.gamma ** horizon) / (1 - still.gamma)
    assert welfare.mean == pytest.approx(closed_form, rel=0.01)
    assert welfare.mean <= closed_form
    calls = []
    again = sim_rollout_welfare(still, pi_g, stay, k, n=30, horizon=horizon, seeds=2, rollouts=2,
                                progress=lambda done, total: calls.append((done, total)))
    assert np.array_equal(welfare.returns, again.returns)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.kernels
def test_twin_rollouts_share_the_fleets_start_and_noise_and_same_start_ones_only_its_start():
    """same_noise_as(s): every rollout is FleetSim(s) itself, so a constant dispatcher whose workers stay put
    earns exactly what FleetSim(s) stepped by hand earns, in every rollout (its noise and stalls are s's);
    starting_like(s) rollouts start there too but draw their own noise, so they spread."""
    from altmarl_sim.rollout import same_noise_as, starting_like

    stormy = variant(faults={"stall_probability": 0.3})
    z, k, n, horizon = stormy.ring.n_zones, 3, 12, 6
    stay = np.zeros((z, z, 3))
    stay[..., 0] = 1.0
    pi_g = np.full((z, n_count_vectors(k, z)), 2, np.int32)  # the depot heads for zone 2 whatever it sees
    by_hand = FleetSim(stormy, n=n, seed=7)
    expected, discount = 0.0, 1.0
    for _ in range(horizon):
        expected += discount * by_hand.step_epoch(np.zeros(n, np.int64), 2)[2]
        discount *= stormy.gamma
    twin = sim_rollout_welfare(stormy, pi_g, stay, k, n=n, horizon=horizon, seeds=2, rollouts=3, seed=1,
                               fleet=same_noise_as(7))
    assert np.all(twin.returns == expected)
    start = sim_rollout_welfare(stormy, pi_g, stay, k, n=n, horizon=horizon, seeds=2, rollouts=3, seed=1,
                                fleet=starting_like(7))
    assert np.unique(start.returns).size > 1


def test_rollout_samples_k_distinct_workers_afresh_every_epoch():
    """A depot table that reveals what it saw. With k = n the coordinator must see the whole fleet,
    so each epoch's a_g is the table entry of all workers' zone counts; with k < n the k sampled
    workers are distinct and each worker is sampled in a share k/n of the epochs."""
    z = SCENARIO.ring.n_zones
    uniform = np.full((z, z, 3), 1 / 3)
    for k, n, epochs in ((6, 6, 40), (3, 6, 400)):
        pi_g = np.random.default_rng(k).integers(0, z, (z, n_count_vectors(k, z))).astype(np.int32)
        seen = []

        def on_epoch(sim, sampled, a_g, pi_g=pi_g, k=k, n=n, seen=seen):
            everyone = pi_g[sim.depot_zone(), rank(np.bincount(sim.zones(), minlength=z))] if k == n else None
            seen.append((sampled.copy(), a_g, everyone))

        run_episode(FleetSim(SCENARIO, n=n, seed=1), pi_g, uniform, k, epochs, np.random.default_rng(2), on_epoch)
        assert len(seen) == epochs and all(len(set(sampled.tolist())) == k for sampled, _, _ in seen)
        if k == n:
            assert [a_g for _, a_g, _ in seen] == [full for _, _, full in seen]
        else:
            share = np.bincount(np.concatenate([sampled for sampled, _, _ in seen]), minlength=n) / epochs
            assert np.abs(share - k / n).max() < 0.1  # sd of a share ~0.025


@pytest.mark.kernels
def test_rollout_measures_the_observers_error_against_the_fleets_zones():
    """The simulator knows every worker's zone: a fresh sample's TV error is recomputed here from
    the sampled ids and sim.zones() that on_epoch sees, it is exactly 0 when k = n, and the
    uniformly random baseline runs no observer (NaN, not a number made up)."""
    z = SCENARIO.ring.n_zones
    uniform = np.full((z, z, 3), 1 / 3)
    k, n, epochs = 3, 12, 30
    pi_g = np.random.default_rng(0).integers(0, z, (z, n_count_vectors(k, z))).astype(np.int32)
    expected, measured = [], []

    def on_epoch(sim, sampled, a_g):
        zones = sim.zones()
        fleet = np.bincount(zones, minlength=z) / n
        expected.append(0.5 * np.abs(np.bincount(zones[sampled], minlength=z) / k - fleet).sum())

    run_episode(FleetSim(SCENARIO, n=n, seed=1), pi_g, uniform, k, epochs, np.random.default_rng(2), on_epoch,
                errors=measured)
    assert len(measured) == epochs and np.allclose(measured, expected) and max(measured) > 0
    sizes = dict(horizon=5, seeds=1, rollouts=2)
    everyone = np.zeros((z, n_count_vectors(n, z)), np.int32)
    assert sim_rollout_welfare(SCENARIO, everyone, uniform, n, n=n, **sizes).estimation_error == 0.0
    sampled = sim_rollout_welfare(SCENARIO, pi_g, uniform, k, n=n, **sizes).estimation_error
    assert 0.0 < sampled <= 1.0
    assert np.isnan(sim_rollout_welfare(SCENARIO, None, uniform, k, n=n, **sizes).estimation_error)


@pytest.mark.kernels
def test_rollout_runs_the_fresh_observer_it_is_given_and_a_filter_only_with_its_model():
    """Passing the paper's fresh observer is the default deployment (bit for bit), and needs no
    prediction model; a filter without the model it predicts with is refused, naming `prediction`."""
    from altmarl_ros.core.observers import ObserverSpec, fresh
    from altmarl_sim.rollout import RolloutError

    z = SCENARIO.ring.n_zones
    uniform = np.full((z, z, 3), 1 / 3)
    k, sizes = 3, dict(n=8, horizon=5, seeds=1, rollouts=2)
    pi_g = np.random.default_rng(0).integers(0, z, (z, n_count_vectors(k, z))).astype(np.int32)
    default = sim_rollout_welfare(SCENARIO, pi_g, uniform, k, **sizes)
    given = sim_rollout_welfare(SCENARIO, pi_g, uniform, k, observer=fresh(k), **sizes)
    assert np.array_equal(given.returns, default.returns) and given.estimation_error == default.estimation_error
    with pytest.raises(RolloutError) as raised:
        sim_rollout_welfare(SCENARIO, pi_g, uniform, k, observer=ObserverSpec("filter", 0.5, k), **sizes)
    assert raised.value.field == "prediction"


@pytest.mark.kernels
def test_without_reply_loss_or_state_lead_the_rollouts_are_those_of_before():
    """reply_loss 0 and state_lead 0 (the defaults) draw and read as before the options existed: the
    returns recorded on main at d014f3a (rel 1e-12 leaves another libm its last bits), all k replies."""
    z = SCENARIO.ring.n_zones
    uniform = np.full((z, z, 3), 1 / 3)
    pi_g = np.random.default_rng(3).integers(0, z, (z, n_count_vectors(2, z))).astype(np.int32)
    sizes = dict(n=6, horizon=3, seeds=1, rollouts=2, seed=9)
    default = sim_rollout_welfare(SCENARIO, pi_g, uniform, 2, **sizes)
    explicit = sim_rollout_welfare(SCENARIO, pi_g, uniform, 2, reply_loss=0.0, state_lead=0, **sizes)
    assert np.array_equal(default.returns, explicit.returns) and default.replies == 2.0
    assert default.returns.ravel().tolist() == pytest.approx([5.013199175500414, 5.961308045524902], rel=1e-12)


@pytest.mark.kernels
@pytest.mark.parametrize("reply_loss", [0.1, 0.9])
def test_each_sampled_reply_is_lost_with_probability_reply_loss(reply_loss):
    """Over 4,000 decisions of k = 10 from 50 workers, the replies kept are k (1 - reply_loss) on average
    (within 5 standard errors of the binomial), the ids a distinct subset of the workers, the zone counts
    theirs; without loss all k arrive."""
    from altmarl_sim.rollout import sample_workers

    rng, zones, k, decisions = np.random.default_rng(3), np.arange(50) % 4, 10, 4000
    kept = 0
    for _ in range(decisions):
        ids, counts = sample_workers(zones, k, 4, rng, reply_loss)
        assert len(set(ids.tolist())) == ids.size <= k and np.array_equal(counts, np.bincount(zones[ids], minlength=4))
        kept += ids.size
    trials = k * decisions
    assert abs(kept - trials * (1 - reply_loss)) <= 5 * np.sqrt(trials * reply_loss * (1 - reply_loss))
    assert sample_workers(zones, k, 4, rng)[0].size == k


def test_rollout_decides_on_the_replies_that_arrive_read_state_lead_steps_early():
    """A fresh rollout with replies lost at p = 0.5 and the states read 6 control steps before each
    epoch's end, checked decision by decision from what on_epoch sees: the ids that answered are distinct;
    a decision with replies is pi_g at their zones in sim.read_zones (the start's at the first decision)
    scaled to k (core.observer); one without keeps the last a_g; the first waits for a reply. Reading
    the end zones instead would change some decisions."""
    from altmarl_ros.core.observer import scale_counts
    from altmarl_sim.rollout import RolloutError

    z = SCENARIO.ring.n_zones
    uniform = np.full((z, z, 3), 1 / 3)
    k, n, epochs, lead = 3, 8, 80, 6
    pi_g = np.random.default_rng(1).integers(0, z, (z, n_count_vectors(k, z))).astype(np.int32)
    seen, replies = [], []

    def on_epoch(sim, ids, a_g):
        seen.append((ids.copy(), a_g, sim.depot_zone(), sim.read_zones.copy(), sim.zones()))

    sim = FleetSim(SCENARIO, n=n, seed=1)
    start = sim.zones()
    run_episode(sim, pi_g, uniform, k, epochs, np.random.default_rng(2), on_epoch, reply_loss=0.5,
                state_lead=lead, replies=replies)
    assert np.array_equal(seen[0][3], start) and len(seen[0][0]) > 0
    last, silent, early = None, 0, 0
    for ids, a_g, s_g, read, now in seen:
        assert len(set(ids.tolist())) == len(ids) <= k
        if len(ids):
            assert a_g == pi_g[s_g, rank(scale_counts(np.bincount(read[ids], minlength=z), k))]
            early += a_g != pi_g[s_g, rank(scale_counts(np.bincount(now[ids], minlength=z), k))]
        else:
            assert a_g == last
            silent += 1
        last = a_g
    assert replies == [len(ids) for ids, *_ in seen]
    assert silent > 0 and early > 0  # both rules were exercised
    firsts = []  # 40 first decisions: about 5 hear nobody at first and ask again
    for seed in range(40):
        run_episode(FleetSim(SCENARIO, n=n, seed=seed), pi_g, uniform, k, 1, np.random.default_rng(seed),
                    reply_loss=0.5, replies=firsts)
    assert min(firsts) > 0
    sizes = dict(n=n, horizon=2, seeds=1, rollouts=1)
    for bad, field in ((dict(reply_loss=1.0), "reply_loss"), (dict(state_lead=21), "state_lead")):
        with pytest.raises(RolloutError) as raised:
            sim_rollout_welfare(SCENARIO, pi_g, uniform, k, **bad, **sizes)
        assert raised.value.field == field


@pytest.mark.kernels
def test_rollout_takes_k_up_to_n_and_reports_its_own_duration():
    import time

    from altmarl_sim.rollout import RolloutError

    z = SCENARIO.ring.n_zones
    uniform = np.full((z, z, 3), 1 / 3)
    with pytest.raises(RolloutError, match="k = 5 exceeds the number of workers n = 4"):
        sim_rollout_welfare(SCENARIO, None, uniform, 5, n=4, horizon=2, seeds=1, rollouts=1)
    started = time.perf_counter()
    everyone = sim_rollout_welfare(SCENARIO, None, uniform, 4, n=4, horizon=2, seeds=1, rollouts=2)
    assert 0 < everyone.seconds <= time.perf_counter() - started  # the time of the rollouts, not a clock reading
    assert everyone.agent_steps == 2 * 4 * 2
    one = sim_rollout_welfare(SCENARIO, None, uniform, 1, n=1, horizon=1, seeds=1, rollouts=1)  # the smallest run
    assert one.returns.shape == (1, 1) and np.isfinite(one.mean)


def test_render_writes_a_png_and_a_gif_with_one_frame_per_epoch(tmp_path):
    z = SCENARIO.ring.n_zones
    uniform = np.full((z, z, 3), 1 / 3)
    frames = record_frames(SCENARIO, None, uniform, k=4, n=30, epochs=3, seed=1)
    png = render(SCENARIO, frames, tmp_path / "fleet.png")
    gif = render(SCENARIO, frames, tmp_path / "fleet.gif")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 3
    assert [frame.sampled.size for frame in frames] == [4, 4, 4]


def test_train_and_evaluate_a_scenario_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The README's path with the default filter observer; its selection and final check run on a small
    # fleet (the defaults, 1000 robots x 50 rollouts per candidate, cost about 2 CPU-minutes here).
    assert main(["train", "--scenario", "warehouse_ring", "--k", "2", "--samples", "100", "--rounds", "2",
                 "--select-n", "20", "--select-rollouts", "2", "--quiet"]) == 0
    policy_path = tmp_path / "runs" / "warehouse_ring" / "policy.npz"
    policy = load_policy(policy_path, scenario_hash=SCENARIO.content_hash())
    assert policy.meta["scenario"] == {"name": "warehouse_ring", "hash": SCENARIO.content_hash()}
    assert (tmp_path / "runs" / "warehouse_ring" / "model.npz").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--scenario", "warehouse_ring", "--policy", str(policy_path), "--n", "12",
                 "--horizon", "5", "--seeds", "2", "--rollouts", "2", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["baselines"]) == {"uniform_random", "best_constant_global", "best_feedback_global"}
    assert np.isfinite(report["welfare"]) and report["policy_id"] == policy.policy_id
    assert main(["evaluate", "--scenario", "warehouse_ring", "--policy", str(policy_path), "--n", "12",
                 "--horizon", "5", "--seeds", "2", "--rollouts", "2", "--reply-loss", "0.5", "--no-baselines",
                 "--json", "--quiet"]) == 0
    lossy = json.loads(capsys.readouterr().out)
    direct = policy_sim_welfare(SCENARIO, policy, n=12, horizon=5, seeds=2, rollouts=2, reply_loss=0.5)
    assert (lossy["welfare"], lossy["replies_per_decision"]) == (direct.mean, direct.replies) != (report["welfare"], 2)
    assert main(["render", "--scenario", "warehouse_ring", "--policy", str(policy_path), "--n", "12",
                 "--epochs", "2", "--out", "fleet.gif"]) == 0
    with Image.open(tmp_path / "fleet.gif") as image:
        assert image.n_frames == 2
    assert main(["evaluate", "--scenario", "warehouse_ring_hard", "--policy", str(policy_path),
                 "--quiet"]) == 2
    assert "scenario hash" in capsys.readouterr().err


@pytest.mark.kernels
def test_render_refuses_k_over_n_an_unknown_picture_type_and_no_frames(tmp_path):
    from altmarl_sim.render import RenderError

    z = SCENARIO.ring.n_zones
    pi_l = np.full((z, z, 3), 1 / 3)
    with pytest.raises(RenderError, match="k: k = 3 exceeds the number of workers n = 2: use k <= n"):
        record_frames(SCENARIO, None, pi_l, 3, 2, 1)
    frames = record_frames(SCENARIO, None, pi_l, 2, 2, 1)  # k = n: accepted
    assert len(frames) == 1
    with pytest.raises(RenderError, match=r"out: .*x\.jpg: picture files end in \.png or \.gif"):
        render(SCENARIO, frames, tmp_path / "x.jpg")
    with pytest.raises(RenderError, match="epochs: no frames to draw: run at least one epoch"):
        render(SCENARIO, [], tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
