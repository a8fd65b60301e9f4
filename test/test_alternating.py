"""ALTERNATING-MARL: the returned pair is an equilibrium up to the reported gap; the 2*eta rule."""
import dataclasses
import inspect
import math

import numpy as np
import pytest

from _learn_reference import (all_deterministic_local_policies, exact_Q, exact_surrogate, induced_mdp_values,
                              initial_weights, random_game)
from altmarl_ros.core.alternating import alternating_marl, best_constant_start, constant_global_welfare, default_eta
from altmarl_ros.core.glearn import global_best_response_gain
from altmarl_ros.core.llearn import local_best_response_gain
from altmarl_ros.core.model import make_game
from altmarl_ros.core.policy import uniform_local_policy
from altmarl_ros.errors import LearnError

pytestmark = pytest.mark.kernels  # all fast with NUMBA_DISABLE_JIT=1 (scripts/coverage.sh)

K = 2  # not |S_l| = 3, so a k <-> |S_l| slip changes the answers


@pytest.fixture(scope="module")
def game():
    return random_game(32, n_sg=2, n_ag=3, n_sl=3, n_al=3, gamma=0.9)  # 3 accepted rounds at eta = 0


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
    assert 0 < result.rounds[1].seconds <= result.seconds - result.rounds[0].seconds  # the rejected round's own time
    assert np.allclose(result.pi_l, 1 / game.n_al)  # the uniform start
    assert "2*eta" in result.stop_reason and result.converged


def test_the_rule_stops_at_the_first_improvement_within_2_eta(game, run):
    """The eta = 0 run shows every round's improvement d_r; with eta = 0.6 d_r (so eta < d_r <= 2 eta)
    the alternation must stop at the first round whose improvement is <= 2 eta, and return the pair before."""
    _, logs = run
    welfare = [log.welfare_estimate for log in logs if log.accepted]
    improvements = np.diff(welfare)
    assert len(improvements) >= 2 and (improvements > 0).all()
    for d in improvements:
        eta = 0.6 * d
        stop = next(r for r, gain in enumerate(improvements, start=1) if gain <= 2 * eta)
        result = alternating_marl(game, K, m=30, rounds=10, eta=eta, seed=4, start="uniform")
        assert [log.accepted for log in result.rounds] == [True] * stop + [False], (d, stop)
        assert result.welfare_estimate == welfare[stop - 1]
        assert result.stop_reason == (f"round {stop} improved the surrogate welfare by "
                                      f"{improvements[stop - 1]:.4g} <= 2*eta = {2 * eta:.4g}")


def test_gap_of_a_non_equilibrium_pair_is_the_larger_unilateral_gain(game):
    """One round from uniform locals: G-LEARN's pi_g is a global best response (gain ~0), the uniform
    locals are exploitable, so the reported gap must be the locals' gain."""
    result = alternating_marl(game, K, rounds=1, eta=0.0, seed=4, start="uniform")
    uniform = uniform_local_policy(game)
    assert np.array_equal(result.pi_l, uniform)
    local_gain = local_best_response_gain(game, result.pi_g, uniform, K)
    global_gain = global_best_response_gain(game, result.pi_g, uniform, K, m=30, seed=4)
    assert local_gain > global_gain + 0.01
    assert result.nash_gap == pytest.approx(local_gain, abs=1e-9)
    assert result.rounds[0].nash_gap == result.nash_gap


def test_constant_global_welfare_is_the_exact_surrogate_value(game):
    """With a constant a_g the k-agent surrogate's exact value equals the pair-chain welfare."""
    pi_l = np.random.default_rng(1).dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg))
    R, P = exact_surrogate(game, pi_l, K)
    for a_g in range(game.n_ag):
        policy = np.full(R.shape[:2], a_g)
        V = np.take_along_axis(exact_Q(game, R, P, policy), policy[..., None], 2)[..., 0]
        assert constant_global_welfare(game, a_g, pi_l) == pytest.approx((initial_weights(game, K) * V).sum(),
                                                                         abs=1e-9)


def test_best_constant_start_is_the_best_constant_pair_by_brute_force(game):
    """Every constant a_g against every deterministic pi_l: with a_g fixed, s_g is its own chain
    (P_g[:, a_g]), the locals' best response maximises their value in every state at once, and the
    pair's welfare is the global chain's value plus the locals' value."""
    values = {}
    for a_g in range(game.n_ag):
        chain = game.P_g[:, a_g, :]
        local = max((induced_mdp_values(game, chain, policy) for policy in all_deterministic_local_policies(game)),
                    key=lambda V: V.sum())  # one policy is best in every state: the largest sum is it
        global_value = np.linalg.solve(np.eye(game.n_sg) - game.gamma * chain, game.r_g[:, a_g])
        values[a_g] = game.mu0_g @ global_value + game.mu0_l @ local @ game.mu0_g
    best_a_g = max(values, key=values.get)
    assert sorted(values.values())[-1] - sorted(values.values())[-2] > 0.01  # a clear winner
    a_g, pi_l, welfare = best_constant_start(game, K)
    assert a_g == best_a_g and welfare == pytest.approx(values[best_a_g], abs=1e-9)
    result = alternating_marl(game, K, rounds=3, seed=4)
    assert result.start.startswith(f"best_constant: a_g = {a_g},")
    # the constant a_g is one of G-LEARN's policies: round 0 starts at least there (m = 30 noise aside)
    assert result.rounds[0].welfare_estimate > welfare - 0.1


def test_round_cap_and_the_reported_durations(game):
    import time

    started = time.perf_counter()
    result = alternating_marl(game, K, rounds=1, seed=4, start="uniform")
    elapsed = time.perf_counter() - started
    assert len(result.rounds) == 1 and not result.converged
    # durations of the run and its rounds, not clock readings: each within what the caller measured
    assert 0 < result.rounds[0].seconds <= result.seconds <= elapsed


def test_default_eta_by_hand_and_as_documented(game, warehouse_game):
    """0.01 * span(r_l) / ((1 - gamma) sqrt(k)): 0.01 * 4 / (0.2 * 4) = 0.05 for r_l in [-1, 3],
    gamma = 0.8, k = 16; docs/training.md quotes 2*eta = 1.3 at k = 10 and 0.57 at k = 50 on the
    warehouse model."""
    r_l = np.zeros((2, 1, 2))
    r_l[0, 0, 0], r_l[1, 0, 1] = -1.0, 3.0
    hand = make_game(P_g=np.ones((1, 1, 1)), P_l=np.full((2, 1, 2, 2), 0.5), r_g=np.zeros((1, 1)),
                     r_l=r_l, gamma=0.8)
    assert default_eta(hand, 16) == pytest.approx(0.05, rel=1e-12)
    warehouse = warehouse_game
    assert 2 * default_eta(warehouse, 10) == pytest.approx(1.3, abs=0.05)
    assert 2 * default_eta(warehouse, 50) == pytest.approx(0.57, abs=0.005)
    assert alternating_marl(game, K, rounds=1).eta == default_eta(game, K)  # eta=None means the default


@pytest.mark.parametrize("kwargs, field", [(dict(eta=-1.0), "eta"), (dict(rounds=0), "rounds"),
                                           (dict(gain_tol=0.0), "gain_tol"), (dict(gain_tol=-1.0), "gain_tol"),
                                           (dict(start="best"), "start"), (dict(start="random"), "start"),
                                           (dict(start="zebra"), "start"),
                                           (dict(start=np.ones((3, 2, 3))), "start[0, 0, :]")])
def test_bad_arguments_name_the_field(game, kwargs, field):
    with pytest.raises(LearnError) as raised:
        alternating_marl(game, K, **kwargs)
    assert raised.value.field == field


def test_defaults_are_trains_documented_ones_and_the_global_gain_is_exact_to_gain_tol():
    """`altmarl train --help`: --m default 30, --seed default 0, --rounds default 10. G-LEARN stopped after
    two sweeps (tol = 50) leaves a pi_g worth deviating from (gain 0.017); the reported gain, at the default
    gain_tol = 1e-6, is that gain iterated to 1e-10 within 2 gamma 1e-6 / (1 - gamma) (+ the reference's own)."""
    game = random_game(1, n_sg=3, n_ag=3, n_sl=3, n_al=2, gamma=0.95)
    result = alternating_marl(game, K, rounds=1, start="uniform", tol=50.0)
    assert (result.m, result.seed, result.rounds[0].g_sweeps) == (30, 0, 2)
    assert inspect.signature(alternating_marl).parameters["rounds"].default == 10  # --rounds default 10
    fine = global_best_response_gain(game, result.pi_g, result.pi_l, K, m=30, seed=0, tol=1e-10)
    assert fine > 0.01 and abs(result.global_gain - fine) <= 2 * game.gamma * (1e-6 + 1e-10) / (1 - game.gamma)


def test_equally_good_constant_actions_start_from_the_lowest(game):
    """Global actions 0 and 2 made copies of the best one (same moves, same rewards): the same candidates
    and welfare, bit for bit; the tie goes to the lowest a_g, as every argmax here does."""
    P_g, r_g = game.P_g.copy(), game.r_g.copy()
    a_g, _, _ = best_constant_start(game, K)
    P_g[:, [0, 2]], r_g[:, [0, 2]] = P_g[:, [a_g]], r_g[:, [a_g]]
    twin = make_game(P_g=P_g, P_l=game.P_l, r_g=r_g, r_l=game.r_l, gamma=game.gamma, mu0_g=game.mu0_g,
                     mu0_l=game.mu0_l)
    assert best_constant_start(twin, K)[0] == 0


def test_a_result_is_read_only_and_prints_without_its_tables(run):
    result, _ = run
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.pi_l = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rounds[0].accepted = False
    text = repr(result)
    assert "welfare_estimate=" in text and "rounds=" not in text and "Q=" not in text


def test_an_improvement_of_exactly_2_eta_stops_and_one_between_2_and_3_eta_goes_on(game, run):
    """The eta = 0 run's first improvement d (exact: the welfares are within a factor of 2): eta = d / 2
    rejects round 1 (d <= 2 eta), eta = d / 2.5 accepts it (2 eta < d)."""
    _, logs = run
    d = logs[1].welfare_estimate - logs[0].welfare_estimate
    assert logs[0].welfare_estimate + d == logs[1].welfare_estimate
    for eta, accepted in ((d / 2, False), (d / 2.5, True)):
        result = alternating_marl(game, K, m=30, rounds=2, eta=eta, seed=4, start="uniform")
        assert result.rounds[1].accepted == accepted, eta


def test_a_local_policy_that_is_its_own_best_response_ends_the_run_at_once():
    """One local action: pi_l can only be itself, so round 0 is accepted and the run stops there."""
    result = alternating_marl(random_game(5, n_sg=2, n_ag=2, n_sl=2, n_al=1), K, rounds=5, seed=4)
    assert [log.accepted for log in result.rounds] == [True] and result.converged
    assert result.stop_reason == "round 0: pi_l is its own best response"
