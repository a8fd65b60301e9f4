"""L-LEARN's caps and costs: how many mean-field and policy-iteration passes it runs and reports, and what
its pair chain asks of the memory budget (values by hand)."""
import numpy as np
import pytest

from _learn_reference import random_game, random_local_policy
from test_glearn import _ModelSampler
from test_llearn import K, _P_bar_by_enumeration, _stationary_conditional
from altmarl_ros.core import budget, llearn
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.llearn import check_pair_chain, l_learn, local_best_response_gain, pair_chain_cost
from altmarl_ros.core.model import make_game
from altmarl_ros.errors import LearnError

pytestmark = pytest.mark.kernels


def test_a_mean_field_cut_short_reports_the_passes_it_ran_and_the_last_residual():
    """mu_max_iterations = 1: one pass from mu0, whose residual is |target - mu0| with the target the pair
    chain's stationary conditional under P_bar_g(mu0), both by enumeration."""
    game = random_game(21, n_sg=2, n_ag=2, n_sl=3, n_al=2, gamma=0.9)
    rng = np.random.default_rng(21)
    pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(K, game.n_sl))).astype(np.int32)
    pi_l = random_local_policy(game, rng)
    mu0 = np.tile(game.mu0_l, (game.n_sg, 1))
    first = np.abs(_stationary_conditional(game, pi_l, _P_bar_by_enumeration(game, pi_g, mu0)) - mu0).max()
    result = l_learn(game, pi_g, K, pi_l, mu_max_iterations=1)
    assert result.mu_iterations == 1 and not result.mu_converged and first > 1e-3
    assert result.mu_residual == pytest.approx(first, abs=1e-9)


def test_the_mean_field_step_halves_whenever_the_change_grows():
    """A depot that goes where F points (global action a moves to global state a) over locals that almost
    swap states: the change grows at the second pass. The residual after each of the first 5 passes
    against the documented schedule run by enumeration: mu <- (1 - d) mu + d target, d = 1 halved (down
    to 1/64) whenever the change grows."""
    rng = np.random.default_rng(2)
    P_g = np.zeros((2, 2, 2))
    P_g[:, 0, 0] = P_g[:, 1, 1] = 1.0
    game = make_game(P_g=P_g, P_l=rng.dirichlet([0.2, 0.2], size=(2, 2, 1)), r_g=np.zeros((2, 2)),
                     r_l=rng.random((2, 2, 1)), gamma=0.9, mu0_g=rng.dirichlet([1, 1]), mu0_l=rng.dirichlet([1, 1]))
    pi_g = rng.integers(0, 2, (2, n_count_vectors(K, 2))).astype(np.int32)
    mu, step, changes = np.tile(game.mu0_l, (2, 1)), 1.0, []
    for _ in range(5):
        target = _stationary_conditional(game, np.ones((2, 2, 1)), _P_bar_by_enumeration(game, pi_g, mu))
        changes.append(np.abs(target - mu).max())
        if len(changes) > 1 and changes[-1] > changes[-2]:
            step = max(step / 2, 1 / 64)
        mu = (1 - step) * mu + step * target
    assert changes[1] > changes[0] + 0.05 and step == 0.5
    residuals = [l_learn(game, pi_g, K, mu_max_iterations=n).mu_residual for n in range(1, 6)]
    np.testing.assert_allclose(residuals, changes, rtol=0, atol=1e-9)


def test_the_gain_pools_a_samplers_draws_with_l_learns_default_seed():
    """local_best_response_gain is l_learn's gain: for a generative sampler, pooled with the same seed, 0."""
    game = random_game(21, n_sg=2, n_ag=2, n_sl=3, n_al=2, gamma=0.9)
    rng = np.random.default_rng(21)
    pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(K, game.n_sl))).astype(np.int32)
    pi_l = random_local_policy(game, rng)
    sampler = _ModelSampler(game)
    gains = [l_learn(sampler, pi_g, K, pi_l, pool=20, seed=seed).gain for seed in (0, 1)]
    assert gains[0] != gains[1]  # 20 draws per pair: the seed shows
    assert local_best_response_gain(sampler, pi_g, pi_l, K, pool=20) == gains[0]


def test_the_mean_field_has_converged_when_its_change_is_at_most_mu_tol():
    """The residual of the first pass, given back as mu_tol, stops the iteration there, converged."""
    game = random_game(23, n_sg=2, n_ag=2, n_sl=3, n_al=2, gamma=0.9)
    pi_g = np.ones((game.n_sg, n_count_vectors(K, game.n_sl)), np.int32)
    first = l_learn(game, pi_g, K, mu_max_iterations=1).mu_residual
    result = l_learn(game, pi_g, K, mu_tol=first)
    assert (result.mu_iterations, result.mu_residual, result.mu_converged) == (1, first, True)


@pytest.mark.parametrize("kwargs, field", [(dict(mu_max_iterations=0), "mu_max_iterations"), (dict(seed=-1), "seed"),
                                           (dict(k=0), "k")])
def test_no_mean_field_pass_negative_seeds_and_no_sampled_locals_are_refused(kwargs, field):
    game = random_game(21, n_sg=2, n_ag=2, n_sl=3, n_al=2, gamma=0.9)
    with pytest.raises(LearnError) as raised:
        l_learn(game, np.zeros((game.n_sg, n_count_vectors(K, game.n_sl)), np.int32), **{"k": K, **kwargs})
    assert raised.value.field == field


def test_one_local_action_takes_two_policy_iteration_passes():
    """The only policy is proposed by the first greedy pass and found again by the second, which stops."""
    game = random_game(22, n_sg=2, n_ag=2, n_sl=3, n_al=1, gamma=0.9)
    pi_g = np.zeros((game.n_sg, n_count_vectors(K, game.n_sl)), np.int32)
    result = l_learn(game, pi_g, K)
    assert result.policy_iterations == 2 and result.pi_l.tolist() == np.ones((3, 2, 1)).tolist()


def _near_tie(edge):
    """One global state; local state 0 chooses s1 (action 0: reward 1 ever after) or s2 (action 1: reward
    1 + edge ever after under s2's action 0, 0 under its action 1); gamma = 1/2."""
    P_l = np.zeros((3, 1, 2, 3))
    P_l[0, 0, 0, 1] = P_l[0, 0, 1, 2] = P_l[1, 0, :, 1] = P_l[2, 0, :, 2] = 1.0
    r_l = np.array([[[0.0, 0.0]], [[1.0, 1.0]], [[1.0 + edge, 0.0]]])
    return make_game(P_g=np.ones((1, 1, 1)), P_l=P_l, r_g=np.zeros((1, 1)), r_l=r_l, gamma=0.5)


@pytest.mark.parametrize("edge, switches", [(1e-13, False), (1e-11, True)])
def test_policy_iteration_switches_only_for_a_gain_above_1e_12(edge, switches):
    """_near_tie: against the uniform population's values s2 is worth 0.5 a step, so the first pass takes
    s1; with s2's action 0 in place, s2 is better by edge * gamma / (1 - gamma) = edge: a switch, and a third
    pass, only above 1e-12. The exact tie at s1 keeps the lowest action."""
    result = l_learn(_near_tie(edge), np.zeros((1, n_count_vectors(K, 3)), np.int32), K)
    assert result.pi_l[:, 0].tolist() == [[0.0, 1.0] if switches else [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    assert result.policy_iterations == (3 if switches else 2)


def test_policy_iteration_stops_at_its_cap_of_passes(monkeypatch):
    """The run above that switches (three passes), with the cap at two: the second pass's policy, reported
    as two passes."""
    monkeypatch.setattr(llearn, "_MAX_POLICY_ITERATIONS", 2)
    result = l_learn(_near_tie(1e-11), np.zeros((1, n_count_vectors(K, 3)), np.int32), K)
    assert result.policy_iterations == 2 and result.pi_l[0, 0].tolist() == [0.0, 1.0]


def test_the_pair_chain_costs_four_dense_float64_matrices_and_64_squarings():
    """4 local x 3 global states: 12 pair states, four 12 x 12 float64 matrices (T, M, a product, the
    identity) = 4608 bytes; 64 squarings of 2 * 12^3 flops each."""
    sizes = (3, 2, 4, 2)
    assert pair_chain_cost(sizes) == (4608, 64 * 2 * 12 ** 3)
    with budget.limited(4608):
        check_pair_chain(sizes)
    with budget.limited(4607), pytest.raises(budget.BudgetError, match=r"^L-LEARN's pair chain over 4 x 3 \(s_l, "
                                                                        r"s_g\) states needs 4\.5 KiB"):
        check_pair_chain(sizes)
