"""ALTERNATING-MARL: the returned pair is an equilibrium up to the reported gap; the 2*eta rule."""
import math

import numpy as np
import pytest

from _learn_reference import exact_Q, exact_surrogate, initial_weights, random_game
from altmarl_ros.core.alternating import (ETA_C, alternating_marl, best_constant_start,
                                          constant_global_welfare, default_eta)
from altmarl_ros.core.glearn import global_best_response_gain
from altmarl_ros.core.llearn import local_best_response_gain
from altmarl_ros.errors import LearnError

K = 3


@pytest.fixture(scope="module")
def game():
    return random_game(31, n_sg=2, n_ag=3, n_sl=3, n_al=3, gamma=0.9)


@pytest.fixture(scope="module")
def run(game):
    logs = []
    return alternating_marl(game, K, m=30, rounds=10, eta=0.0, seed=4, start="uniform",
                            progress=logs.append), logs


def test_unilateral_gains_at_the_returned_pair_are_within_the_gap(game, run):
    result, _ = run
    global_gain = global_best_response_gain(game, result.pi_g, result.pi_l, K, m=30, seed=4)
    local_gain = local_best_response_gain(game, result.pi_g, result.pi_l, K)
    slack = 2 * 2 * game.gamma * 1e-6 / (1 - game.gamma)  # two gain estimates at gain_tol = 1e-6
    assert global_gain <= result.nash_gap + slack
    assert local_gain <= result.nash_gap + 1e-9
    assert result.nash_gap == max(result.global_gain, result.local_gain)


def test_round_log_follows_the_rule(game, run):
    result, logs = run
    assert logs == result.rounds and len(logs) >= 2
    accepted = [log for log in logs if log.accepted]
    assert [log.round for log in logs] == list(range(len(logs)))
    assert all(log.accepted for log in logs[:-1])  # only the last round can be rejected
    welfare = [log.welfare_estimate for log in accepted]
    assert all(b > a + 2 * result.eta for a, b in zip(welfare, welfare[1:]))
    last = accepted[-1]
    assert (result.welfare_estimate, result.nash_gap) == (last.welfare_estimate, last.nash_gap)
    assert result.converged and all(log.g_residual <= 1e-4 for log in logs)
    assert all(log.local_gain >= 0 and log.global_gain >= 0 for log in accepted)
    assert accepted[0].local_gain > 0.01  # uniform locals were exploitable: a real first step


def test_large_eta_rejects_the_first_improvement_and_keeps_round_zero(game):
    result = alternating_marl(game, K, rounds=5, eta=1e6, seed=4, start="uniform")
    assert [log.accepted for log in result.rounds] == [True, False]
    assert math.isnan(result.rounds[1].nash_gap)
    assert np.allclose(result.pi_l, 1 / game.n_al)  # the uniform start
    assert "2*eta" in result.stop_reason and result.converged


def test_constant_global_welfare_is_the_exact_surrogate_value(game):
    """With a constant a_g the k-agent surrogate's exact value equals the pair-chain welfare."""
    pi_l = np.random.default_rng(1).dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg))
    R, P = exact_surrogate(game, pi_l, K)
    for a_g in range(game.n_ag):
        policy = np.full(R.shape[:2], a_g)
        V = np.take_along_axis(exact_Q(game, R, P, policy), policy[..., None], 2)[..., 0]
        assert constant_global_welfare(game, a_g, pi_l) == pytest.approx((initial_weights(game, K) * V).sum(),
                                                                         abs=1e-9)


def test_best_constant_start(game):
    a_g, pi_l, welfare = best_constant_start(game, K)
    assert welfare == max(constant_global_welfare(game, a, best_constant_start_pi(game, a)) for a in range(game.n_ag))
    result = alternating_marl(game, K, rounds=3, seed=4)
    assert result.start.startswith(f"best_constant: a_g = {a_g},")
    # the constant a_g is one of G-LEARN's policies: round 0 starts at least there (m = 30 noise aside)
    assert result.rounds[0].welfare_estimate > welfare - 0.1


def best_constant_start_pi(game, a_g):
    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.llearn import l_learn
    return l_learn(game, np.full((game.n_sg, n_count_vectors(K, game.n_sl)), a_g, np.int32), K).pi_l


def test_round_cap(game):
    result = alternating_marl(game, K, rounds=1, seed=4, start="uniform")
    assert len(result.rounds) == 1 and not result.converged


def test_default_eta(game):
    expected = ETA_C * (game.r_l.max() - game.r_l.min()) / ((1 - game.gamma) * math.sqrt(K))
    assert default_eta(game, K) == pytest.approx(expected)
    assert alternating_marl(game, K, rounds=1).eta == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, field", [(dict(eta=-1.0), "eta"), (dict(rounds=0), "rounds"),
                                           (dict(gain_tol=0.0), "gain_tol"), (dict(start="best"), "start"),
                                           (dict(start=np.ones((3, 2, 3))), "start[0, 0, :]")])
def test_bad_arguments_name_the_field(game, kwargs, field):
    with pytest.raises(LearnError) as raised:
        alternating_marl(game, K, **kwargs)
    assert raised.value.field == field
