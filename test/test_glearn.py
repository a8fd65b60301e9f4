"""G-LEARN against the exact k-agent surrogate (brute-force enumeration) on tiny games.

The exact references use k = 2 and k = 4 on a game with |S_l| = 3 local states, so
an operator that averaged the local reward over |S_l| instead of k (or any other
k <-> |S_l| slip) gives a different fixed point.
"""
import numpy as np
import pytest

from _learn_reference import (count_vectors, exact_Q, exact_surrogate, initial_weights, module_game, next_counts_law,
                              random_game, random_local_policy)
from altmarl_ros.core.counts import rank
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.glearn import _SlowModeExtrapolation, _Surrogate, _extrapolate, g_learn, global_best_response_gain
from altmarl_ros.core.model import make_game
from altmarl_ros.errors import LearnError

K = 4
EXACT_KS = (2, 4)  # never |S_l| = 3


game, pi_l = module_game(11, 5, n_sg=2, n_ag=3, n_sl=3, n_al=2)


@pytest.fixture(scope="module", params=EXACT_KS, ids=lambda k: f"k={k}")
def exact(request, game, pi_l):
    """(k, R, P, Q*) of the exact k-agent surrogate."""
    k = request.param
    assert k != game.n_sl
    R, P = exact_surrogate(game, pi_l, k)
    return k, R, P, exact_Q(game, R, P)


def test_draws_follow_the_exact_next_count_law(game, pi_l):
    """300000 cached draws per (s_g, F) at k = 5: total variation from the exact law < 0.01 (measured 0.004)."""
    k, m = 5, 300_000
    surrogate = _Surrogate(game, pi_l, k, m, seed=0, table_bytes=1 << 30)
    P_fused, _ = fold_local_policy(game, pi_l)
    n_f = len(count_vectors(k, game.n_sl))
    worst = 0.0
    for f, F in enumerate(count_vectors(k, game.n_sl)):
        for g in range(game.n_sg):
            exact = np.zeros(n_f)
            for F_next, prob in next_counts_law(list(F), P_fused[g]).items():
                exact[rank(np.array(F_next))] = prob
            empirical = np.bincount(surrogate.draws.ranks[f, g], minlength=n_f) / m
            worst = max(worst, 0.5 * np.abs(empirical - exact).sum())
    assert worst < 0.01, worst


def test_large_m_matches_exact_bellman_fixed_point(game, pi_l, exact):
    """m = 20000 draws per state: Q within 0.01 of Q* (measured 0.001-0.002 at k = 2 and 4)."""
    k, _, _, Q_star = exact
    result = g_learn(game, pi_l, k, m=20000, tol=1e-8, seed=1)
    assert result.converged
    error = np.abs(result.Q - Q_star).max()
    assert error < 0.01, error
    # where the exact optimum is clear, the greedy actions agree
    ordered = np.sort(Q_star, axis=2)
    clear = ordered[..., -1] - ordered[..., -2] > 0.06
    assert clear.any()
    assert (result.pi_g[clear] == Q_star.argmax(axis=2)[clear]).all()
    assert abs(result.value - (initial_weights(game, k) * Q_star.max(axis=2)).sum()) < 0.01


@pytest.mark.kernels
def test_small_m_is_biased_but_close(game, pi_l, exact):
    """The m = 30 surrogate differs from the exact one (so the large-m test can fail) but not wildly."""
    k, _, _, Q_star = exact
    error = np.abs(g_learn(game, pi_l, k, m=30, seed=1).Q - Q_star).max()
    assert 0.02 < error < 0.5


@pytest.mark.kernels
def test_same_seed_same_q_and_cache_does_not_change_the_answer(game, pi_l):
    first = g_learn(game, pi_l, K, seed=3)
    again = g_learn(game, pi_l, K, seed=3, table_bytes=0)  # every draw recomputed each sweep
    other = g_learn(game, pi_l, K, seed=4)
    assert again.table_fraction == 0.0 and first.table_fraction == 1.0
    assert np.array_equal(first.Q, again.Q) and np.array_equal(first.pi_g, again.pi_g)
    assert not np.array_equal(first.Q, other.Q)


@pytest.mark.kernels
def test_residual_history_reaches_tol_and_bounds_the_q_residual(game, pi_l):
    tol = 1e-6
    seen = []
    result = g_learn(game, pi_l, K, tol=tol, seed=2, progress=lambda s, r: seen.append((s, r)))
    history = np.array(result.residual_history)
    assert result.converged and history[-1] <= tol < history[0]
    assert [s for s, _ in seen] == list(range(1, result.sweeps + 1))
    # strictly decreasing here (McQueen shifts do not promise it per sweep in general)
    assert (np.diff(history) < 0).all()
    # one more application of the same operator moves Q by <= gamma*tol (float32 storage aside)
    surrogate = _Surrogate(game, pi_l, K, 30, 2, 1 << 20)
    Q = np.empty_like(result.Q)
    V = np.ascontiguousarray(result.Q.max(axis=2).T, dtype=np.float64)
    surrogate.iterate(V, np.inf, 1, Q=Q)
    assert np.abs(Q - result.Q).max() <= game.gamma * tol + 1e-5


@pytest.mark.kernels
def test_warm_start_reaches_the_same_fixed_point_in_fewer_sweeps(game, pi_l):
    cold = g_learn(game, pi_l, K, tol=1e-7, seed=0)
    warm = g_learn(game, pi_l, K, tol=1e-7, seed=0, Q0=cold.Q)
    assert warm.sweeps < cold.sweeps / 3
    bound = 2 * game.gamma * 1e-7 / (1 - game.gamma) + 1e-5
    assert np.abs(warm.Q - cold.Q).max() <= bound


class _ModelSampler:
    """Generative sampler drawing from a game's arrays (the protocol G-LEARN accepts)."""

    def __init__(self, game):
        self.game, self.sizes, self.gamma = game, game.sizes, game.gamma
        self.r_g, self.r_l = game.r_g, game.r_l
        self.mu0_g, self.mu0_l = game.mu0_g, game.mu0_l

    def sample_local(self, s_l, s_g, a_l, rng):
        cum = np.cumsum(self.game.P_l[s_l, s_g, a_l], axis=1)
        return (rng.random(len(s_l))[:, None] > cum).sum(axis=1).clip(max=self.game.n_sl - 1)

    def sample_global(self, s_g, a_g, rng):
        cum = np.cumsum(self.game.P_g[s_g, a_g], axis=1)
        return (rng.random(len(s_g))[:, None] > cum).sum(axis=1).clip(max=self.game.n_sg - 1)


def test_generative_sampler_gives_the_model_fixed_point(game, pi_l, exact):
    """Pooled sampler draws (40000 per pair): the same Q as the model within 0.03 (measured 0.006)."""
    k, _, _, Q_star = exact
    from_model = g_learn(game, pi_l, k, m=4000, seed=7)
    from_sampler = g_learn(_ModelSampler(game), pi_l, k, m=4000, seed=7, pool=40000)
    assert np.abs(from_sampler.Q - from_model.Q).max() < 0.03
    assert np.abs(from_sampler.Q - Q_star).max() < 0.03


def test_global_gain_matches_brute_force(game, pi_l, exact):
    k, R, P, Q_star = exact
    weights = initial_weights(game, k)
    worst = Q_star.argmin(axis=2).astype(np.int32)
    exact_gain = (weights * (Q_star.max(axis=2)
                             - np.take_along_axis(exact_Q(game, R, P, worst), worst[..., None], 2)[..., 0])).sum()
    assert exact_gain > 0.5
    gain = global_best_response_gain(game, worst, pi_l, k, m=20000, seed=1)
    assert abs(gain - exact_gain) < 0.01  # measured < 0.002
    best = Q_star.argmax(axis=2).astype(np.int32)
    assert global_best_response_gain(game, best, pi_l, k, m=20000, seed=1) < 0.01


def _with_copied_actions(game, copies):
    """The game with global action copies[c] an exact copy (P_g, r_g) of action c, for each c."""
    P_g, r_g = game.P_g.copy(), game.r_g.copy()
    for source, target in copies.items():
        P_g[:, target], r_g[:, target] = P_g[:, source], r_g[:, source]
    return make_game(P_g=P_g, P_l=game.P_l, r_g=r_g, r_l=game.r_l, gamma=game.gamma,
                     mu0_g=game.mu0_g, mu0_l=game.mu0_l)


@pytest.mark.kernels
def test_ties_go_to_the_lowest_action(game, pi_l):
    """Identical global actions have bitwise-equal Q values; the documented choice is the lowest one."""
    same = g_learn(_with_copied_actions(game, {0: 1, 1: 2}), pi_l, K, seed=0)  # all three actions alike
    assert (same.Q[..., 0] == same.Q[..., 2]).all()
    assert (same.pi_g == 0).all()
    # action 2 a copy of action 0, action 1 its own: 2 is never chosen, 0 wherever the copies are best
    copied = g_learn(_with_copied_actions(game, {0: 2}), pi_l, K, seed=0)
    best_is_copy = copied.Q[..., 0] >= copied.Q[..., 1]
    assert best_is_copy.any() and (~best_is_copy).any()
    assert np.array_equal(copied.pi_g, np.where(best_is_copy, 0, 1))


@pytest.mark.kernels
@pytest.mark.parametrize("kwargs, field", [
    (dict(pi_l=np.ones((3, 2, 2))), "pi_l[0, 0, :]"),
    (dict(pi_l=np.ones((2, 2, 2)) / 2), "pi_l"),
    (dict(k=0), "k"),
    (dict(m=2.5), "m"),
    (dict(tol=0), "tol"),
    (dict(Q0=np.zeros((2, 3, 3))), "Q0"),
    (dict(Q0=np.where(np.arange(2 * 15 * 3).reshape(2, 15, 3) == 44, np.nan, 0.0)), "Q0"),  # N_F = C(6, 2)
    (dict(source=object()), "source"),
])
def test_bad_input_names_the_field(game, pi_l, kwargs, field):
    args = dict(source=game, pi_l=pi_l, k=K)
    args.update(kwargs)
    with pytest.raises(LearnError) as raised:
        g_learn(**args)
    assert raised.value.field == field


@pytest.mark.kernels
def test_sampler_returning_bad_states_is_named(game, pi_l):
    class Broken(_ModelSampler):
        def sample_local(self, s_l, s_g, a_l, rng):
            out = super().sample_local(s_l, s_g, a_l, rng)
            out[7] = game.n_sl  # one state out of range
            return out

    with pytest.raises(LearnError) as raised:
        g_learn(Broken(game), pi_l, K, pool=10)
    assert raised.value.field == "source.sample_local" and "index 7" in str(raised.value)


def test_a_sampler_that_breaks_the_protocol_is_named_with_the_method_and_the_fix(game, pi_l):
    """Sizes that are not 4 integers, draws of the wrong shape or dtype, invalid rewards: each names the
    sampler's member; a sizes entry that is an integer below 1 keeps its own field."""
    def broken(**members):
        sampler = _ModelSampler(game)
        sampler.__dict__.update(members)
        return sampler

    rows = [(dict(sizes=(2, 3, 3)), "source.sizes", "must be 4 integers"),
            (dict(sizes=None), "source.sizes", "must be 4 integers"),
            (dict(sizes=(2, 3, 0, 2)), "source.sizes[2]", "must be an integer >= 1"),
            (dict(sample_global=lambda s_g, a_g, rng: np.zeros(len(s_g) - 1, np.int64)), "source.sample_global",
             r"shape \(\d+,\); it must return one int state per input"),
            (dict(sample_global=lambda s_g, a_g, rng: np.zeros(len(s_g))), "source.sample_global",
             "returned float64 array"),
            (dict(r_g=np.full((2, 3), np.nan)), "source", "the sampler's rewards or gamma are invalid")]
    for members, field, detail in rows:
        with pytest.raises(LearnError, match=detail) as raised:
            g_learn(broken(**members), pi_l, K, pool=10)
        assert raised.value.field == field, members


@pytest.mark.kernels
def test_slow_mode_steps_follow_a_steady_span_ratio():
    """Spans shrinking by 0.8: a step of 0.8 / 0.2 = 4 once three spans agree, then none for EVERY sweeps;
    no step on unsteady or fast ratios; a step followed by a larger span switches the rule off."""
    rule = _SlowModeExtrapolation()
    spans = [0.8 ** n for n in range(1, 9)]
    factors = [rule.factor(sweep, span) for sweep, span in enumerate(spans, start=1)]
    assert factors[:2] == [0.0, 0.0] and factors[2] == pytest.approx(4.0)
    assert factors[3:5] == [0.0, 0.0] and factors[5] == pytest.approx(4.0)
    unsteady = _SlowModeExtrapolation()
    assert not any(unsteady.factor(s, span) for s, span in enumerate([1.0, 0.8, 0.7, 0.5, 0.45, 0.3], 1))
    fast = _SlowModeExtrapolation()
    assert not any(fast.factor(s, 0.3 ** s) for s in range(1, 8))
    worse = _SlowModeExtrapolation()
    for sweep, span in enumerate(spans[:3], start=1):
        worse.factor(sweep, span)
    assert worse.factor(4, spans[2] * 1.1) == 0.0 and not worse.enabled
    assert not any(worse.factor(s, 0.8 ** s) for s in range(5, 12))


@pytest.mark.kernels
def test_extrapolation_step_removes_one_geometric_mode():
    """V_n = V* + rho^n v (plus a constant the shift handles): one step from (V_n, V_n-1) lands on V* + const."""
    rng = np.random.default_rng(0)
    V_star, v, rho = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)), 0.8
    V_old, V = V_star + rho ** 5 * v + 1.0, V_star + rho ** 6 * v + 1.5
    _extrapolate(V, V_old, rho / (1 - rho), 0.5)
    assert np.allclose(V - V_star, 1.5)


def test_extrapolation_keeps_the_fixed_point_in_fewer_sweeps(warehouse_game):
    """Warehouse model, k = 10, uniform locals: same Q within the two runs' error bounds, far fewer sweeps."""
    game = warehouse_game
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    tol = 1e-5
    plain = g_learn(game, uniform, 10, tol=tol, extrapolate=False)
    stepped = g_learn(game, uniform, 10, tol=tol)
    assert plain.converged and stepped.converged
    assert stepped.sweeps <= 0.75 * plain.sweeps, (stepped.sweeps, plain.sweeps)
    bound = 2 * game.gamma * tol / (1 - game.gamma) + 1e-4  # float32 Q of values near 100
    assert np.abs(stepped.Q - plain.Q).max() <= bound
    assert np.array_equal(stepped.pi_g, plain.pi_g)


def _deterministic_locals_game(seed, n_sg, n_sl=2):
    """A random game whose locals move deterministically, whatever their action: every draw of the next count
    vector is then the exact one, so G-LEARN at any m must reach the exact surrogate's fixed point."""
    game = random_game(seed, n_sg=n_sg, n_ag=2, n_sl=n_sl, n_al=2)
    rng = np.random.default_rng(seed)
    P_l = np.zeros_like(game.P_l)
    for j in range(n_sl):
        for g in range(n_sg):
            P_l[j, g, :, rng.integers(n_sl)] = 1.0
    return make_game(P_g=game.P_g, P_l=P_l, r_g=game.r_g, r_l=game.r_l, gamma=game.gamma, mu0_g=game.mu0_g,
                     mu0_l=game.mu0_l)


@pytest.mark.kernels
@pytest.mark.parametrize("n_sg", [1, 3, 8, 9])
def test_the_exact_fixed_point_on_each_side_of_the_eight_global_states_the_sweep_sums_in_registers(n_sg):
    """The sweep sums its gathers in scalars up to 8 global states (one branch per state) and in an array
    beyond: on 1, 3, 8 and 9 global states, with deterministic locals, G-LEARN at m = 2 is the brute-force
    Q* of the exact k-agent surrogate (to float32, Q's storage), and its value the initial law's mean of max Q*."""
    game = _deterministic_locals_game(70 + n_sg, n_sg)
    pi_l = random_local_policy(game, n_sg)
    k = 3
    R, P = exact_surrogate(game, pi_l, k)
    Q_star = exact_Q(game, R, P)
    result = g_learn(game, pi_l, k, m=2, tol=1e-10, seed=3)
    assert result.converged and result.Q.shape == (n_sg, k + 1, game.n_ag)
    np.testing.assert_allclose(result.Q, Q_star, rtol=1e-6, atol=0)  # Q is stored as float32
    assert result.value == pytest.approx((initial_weights(game, k) * Q_star.max(axis=2)).sum(), rel=1e-7)


@pytest.mark.kernels
def test_a_gain_whose_sweeps_run_out_before_tol_is_refused_not_reported(game, pi_l):
    """global_best_response_gain needs both value iterations at tol: one sweep cannot reach 1e-9 (the
    residual of a first sweep from 0 is about the largest reward), so it names max_sweeps; enough can."""
    pi_g = np.zeros((game.n_sg, 15), np.int32)
    with pytest.raises(LearnError) as raised:
        global_best_response_gain(game, pi_g, pi_l, K, m=4, tol=1e-9, max_sweeps=1)
    assert raised.value.field == "max_sweeps" and "1 sweeps did not reach tol = 1e-09" in str(raised.value)
    assert global_best_response_gain(game, pi_g, pi_l, K, m=4, tol=1e-9, max_sweeps=10_000) >= 0.0
