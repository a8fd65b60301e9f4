"""L-LEARN against brute force: every deterministic local policy, the mean field re-derived by enumeration."""
from types import SimpleNamespace

import numpy as np
import pytest

from _learn_reference import (all_deterministic_local_policies, count_vectors, induced_mdp_values,
                              multinomial_pmf, random_game, random_local_policy)
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core import llearn
from altmarl_ros.core.llearn import l_learn, local_best_response_gain
from altmarl_ros.core.model import make_game
from altmarl_ros.errors import LearnError

pytestmark = pytest.mark.kernels  # all fast with NUMBA_DISABLE_JIT=1 (scripts/coverage.sh)

K = 2  # not |S_l| = 3


@pytest.fixture(scope="module", params=[21, 22, 23])
def case(request):
    game = random_game(request.param, n_sg=2, n_ag=2, n_sl=3, n_al=2, gamma=0.9)
    rng = np.random.default_rng(request.param)
    pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(K, game.n_sl))).astype(np.int32)
    pi_l = random_local_policy(game, rng)
    return game, pi_g, pi_l, l_learn(game, pi_g, K, pi_l)


def _P_bar_by_enumeration(game, pi_g, mu):
    P_bar = np.zeros((game.n_sg, game.n_sg))
    for g in range(game.n_sg):
        for f, F in enumerate(count_vectors(K, game.n_sl)):
            P_bar[g] += multinomial_pmf(F, mu[g]) * game.P_g[g, pi_g[g, f]]
    return P_bar


def _stationary_conditional(game, pi_l, P_bar_g):
    """mu(.|s_g) [S_g, S_l] of the pair chain's stationary law (random games: irreducible, one unit eigenvalue)."""
    pair = np.einsum("sga,sgat,gh->sgth", pi_l, game.P_l, P_bar_g).reshape(game.n_sl * game.n_sg, -1)
    values, vectors = np.linalg.eig(pair.T)
    nu = np.real(vectors[:, np.argmin(np.abs(values - 1))]).reshape(game.n_sl, game.n_sg)
    nu /= nu.sum()
    return (nu / nu.sum(axis=0)).T


def _mean_field_by_enumeration(game, pi_g, pi_l):
    """P_bar_g of the self-consistent mean field, by damped fixed-point iteration on the enumerated law."""
    mu = np.tile(game.mu0_l, (game.n_sg, 1))
    for _ in range(10_000):
        target = _stationary_conditional(game, pi_l, _P_bar_by_enumeration(game, pi_g, mu))
        if np.abs(target - mu).max() < 1e-14:
            return _P_bar_by_enumeration(game, pi_g, target)
        mu = 0.5 * (mu + target)
    raise AssertionError("the reference mean field did not converge")


def test_mean_field_is_self_consistent(case):
    """mu(.|s_g) is the stationary conditional law of the pair chain under P_bar_g(mu)."""
    game, pi_g, pi_l, result = case
    assert result.mu_converged
    assert np.allclose(result.P_bar_g, _P_bar_by_enumeration(game, pi_g, result.mu), atol=1e-12)
    assert np.allclose(result.mu, _stationary_conditional(game, pi_l, result.P_bar_g), atol=1e-9)


def test_a_global_state_the_chain_leaves_for_good_gets_the_local_marginal(case):
    """Global state 1 always moves to 0 and 0 never leaves, so the pair chain's limit puts no mass
    on s_g = 1: mu(.|0) is the stationary law of the local chain at s_g = 0, and mu(.|1), where
    the conditional is undefined, is nu's s_l marginal, which is that same law."""
    game, pi_g, pi_l, _ = case
    P_g = np.zeros_like(game.P_g)
    P_g[:, :, 0] = 1.0
    absorbing = make_game(P_g=P_g, P_l=game.P_l, r_g=game.r_g, r_l=game.r_l, gamma=game.gamma,
                          mu0_g=game.mu0_g, mu0_l=game.mu0_l)
    result = l_learn(absorbing, pi_g, K, pi_l)
    local = np.einsum("sa,sat->st", pi_l[:, 0], game.P_l[:, 0])  # the local chain at s_g = 0
    values, vectors = np.linalg.eig(local.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    stationary /= stationary.sum()
    assert result.mu_converged
    np.testing.assert_allclose(result.mu, [stationary, stationary], atol=1e-9)
    np.testing.assert_allclose(result.P_bar_g, [[1.0, 0.0], [1.0, 0.0]], atol=1e-15)


def test_best_response_beats_every_deterministic_policy(case):
    game, _, _, result = case
    values = np.array([induced_mdp_values(game, result.P_bar_g, policy)
                       for policy in all_deterministic_local_policies(game)])
    assert len(values) == 2 ** 6
    best = values.max(axis=0)  # an optimal policy is optimal in every state at once
    assert np.allclose(result.V, best, atol=1e-9)
    assert np.allclose(induced_mdp_values(game, result.P_bar_g, result.pi_l), best, atol=1e-9)
    assert set(np.unique(result.pi_l)) <= {0.0, 1.0} and np.allclose(result.pi_l.sum(axis=2), 1)
    assert result.residual < 1e-9


def test_policy_iteration_stops_at_the_first_repeated_policy(case):
    """Howard's policy iteration improves strictly until its policy repeats, so it stops within
    as many iterations as there are deterministic policies (64 here), far below its cap (1000)."""
    game, _, _, result = case
    assert 1 <= result.policy_iterations <= len(list(all_deterministic_local_policies(game))) + 1


def test_reported_seconds_are_the_wall_time_from_start_to_return(case, monkeypatch):
    game, pi_g, pi_l, _ = case
    readings = iter([100.0, 102.5])  # the module's clock, read when L-LEARN starts and when it returns
    monkeypatch.setattr(llearn, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    assert l_learn(game, pi_g, K, pi_l).seconds == 2.5


def test_gain_is_the_brute_force_gain(case):
    """Against a mean field and best response found without L-LEARN: enumeration, iteration, every policy."""
    game, pi_g, pi_l, result = case
    P_bar_g = _mean_field_by_enumeration(game, pi_g, pi_l)
    values = np.array([induced_mdp_values(game, P_bar_g, policy) for policy in all_deterministic_local_policies(game)])
    gain = game.mu0_l @ (values.max(axis=0) - induced_mdp_values(game, P_bar_g, pi_l)) @ game.mu0_g
    assert gain > 1e-3
    assert local_best_response_gain(game, pi_g, pi_l, K) == pytest.approx(gain, abs=1e-9)
    assert result.gain == pytest.approx(gain, abs=1e-9)


def test_gain_scales_with_the_local_reward(case):
    """r_l -> c r_l scales every local value, so the gain, by c (here below 1, where no clipping may act)."""
    game, pi_g, pi_l, result = case
    c = 1e-3
    scaled = make_game(P_g=game.P_g, P_l=game.P_l, r_g=game.r_g, r_l=c * game.r_l, gamma=game.gamma,
                       mu0_g=game.mu0_g, mu0_l=game.mu0_l)
    assert 0 < c * result.gain < 1
    assert local_best_response_gain(scaled, pi_g, pi_l, K) == pytest.approx(c * result.gain, rel=1e-6)


def test_bad_pi_g_names_the_field(case):
    game, pi_g, _, _ = case
    with pytest.raises(LearnError) as raised:
        l_learn(game, pi_g[:, :-1], K)
    assert raised.value.field == "pi_g"
    bad = pi_g.copy()
    bad[1, 2] = game.n_ag
    with pytest.raises(LearnError) as raised:
        l_learn(game, bad, K)
    assert raised.value.field == "pi_g[1, 2]"
