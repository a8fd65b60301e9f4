"""Continuous-state games (altmarl_ros/core/continuous.py): Setup B's dynamics, rewards, start and summary
against closed forms and numpy.histogram, random play against the authors' published figure, and the
tabular adapter's sampler against its model's kernels. No JAX here."""
import numpy as np
import pytest

from _learn_reference import random_game
from altmarl_ros.core.continuous import BimodalLine, TabularGame, continuous_model
from altmarl_ros.core.counts import rank
from altmarl_ros.core.fa_policy import global_observation
from altmarl_ros.errors import ModelError

SETUP_B = BimodalLine()
EDGES = np.linspace(-2.0, 2.0, 6)


def test_setup_b_is_the_readme_environment():
    assert continuous_model("setup_b") == SETUP_B
    assert (SETUP_B.n_ag, SETUP_B.n_al, SETUP_B.default_n, SETUP_B.gamma) == (5, 3, 500, 0.95)
    assert SETUP_B.targets == pytest.approx([-1.6, -0.8, 0.0, 0.8, 1.6])
    assert (SETUP_B.horizon_train, SETUP_B.horizon_eval) == (40, 50)
    with pytest.raises(ModelError, match="'setup_c' is neither a model file nor a built-in continuous model"):
        continuous_model("setup_c")


def test_transitions_have_the_readme_means_and_spreads_and_stay_in_range():
    rng = np.random.default_rng(1)
    draws = 200_000
    s_g = SETUP_B.sample_global(np.full(draws, 0.3), np.full(draws, 4), rng)  # target 1.6
    assert s_g.mean() == pytest.approx(0.3 + 0.6 * (1.6 - 0.3), abs=4 * 0.08 / np.sqrt(draws))
    assert s_g.std() == pytest.approx(0.08, rel=0.01)
    s_l = SETUP_B.sample_local(np.full(draws, -0.5), np.zeros(draws), np.full(draws, 2), rng)  # -0.05
    assert s_l.mean() == pytest.approx(-0.55, abs=4 * 0.04 / np.sqrt(draws))
    assert s_l.std() == pytest.approx(0.04, rel=0.01)
    edge = SETUP_B.sample_local(np.full(draws, 1.99), np.zeros(draws), np.full(draws, 1), rng)
    # 1.99 + 0.05 + 0.04 N(0,1) >= 2 (clipped to 2) when N >= -1: probability Phi(1) = 0.8413
    assert edge.max() == 2.0 and (edge == 2.0).mean() == pytest.approx(0.8413, abs=0.005)


def test_rewards_are_the_readme_formulas():
    assert SETUP_B.reward_global(np.array(0.8), np.array(3)) == pytest.approx(5.0)
    assert SETUP_B.reward_global(np.array(0.5), np.array(3)) == pytest.approx(5 * np.exp(-0.09 / 0.18))
    r_l = SETUP_B.reward_local(np.array([0.1, 0.1, 0.1]), np.array(0.3), np.array([0, 1, 2]))
    align = 10 * np.exp(-0.04 / 0.08)
    assert r_l == pytest.approx([align, align - 0.25, align - 0.25])
    assert SETUP_B.reward_span == pytest.approx(10.25)


def test_start_is_a_55_45_split_of_two_distinct_bins():
    s_g, s_l = SETUP_B.initial(np.random.default_rng(2), 500, 400)
    assert s_l.shape == (400, 500) and s_g.min() >= -1.0 and s_g.max() <= 1.0
    counts = np.stack([np.histogram(row, EDGES)[0] for row in s_l])
    top2 = np.sort(counts, axis=1)[:, -2:]
    # clusters N(centre, 0.18^2) stay in their 0.8-wide bin with probability 0.974 (outer bins: clipped in)
    assert top2.sum(axis=1).mean() > 0.95 * 500
    assert np.mean(top2[:, 1] > top2[:, 0]) > 0.97
    assert abs(top2[:, 1].mean() - 275 * 0.98) < 10
    pairs = {tuple(sorted(np.argsort(c)[-2:])) for c in counts}
    assert len(pairs) == 10  # every pair of distinct bins occurs
    assert np.array_equal(SETUP_B.mode_bin(s_l), counts.argmax(axis=1))


def test_summary_is_the_normalised_numpy_histogram():
    sampled = np.random.default_rng(3).uniform(-2.2, 2.2, (50, 7)).clip(-2, 2)
    sampled[0, :3] = [-2.0, 2.0, -1.2]  # the range's ends and an interior edge
    expected = np.stack([np.histogram(row, EDGES)[0] / 7 for row in sampled])
    assert SETUP_B.summary(sampled) == pytest.approx(expected)
    features = global_observation(SETUP_B, np.full(50, 0.25), SETUP_B.summary(sampled), "state+summary")
    assert features.shape == (50, 6) and features[:, 0] == pytest.approx(0.25)


def test_random_play_matches_the_authors_figure():
    """Both sides uniform, their protocol (10 seeds x 30 rollouts, horizon 50): the authors report
    37.8 +- 10.9 (std over the 300 rollouts), so the mean is known to +- 0.63 (their standard error)."""
    returns = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        s_g, s_l = SETUP_B.initial(rng, 500, 30)
        total, discount = np.zeros(30), 1.0
        for _ in range(50):
            a_g, a_l = rng.integers(5, size=30), rng.integers(3, size=(30, 500))
            total += discount * (SETUP_B.reward_global(s_g, a_g) + SETUP_B.reward_local(s_l, s_g[:, None], a_l).mean(1))
            discount *= 0.95
            s_g, s_l = SETUP_B.sample_global(s_g, a_g, rng), SETUP_B.sample_local(s_l, s_g[:, None], a_l, rng)
        returns.extend(total)
    standard_error = np.hypot(10.9, np.std(returns)) / np.sqrt(300)
    assert abs(np.mean(returns) - 37.8) < 3 * standard_error
    assert np.std(returns) == pytest.approx(10.9, rel=0.15)


def test_tabular_adapter_samples_its_kernels_and_reads_count_vectors():
    game = random_game(3, n_sg=2, n_ag=2, n_sl=3, n_al=2)
    adapter = TabularGame(game)
    rng = np.random.default_rng(4)
    draws = 100_000
    nxt = adapter.sample_local(np.full(draws, 2), np.full(draws, 1), np.full(draws, 0), rng)
    assert np.bincount(nxt, minlength=3) / draws == pytest.approx(game.P_l[2, 1, 0], abs=0.01)
    nxt = adapter.sample_global(np.full(draws, 0), np.full(draws, 1), rng)
    assert np.bincount(nxt, minlength=2) / draws == pytest.approx(game.P_g[0, 1], abs=0.01)
    sampled = np.array([[0, 2, 2, 1], [1, 1, 1, 1]])
    summary = adapter.summary(sampled)
    assert summary.argmax(axis=1).tolist() == [rank(np.array([1, 1, 2])), rank(np.array([0, 4, 0]))]
    assert summary.sum(axis=1).tolist() == [1.0, 1.0]
    assert adapter.reward_local(np.array([2]), np.array([1]), np.array([0])) == pytest.approx(game.r_l[2, 1, 0])
