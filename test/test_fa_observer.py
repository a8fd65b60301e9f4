"""Observers of continuous games (altmarl_ros/core/fa_observer.py, their run in core/fa_learn.py): the weights
against the tabular filter's gain rule (core/observer.correct_kernel) and written out; the filter's prediction
against the exact chain of a tabular game and Setup B's Gaussian steps; in the n-agent rollouts, the estimate's
mean and variance against closed forms on a frozen fleet, filter = pool when nothing moves, and the filter
unbiased where pool lags a moving fleet; one-line errors for bad settings."""
import jax
import numpy as np
import pytest
from scipy.stats import norm

from _learn_reference import random_game
from altmarl_ros.core.continuous import BimodalLine, TabularGame, one_hot
from altmarl_ros.core.fa_learn import RolloutSpec, predict, rollouts
from altmarl_ros.core.fa_observer import FAObserverSpec, default_observer, observe, weights
from altmarl_ros.core.fa_policy import build_fa_policy, load_fa_policy, save_fa_policy
from altmarl_ros.core.observer import ObserverError, correct_kernel
from altmarl_ros.errors import PolicyError

SETUP_B = BimodalLine()
EDGES = np.linspace(-2.0, 2.0, 6)


def _network(n_in, n_out, action=None, seed=0):
    """One linear layer: random logits, or `action` everywhere (a large bias)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_in, n_out)).astype(np.float32)
    b = np.zeros(n_out, np.float32)
    if action is not None:
        W[:] = 0.0
        b[action] = 5.0
    return [(W, b)]


@pytest.mark.parametrize("gain, window", [(0.0, 30), (0.3, 30), (0.3, 4), (0.0, 1)])
def test_the_estimate_is_the_tabular_gain_rule_cut_at_the_window(gain, window):
    """With k samples every decision, the tabular filter's correction (g = m / (w + m), w <- (1 - gain)(w + m),
    no prediction) gives a sample of age j weight (1 - gain)^j: pool's estimate is that, over the window."""
    rng = np.random.default_rng(1)
    k, T = 7, 12
    samples = rng.uniform(-2, 2, (T, k)).astype(np.float32)
    spec = FAObserverSpec("pool", window, gain)
    kept, filled = np.zeros((window, k), np.float32), 0
    mu, weight = np.zeros(5), 0.0
    for t in range(T):
        kept, filled, estimate = observe(SETUP_B, spec, kept, filled, samples[t])
        counts = np.histogram(samples[t], EDGES)[0]
        weight = correct_kernel(mu, weight, counts.astype(np.int64), 1.0 - gain)
        ages = np.arange(min(t + 1, window))
        written = sum((1 - gain) ** j * np.histogram(samples[t - j], EDGES)[0] / k for j in ages)
        assert estimate == pytest.approx(written / ((1 - gain) ** ages).sum(), abs=1e-6)  # float32 summaries
        if window >= T:
            assert estimate == pytest.approx(mu, abs=1e-6)
        if t == 0:  # the first decision reads its sample, as fresh does
            assert estimate == pytest.approx(counts / k, abs=1e-6)
    assert filled == min(T, window)
    assert weights(spec, np.array([1, 2]))[:, :2] == pytest.approx(
        np.array([[1, 0], [1 / (2 - gain), (1 - gain) / (2 - gain)]] if window > 1 else [[1], [1]]))


def test_the_filters_prediction_is_the_tabular_chain_of_the_locals_policy():
    """A tabular game behind the continuous interface: particles in state s, moved j steps under a fixed s_g,
    are distributed as row s of P~^j, P~[s, s'] = sum_a pi_l(a | s, s_g) P_l(s' | s, s_g, a) (pi_l: the
    greedy actions of the local network), within 4.5 sigma."""
    game = random_game(7, n_sg=2, n_sl=3, n_al=2)
    adapter = TabularGame(game)
    params = _network(5, 2, seed=3)
    s_l, s_g = np.meshgrid(np.arange(3), np.arange(2), indexing="ij")
    greedy = np.argmax(adapter.local_features(s_l, s_g) @ params[0][0] + params[0][1], axis=-1)  # [s_l, s_g]
    assert len(np.unique(greedy)) == 2  # the policy is not a constant
    draws = 20_000
    for s_g in (0, 1):
        pi = one_hot(greedy[:, s_g], 2)
        P = np.einsum("sa,sat->st", pi, game.P_l[:, s_g])
        for start in range(3):
            kept = np.full((draws // 100, 100), start, np.int32)
            key = jax.random.PRNGKey(10 * s_g + start)
            for steps in range(1, 4):
                key, sub = jax.random.split(key)
                kept = predict(adapter, params, kept, np.int32(s_g), "greedy", sub)
                found = np.bincount(np.asarray(kept).ravel(), minlength=3) / draws
                exact = np.linalg.matrix_power(P, steps)[start]
                assert np.abs(found - exact).max() < 4.5 * np.sqrt(0.25 / draws) + 1e-12


def test_the_filters_prediction_takes_setup_bs_gaussian_steps():
    """Setup B's locals all stepping +0.05 (a constant network): a particle at x after j steps is
    N(x + 0.05 j, j 0.04^2) (no clipping this far inside), so its bin probabilities are normal CDF differences."""
    params = _network(2, 3, action=1)
    draws, x = 40_000, -0.9
    kept = np.full((400, 100), x, np.float32)
    key = jax.random.PRNGKey(0)
    for _ in range(24):
        key, sub = jax.random.split(key)
        kept = predict(SETUP_B, params, kept, np.float32(-1.0), "greedy", sub)
    mean, std = x + 0.05 * 24, 0.04 * np.sqrt(24)
    moved = np.asarray(kept).ravel()
    assert moved.mean() == pytest.approx(mean, abs=4 * std / np.sqrt(draws))
    exact = np.diff(norm.cdf(EDGES, mean, std))
    found = np.histogram(moved, EDGES)[0] / draws
    assert exact[2] > 0.5 and exact[3] > 0.2  # the cloud (mean 0.3) straddles the edge at 0.4
    assert np.abs(found - exact).max() < 4.5 * np.sqrt(0.25 / draws)


FROZEN = BimodalLine(offsets=(0.0, 0.0, 0.0), sigma_l=0.0)  # the locals never move


def _estimates(game, spec, params_l, *, n=20, k=3, horizon=6, batch=4000, seed=0):
    rng = np.random.default_rng(seed)
    s_g, s_l = game.initial(rng, n, batch)
    out = rollouts(game, RolloutSpec(n=n, k=k, horizon=horizon, global_mode="uniform", observer=spec,
                                     record_estimate=True),
                   None, params_l, jax.random.PRNGKey(seed), s_g, s_l)
    return np.asarray(out["estimate"], np.float64), np.asarray(out["population"], np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("gain", [0.0, 0.5])
def test_on_a_frozen_fleet_the_estimate_has_the_closed_form_mean_and_variance(gain):
    """Fixed locals, fresh uniform k-subsets without replacement each step: a bin's share in one subset has
    mean p and variance p(1 - p)/k (n - k)/(n - 1); the estimate at step t weighs t + 1 independent subsets by
    w_j, so its variance is that times sum w_j^2. The filter equals pool exactly, as nothing moves."""
    n, k, horizon = 20, 3, 6
    spec = FAObserverSpec("pool", 10, gain)
    params_l = _network(2, 3, seed=1)
    estimate, population = _estimates(FROZEN, spec, params_l, n=n, k=k, horizon=horizon)
    filtered, _ = _estimates(FROZEN, FAObserverSpec("filter", 10, gain), params_l, n=n, k=k, horizon=horizon)
    assert np.array_equal(filtered, estimate)
    assert np.array_equal(population, population[:, :1].repeat(horizon, axis=1))
    error = estimate - population  # [batch, horizon, bins]
    p = population[:, 0]
    one_subset = p * (1 - p) / k * (n - k) / (n - 1)
    batch = error.shape[0]
    for t in range(horizon):
        w = (1 - gain) ** np.arange(t + 1)
        w /= w.sum()
        variance = one_subset * (w ** 2).sum()  # [batch, bins]: each rollout's own fleet
        assert np.abs(error[:, t].mean(axis=0)).max() < 4.5 * np.sqrt(variance.mean(axis=0) / batch).max()
        z = (error[:, t] ** 2).mean(axis=0) / variance.mean(axis=0)
        assert np.abs(z - 1).max() < 0.15, (t, z)


@pytest.mark.slow
def test_the_filter_follows_a_moving_fleet_where_pool_lags():
    """Every local steps +0.05 (a constant network), so Setup B's fleet drifts right: the filter's estimate is
    unbiased at every step (its particles move as the fleet does, with their own noise), while pool's 20
    stale samples lag behind."""
    params_l = _network(2, 3, action=1)
    batch, horizon = 3000, 30
    error = {}
    for name in ("pool", "filter"):
        estimate, population = _estimates(SETUP_B, FAObserverSpec(name, 20, 0.0), params_l, n=60, k=3,
                                          horizon=horizon, batch=batch)
        error[name] = (estimate - population)[:, -10:].mean(axis=1)  # steps 20-29: a full window each
    standard_error = error["filter"].std(axis=0) / np.sqrt(batch)
    assert np.all(np.abs(error["filter"].mean(axis=0)) < 4.5 * standard_error + 1e-4)
    assert np.abs(error["pool"].mean(axis=0)).max() > 0.05  # mass left behind in bins the fleet has left


@pytest.mark.parametrize("settings, message", [
    (dict(name="kalman"), r"observer: is 'kalman'; a continuous model's observers are fresh, filter, pool$"),
    (dict(name="fresh", window=3), r"observer: fresh reads only the newest k-sample: window 1 and gain 1, got window 3 "
                                   r"and gain 1 \(use filter or pool\)"),
    (dict(name="pool", window=4, gain=1.0), r"observer.gain: is 1; pool weighs a sample of age j by \(1 - gain\)\^j"),
    (dict(name="filter", window=0, gain=0.0), r"observer.window: must be an integer >= 1, got 0"),
    (dict(name="filter", window=10 ** 6, gain=0.0), r"observer.window: is 1000000; keep at most 10000"),
    (dict(name="filter", window=4, gain=float("nan")), r"observer.gain: must be finite"),
    (dict(name="filter", window=2.5, gain=0.0), r"observer.window: must be an integer"),
])
def test_bad_observer_settings_are_one_line_errors(settings, message):
    with pytest.raises(ObserverError, match=message) as caught:
        FAObserverSpec(**settings)
    assert "\n" not in str(caught.value)


def test_defaults_and_the_policy_file_record_the_observer(tmp_path):
    assert default_observer("filter", 5, 50) == FAObserverSpec("filter", 50, 0.0)  # 250 particles
    assert default_observer("filter", 75, 50) == FAObserverSpec("filter", 6, 0.0)  # 450 particles
    assert default_observer("pool", 1, 50, gain=0.2) == FAObserverSpec("pool", 4, 0.2)
    with pytest.raises(ObserverError, match=r"observer: fresh has no window or gain \(use filter or pool\)"):
        default_observer("fresh", 5, 50, window=3)
    spec = FAObserverSpec("filter", 12, 0.25)
    networks = dict(global_params=_network(6, 4) + _network(4, 5), local_params=_network(2, 4) + _network(4, 3))
    policy = build_fa_policy(SETUP_B, 5, **networks, global_inputs="state+summary", hidden=(4,), observer=spec)
    fresh = build_fa_policy(SETUP_B, 5, **networks, global_inputs="state+summary", hidden=(4,))
    loaded = load_fa_policy(save_fa_policy(policy, tmp_path / "p.npz"), game=SETUP_B, k=5)
    assert loaded.observer == spec and loaded.meta["observer"] == {"name": "filter", "window": 12, "gain": 0.25}
    assert fresh.meta["observer"] == {"name": "fresh"} and loaded.policy_id != fresh.policy_id
    bad = {**policy.meta, "observer": {**policy.meta["observer"], "gain": 1.5}}
    with pytest.raises(PolicyError, match=r"^FA policy meta observer.gain: is 1.5; filter weighs .*gain in \[0, 1\)"):
        type(policy)(policy.global_params, policy.local_params, bad)
