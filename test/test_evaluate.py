"""Rollout welfare against an exact computation on tiny games, CI behaviour, determinism.

The exact reference enumerates every joint state (s_g, s_1..s_n), every k-subset
and every local action explicitly (no fused tables, no sampling) and sums the
discounted expected rewards over the horizon.
"""
import itertools
import math

import numpy as np
import pytest

from _learn_reference import random_game, random_local_policy
from _traced import traced_peak
from altmarl_ros.core.counts import n_count_vectors, rank
from altmarl_ros.core.alternating import alternating_marl
from altmarl_ros.core.evaluate import (
    BASELINES,
    EvaluationError,
    _estimate,
    baselines,
    check_rollout_size,
    cumulative,
    lose_replies,
    mean_ci95,
    nash_gap,
    rollout_bytes,
    rollout_streams,
    rollout_welfare,
    t_quantile_975,
)
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.glearn import g_learn, global_best_response_gain
from altmarl_ros.core.llearn import l_learn, local_best_response_gain
from altmarl_ros.core.model import make_game
from altmarl_ros.core.observers import ObserverSpec
from altmarl_ros.core.policy import PolicyError


def _random_game(rng, n_sg=2, n_ag=2, n_sl=3, n_al=2, gamma=0.9):
    def rows(*shape):
        return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])

    return make_game(
        P_g=rows(n_sg, n_ag, n_sg), P_l=rows(n_sl, n_sg, n_al, n_sl),
        r_g=rng.uniform(-1, 1, (n_sg, n_ag)), r_l=rng.uniform(0, 3, (n_sl, n_sg, n_al)),
        gamma=gamma, mu0_g=rng.dirichlet(np.ones(n_sg)), mu0_l=rng.dirichlet(np.ones(n_sl)),
    )


def _random_policies(rng, game, k):
    pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(k, game.n_sl))).astype(np.int32)
    pi_l = random_local_policy(game, rng)
    return pi_g, pi_l


def _exact_welfare(game, global_probs, pi_l, n, k, horizon, init_locals, locals_move_under_next_g=False):
    """Finite-horizon discounted value of the joint chain, by enumeration.

    global_probs(s_g, F) -> distribution over a_g; init_locals(locals tuple) -> probability.
    locals_move_under_next_g: the authors' evaluator order (s_i' ~ P_l(.|s_i, s_g', a_i)).
    """
    joint = list(itertools.product(range(game.n_sg), itertools.product(range(game.n_sl), repeat=n)))
    index = {x: i for i, x in enumerate(joint)}
    subsets = list(itertools.combinations(range(n), k))
    P = np.zeros((len(joint), len(joint)))
    R = np.zeros(len(joint))
    for (s_g, locs), i in index.items():
        a_dist = np.zeros(game.n_ag)
        for subset in subsets:
            F = np.bincount([locs[j] for j in subset], minlength=game.n_sl)
            a_dist += global_probs(s_g, F) / len(subsets)
        R[i] = a_dist @ game.r_g[s_g]
        for s, a in itertools.product(locs, range(game.n_al)):
            R[i] += pi_l[s, s_g, a] * game.r_l[s, s_g, a] / n
        next_g = a_dist @ game.P_g[s_g]
        for (g2, locs2), j in index.items():
            moved_under = g2 if locals_move_under_next_g else s_g
            # agents are independent given the state: per agent, sum over its own action
            per_agent = [sum(pi_l[s, s_g, a] * game.P_l[s, moved_under, a, s2] for a in range(game.n_al))
                         for s, s2 in zip(locs, locs2)]
            P[i, j] = next_g[g2] * math.prod(per_agent)
    mu = np.array([game.mu0_g[s_g] * init_locals(locs) for s_g, locs in joint])
    value = 0.0
    for t in range(horizon):
        value += game.gamma**t * mu @ R
        mu = mu @ P
    return value


def _iid_locals(game):
    return lambda locs: math.prod(game.mu0_l[s] for s in locs)


def _dirichlet_locals(alpha, n_sl):
    """Joint law of n iid draws from p ~ Dirichlet(alpha): the Dirichlet-multinomial (Polya urn)."""
    def prob(locs):
        c = np.bincount(locs, minlength=n_sl)
        log_p = math.lgamma(n_sl * alpha) - math.lgamma(n_sl * alpha + len(locs))
        log_p += sum(math.lgamma(alpha + cj) - math.lgamma(alpha) for cj in c)
        return math.exp(log_p)
    return prob


def _deterministic_global(pi_g, n_ag):
    return lambda s_g, F: np.eye(n_ag)[pi_g[s_g, rank(F)]]


@pytest.mark.parametrize("n,k", [(2, 1), (3, 2), (3, 3)])
def test_rollout_welfare_matches_exact_value(n, k):
    rng = np.random.default_rng(10 * n + k)
    game = _random_game(rng)
    pi_g, pi_l = _random_policies(rng, game, k)
    horizon = 6
    exact = _exact_welfare(game, _deterministic_global(pi_g, game.n_ag), pi_l, n, k, horizon,
                           _iid_locals(game))
    est = rollout_welfare(game, pi_g, pi_l, k, n=n, horizon=horizon, seeds=4, rollouts=20000, seed=1)
    # 2 x the 95% half-width is ~4 standard errors: a correct kernel cannot fail by chance,
    # and the half-width (~0.2% of the value) is far below any modelling slip.
    assert est.ci95 < 0.01 * abs(exact)
    assert abs(est.mean - exact) <= 2 * est.ci95, (est.mean, exact, est.ci95)
    # power: the authors' evaluator order (locals move under s_g') is told apart
    other = _exact_welfare(game, _deterministic_global(pi_g, game.n_ag), pi_l, n, k, horizon,
                           _iid_locals(game), locals_move_under_next_g=True)
    assert abs(est.mean - other) > 4 * est.ci95, (est.mean, other, est.ci95)


def test_a_fresh_subset_is_drawn_at_every_step():
    """A policy that reveals which local was sampled: two frozen locals (P_l = identity, each in state
    0 or 1 with probability 1/2), k = 1, the depot moves to the sampled local's state and earns 1 per
    move (r_g = [a_g != s_g]). When the two locals differ (probability 1/2) a fresh sample is a fair
    coin each step and the depot moves with probability 1/2; when they agree it moves at most once.
    So with mu0_g uniform the welfare is 1/4 + (1/4) sum_{t<H} gamma^t; a subset drawn once per
    rollout would give 1/2."""
    gamma, horizon = 0.9, 20
    game = make_game(P_g=np.stack([np.eye(2)] * 2), P_l=np.broadcast_to(np.eye(2)[:, None, None, :], (2, 2, 1, 2)),
                     r_g=1.0 - np.eye(2), r_l=np.zeros((2, 2, 1)), gamma=gamma)
    pi_g = np.zeros((2, 2), np.int32)
    for F in ([1, 0], [0, 1]):
        pi_g[:, rank(np.array(F))] = np.argmax(F)  # the depot heads for the sampled local's state
    exact = 0.25 + 0.25 * (1 - gamma**horizon) / (1 - gamma)
    est = rollout_welfare(game, pi_g, np.ones((2, 2, 1)), 1, n=2, horizon=horizon, seeds=2, rollouts=5000)
    assert abs(est.mean - exact) <= 2 * est.ci95 < 0.1, (est.mean, exact, est.ci95)


@pytest.mark.kernels
@pytest.mark.parametrize("gain", [0.25, 0.6])
def test_a_filter_forgets_its_prior_at_rate_one_minus_gain(gain):
    """The filter's memory, through the rollout kernel: frozen locals (P_l = identity), every robot
    sampled (k = n), and a prior mu0_l worth the filter's steady weight W = k (1 - gain) / gain. Then
    each correction's gain is exactly `gain` and the estimate's distance to the (constant) fleet
    shrinks by 1 - gain per decision: error_t = TV_0 (1 - gain)^(t+1), TV_0 = the prior's distance,
    which varies by rollout. So the mean error over H decisions is (1 - (1 - gain)^H) / (H gain)
    times that over one decision, for the same rollouts (same seed: same initial fleets)."""
    k, horizon = 4, 12
    game = make_game(P_g=np.ones((1, 1, 1)), P_l=np.ones((2, 1, 1, 1)) * np.eye(2)[:, None, None, :],
                     r_g=np.zeros((1, 1)), r_l=np.zeros((2, 1, 1)), gamma=0.9, mu0_l=[0.3, 0.7])
    spec = ObserverSpec("filter", gain, k, prior=k * (1 - gain) / gain)
    pi_g = np.zeros((1, n_count_vectors(k, 2)), np.int32)
    args = dict(n=k, seeds=2, rollouts=50, seed=8, observer=spec)
    first = rollout_welfare(game, pi_g, np.ones((2, 1, 1)), k, horizon=1, **args).estimation_error
    mean = rollout_welfare(game, pi_g, np.ones((2, 1, 1)), k, horizon=horizon, **args).estimation_error
    assert first >= 0.05 * (1 - gain)  # 4 x 0.3 robots is never a count: every prior is off by >= 0.05
    assert mean / first == pytest.approx((1 - (1 - gain) ** horizon) / (horizon * gain), rel=1e-12)


@pytest.mark.kernels
def test_nash_gap_of_non_equilibrium_pairs_is_the_larger_gain():
    """Two pairs away from equilibrium, one exploitable by the global agent and one by the locals:
    the gap is the larger of the two (independently tested) unilateral gains each time."""
    game = random_game(41, n_sg=2, n_ag=3, n_sl=3, n_al=2, gamma=0.8)
    k = 2
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    best_global = g_learn(game, uniform, k, m=30, seed=0).pi_g  # global best response; locals exploitable
    n_f = n_count_vectors(k, game.n_sl)
    worst = None  # the constant a_g whose locals' best response leaves the global agent most to gain
    for a_g in range(game.n_ag):
        pi_g = np.full((game.n_sg, n_f), a_g, np.int32)
        pi_l = l_learn(game, pi_g, k).pi_l
        gain = global_best_response_gain(game, pi_g, pi_l, k, m=30, seed=0)
        if worst is None or gain > worst[0]:
            worst = (gain, pi_g, pi_l)
    sides = []
    for pi_g, pi_l in ((best_global, uniform), worst[1:]):
        gap = nash_gap(game, pi_g, pi_l, k, m=30, seed=0)
        global_gain = global_best_response_gain(game, pi_g, pi_l, k, m=30, seed=0)
        local_gain = local_best_response_gain(game, pi_g, pi_l, k)
        assert (gap.global_gain, gap.local_gain) == pytest.approx((global_gain, local_gain), abs=1e-9)
        assert abs(global_gain - local_gain) > 0.05
        assert gap.gap == pytest.approx(max(global_gain, local_gain), abs=1e-9)
        sides.append(global_gain > local_gain)
    assert sides == [False, True]


def test_dirichlet_initial_states_match_exact_value():
    rng = np.random.default_rng(7)
    game = _random_game(rng)
    n, k, alpha = 3, 2, 0.3
    pi_g, pi_l = _random_policies(rng, game, k)
    exact = _exact_welfare(game, _deterministic_global(pi_g, game.n_ag), pi_l, n, k, 5,
                           _dirichlet_locals(alpha, game.n_sl))
    est = rollout_welfare(game, pi_g, pi_l, k, n=n, horizon=5, seeds=4, rollouts=20000, seed=2,
                          dirichlet_alpha=alpha)
    assert abs(est.mean - exact) <= 2 * est.ci95, (est.mean, exact, est.ci95)


def test_the_shared_driver_loses_no_reply_by_default():
    """_estimate without `reply_loss` (how baselines scores a uniformly random a_g) loses nothing
    (module docstring: default 0): every decision hears all k replies, and the rollouts are
    rollout_welfare's at reply_loss 0. A filter with a prior never waits for a first reply, so a
    default that lost replies fails here at once; the uniform_random baseline below would wait
    forever at 1.0."""
    rng = np.random.default_rng(5)
    game = _random_game(rng)
    k, args = 2, dict(n=4, horizon=3, seeds=1, rollouts=20, seed=4)
    pi_g, pi_l = _random_policies(rng, game, k)
    observer = ObserverSpec("filter", 0.5, k, prior=2.0)
    P_fused, r_fused = fold_local_policy(game, pi_l)
    est = _estimate(game, pi_g, P_fused, r_fused, game.P_g, game.r_g, k, args["n"], args["horizon"],
                    args["seeds"], args["rollouts"], args["seed"], None, observer)
    assert est.replies == k
    explicit = rollout_welfare(game, pi_g, pi_l, k, observer=observer, reply_loss=0.0, **args)
    assert np.array_equal(est.returns, explicit.returns)


def test_uniform_random_baseline_matches_exact_value():
    rng = np.random.default_rng(3)
    game = _random_game(rng, n_ag=3)
    n, k = 3, 2
    uniform_l = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    exact = _exact_welfare(game, lambda s_g, F: np.full(game.n_ag, 1.0 / game.n_ag), uniform_l,
                           n, k, 6, _iid_locals(game))
    est = baselines(game, k, n=n, horizon=6, seeds=4, rollouts=20000, seed=3,
                    names=("uniform_random",))["uniform_random"]
    assert abs(est.mean - exact) <= 2 * est.ci95, (est.mean, exact, est.ci95)


def test_best_constant_global_matches_brute_force_over_constants_and_local_policies():
    """Max over every constant a_g and every deterministic pi_l of the exact value.

    With a constant a_g the locals are independent given the s_g chain, so the
    n-agent welfare equals one agent's (n = k = 1 in the exact chain); gamma^H is
    ~1e-9, so the finite horizon is the infinite-horizon problem L-LEARN solves.
    """
    rng = np.random.default_rng(8)
    game = _random_game(rng, n_ag=2, n_sl=3, n_al=2, gamma=0.6)
    horizon = 40
    values = {}
    for a_g in range(game.n_ag):
        for actions in itertools.product(range(game.n_al), repeat=game.n_sl * game.n_sg):
            pi_l = np.eye(game.n_al)[np.reshape(actions, (game.n_sl, game.n_sg))]
            values[a_g, actions] = _exact_welfare(game, lambda s_g, F, a_g=a_g: np.eye(game.n_ag)[a_g], pi_l,
                                                  1, 1, horizon, _iid_locals(game))
    (best_a_g, _), best_value = max(values.items(), key=lambda item: item[1])
    est = baselines(game, 2, n=5, horizon=horizon, seeds=4, rollouts=5000, seed=4,
                    names=("best_constant_global",))["best_constant_global"]
    assert est.detail == f"a_g = {best_a_g}"
    assert abs(est.mean - best_value) <= 2 * est.ci95, (est.mean, best_value, est.ci95)


def test_baselines_and_nash_gap_of_a_trained_pair():
    rng = np.random.default_rng(9)
    game = _random_game(rng)
    k = 2
    trained = alternating_marl(game, k, m=8, rounds=3, seed=0)
    gap = nash_gap(game, trained.pi_g, trained.pi_l, k, m=8, seed=0)
    # the same gains alternating_marl logged for the pair it returned
    assert gap.global_gain == pytest.approx(trained.global_gain, abs=1e-4)
    assert gap.local_gain == pytest.approx(trained.local_gain, abs=1e-9)
    assert gap.gap == max(gap.global_gain, gap.local_gain) >= 0
    found = baselines(game, k, n=20, horizon=10, seeds=2, rollouts=200, seed=0)
    assert list(found) == list(BASELINES)
    uniform, constant = found["uniform_random"], found["best_constant_global"]
    # the best constant dispatcher with best-responding locals beats everyone acting at random
    assert constant.mean - constant.ci95 > uniform.mean + uniform.ci95
    with pytest.raises(EvaluationError, match="unknown baseline"):
        baselines(game, k, names=("oracle",))


def test_ci_shrinks_like_one_over_sqrt_rollouts_and_covers_the_mean():
    rng = np.random.default_rng(5)
    game = _random_game(rng)
    pi_g, pi_l = _random_policies(rng, game, 2)
    small = rollout_welfare(game, pi_g, pi_l, 2, n=20, horizon=10, seeds=2, rollouts=1000, seed=0)
    large = rollout_welfare(game, pi_g, pi_l, 2, n=20, horizon=10, seeds=8, rollouts=1000, seed=0)
    assert small.ci95 / large.ci95 == pytest.approx(2.0, rel=0.15)
    assert abs(small.mean - large.mean) <= small.ci95 + large.ci95


@pytest.mark.kernels
def test_same_seed_same_result_and_seed_prefix_is_stable():
    rng = np.random.default_rng(6)
    game = _random_game(rng)
    pi_g, pi_l = _random_policies(rng, game, 2)
    args = dict(n=50, horizon=20, rollouts=7)
    a = rollout_welfare(game, pi_g, pi_l, 2, seeds=3, seed=11, **args)
    b = rollout_welfare(game, pi_g, pi_l, 2, seeds=3, seed=11, **args)
    c = rollout_welfare(game, pi_g, pi_l, 2, seeds=3, seed=12, **args)
    more = rollout_welfare(game, pi_g, pi_l, 2, seeds=5, seed=11, **args)
    assert np.array_equal(a.returns, b.returns)
    assert not np.array_equal(a.returns, c.returns)
    assert np.array_equal(more.returns[:3], a.returns)
    assert a.returns.shape == (3, 7) and a.agent_steps == 3 * 7 * 50 * 20


def test_defaults_are_the_documented_deployment():
    """n = 1000 locals, horizon 100, 15 seeds x 50 rollouts (the README's `altmarl evaluate` example),
    for the policy and the baselines it is compared with."""
    rng = np.random.default_rng(6)
    game = _random_game(rng)
    pi_g, pi_l = _random_policies(rng, game, 2)
    default = rollout_welfare(game, pi_g, pi_l, 2)
    assert default.returns.shape == (15, 50) and default.agent_steps == 15 * 50 * 1000 * 100
    baseline = baselines(game, 2, names=["uniform_random"])["uniform_random"]  # scored like the policy
    assert baseline.returns.shape == (15, 50) and baseline.agent_steps == 15 * 50 * 1000 * 100


@pytest.mark.kernels
def test_t_quantile_and_ci_against_known_values():
    # published two-sided 95% t quantiles
    for df, q in [(1, 12.7062), (2, 4.3027), (3, 3.1824), (5, 2.5706), (10, 2.2281), (120, 1.9799)]:
        assert t_quantile_975(df) == pytest.approx(q, abs=4e-3)
    mean, half = mean_ci95(np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and half == pytest.approx(3.1824 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=2e-3)


# ---------------------------------------------------------------------------- reply loss

# Returns of the two instances in the next test, recorded on main at d014f3a, before reply loss existed.
_RETURNS_BEFORE_REPLY_LOSS = {
    "fresh": [7.840688825559357, 5.809567235627837, 7.167733944992411, 8.051598890190203, 5.762814382660094,
              5.611742901994212],
    "filter": [8.706233608959762, 7.327769256401398, 11.545075576299306, 9.662200111851426, 6.6416252639564775,
               7.575505488594773],
}


@pytest.mark.kernels
def test_without_reply_loss_the_rollouts_are_those_of_before():
    """reply_loss 0 (the default) draws nothing more and decides as before the option existed: the
    returns recorded then, for fresh and for a filter (rel 1e-12 leaves another libm its last bits; a
    changed draw moves a return by O(1)), and every decision used all k replies."""
    rng = np.random.default_rng(5)
    game = _random_game(rng)
    pi_g, pi_l = _random_policies(rng, game, 2)
    filter_pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(3, game.n_sl))).astype(np.int32)
    args = dict(n=5, horizon=8, seeds=2, rollouts=3, seed=4)
    for name, table, observer in (("fresh", pi_g, None), ("filter", filter_pi_g, ObserverSpec("filter", 0.5, 3, 1.0))):
        default = rollout_welfare(game, table, pi_l, 2, observer=observer, **args)
        none_lost = rollout_welfare(game, table, pi_l, 2, observer=observer, reply_loss=0.0, **args)
        assert np.array_equal(default.returns, none_lost.returns)
        assert default.returns.ravel().tolist() == pytest.approx(_RETURNS_BEFORE_REPLY_LOSS[name], rel=1e-12)
        assert default.replies == 2.0


def _exact_welfare_with_reply_loss(game, pi_g, pi_l, n, k, horizon, p, keep_last=True):
    """Fresh observer whose k sampled replies are each lost with probability p: the exact finite-horizon
    value, by enumerating (s_g, the locals' states, the last a_g), every k-subset and every pattern of
    lost replies. m >= 1 replies: a_g = pi_g at their counts scaled to k (k is a multiple of every m here,
    so the scaling is exact); none: the last a_g; the first decision is conditioned on a reply arriving.
    keep_last=False conditions every decision on a reply (a rule the coordinator does not follow)."""
    n_sg, n_ag, n_sl = game.n_sg, game.n_ag, game.n_sl
    fused_P = np.einsum("sga,sgat->gst", pi_l, game.P_l)
    fused_r = np.einsum("sga,sga->gs", pi_l, game.r_l)
    fleets = list(itertools.product(range(n_sl), repeat=n))
    moves = np.array([[[math.prod(fused_P[g, s, s2] for s, s2 in zip(a, b)) for b in fleets] for a in fleets]
                      for g in range(n_sg)])  # [s_g, fleet, fleet']
    local_reward = np.array([[np.mean([fused_r[g, s] for s in fleet]) for fleet in fleets] for g in range(n_sg)])
    heard = np.zeros((n_sg, len(fleets), n_ag))  # P(some reply arrives and a_g = a)
    silent = np.zeros((n_sg, len(fleets)))  # P(no reply arrives)
    subsets = list(itertools.combinations(range(n), k))
    for g, (f, fleet), subset, arrived in itertools.product(range(n_sg), enumerate(fleets), subsets,
                                                             itertools.product((False, True), repeat=k)):
        weight = math.prod(1 - p if a else p for a in arrived) / len(subsets)
        kept = [fleet[j] for j, a in zip(subset, arrived) if a]
        if kept:
            assert k % len(kept) == 0
            heard[g, f, pi_g[g, rank(np.bincount(kept, minlength=n_sl) * (k // len(kept)))]] += weight
        else:
            silent[g, f] += weight
    asked_again = heard / (1 - silent)[..., None]
    # decide[s_g, fleet, last, a]; last = n_ag: no decision yet
    decide = np.repeat(asked_again[:, :, None, :], n_ag + 1, axis=2)
    if keep_last:
        decide[:, :, :n_ag, :] = heard[:, :, None, :] + silent[:, :, None, None] * np.eye(n_ag)
    dist = np.zeros((n_sg, len(fleets), n_ag + 1))
    dist[:, :, n_ag] = np.outer(game.mu0_g, [math.prod(game.mu0_l[s] for s in fleet) for fleet in fleets])
    value = 0.0
    for t in range(horizon):
        acted = np.einsum("gfl,gfla->gfa", dist, decide)  # [s_g, fleet, a_g]
        value += game.gamma**t * (np.einsum("gfa,ga->", acted, game.r_g) + np.sum(acted.sum(-1) * local_reward))
        dist = np.zeros_like(dist)
        dist[:, :, :n_ag] = np.einsum("gfa,gah,gfe->hea", acted, game.P_g, moves)
    return value


def test_reply_loss_rollouts_match_the_exact_value():
    """n = 3 locals, k = 2, each reply lost with probability 0.6, against the enumerated value; and far
    (> 4 CI) from the value without loss and from that of a rule asking again at every silent decision."""
    rng = np.random.default_rng(102)
    game = _random_game(rng)
    pi_g, pi_l = _random_policies(rng, game, 2)
    n, k, horizon, p = 3, 2, 5, 0.6
    est = rollout_welfare(game, pi_g, pi_l, k, n=n, horizon=horizon, seeds=4, rollouts=20000, seed=1, reply_loss=p)
    exact = _exact_welfare_with_reply_loss(game, pi_g, pi_l, n, k, horizon, p)
    assert est.ci95 < 0.01 * abs(exact)
    assert abs(est.mean - exact) <= 2 * est.ci95, (est.mean, exact, est.ci95)
    # the enumeration without loss is the plain brute force's value, so it enumerates what it claims
    no_loss = _exact_welfare_with_reply_loss(game, pi_g, pi_l, n, k, horizon, 0.0)
    assert no_loss == pytest.approx(_exact_welfare(game, _deterministic_global(pi_g, game.n_ag), pi_l, n, k, horizon,
                                                   _iid_locals(game)), rel=1e-12)
    asking_again = _exact_welfare_with_reply_loss(game, pi_g, pi_l, n, k, horizon, p, keep_last=False)
    assert min(abs(est.mean - no_loss), abs(est.mean - asking_again)) > 4 * est.ci95


@pytest.mark.kernels
def test_each_sampled_reply_is_lost_independently_with_probability_p():
    """lose_replies over 20,000 decisions of k = 4 sampled agents: the m that arrive are Binomial(4, 1 - p)
    (every count within 5 sd), the agent sampled first is lost at rate p, and the counts left are those
    of the agents that arrived."""
    k, p, draws = 4, 0.3, 20000
    states = np.array([0, 1, 1, 2, 5, 5], np.int32)  # agents 0..3 sampled (order[:k]): one in state 0
    order = np.arange(states.shape[0])
    stream = rollout_streams(3, 1)[0]
    arrived = np.zeros(k + 1)
    first_lost = 0
    for _ in range(draws):
        sample = np.bincount(states[:k], minlength=6).astype(np.int64)
        m, *stream = lose_replies(order, states, k, p, sample, *stream)
        stream = np.array(stream, np.uint64)
        assert sample.sum() == m and (sample >= 0).all() and (sample <= np.bincount(states[:k], minlength=6)).all()
        arrived[m] += 1
        first_lost += sample[0] == 0
    pmf = np.array([math.comb(k, m) * (1 - p) ** m * p ** (k - m) for m in range(k + 1)])
    assert np.all(np.abs(arrived - draws * pmf) <= 5 * np.sqrt(draws * pmf * (1 - pmf))), arrived / draws
    assert abs(first_lost / draws - p) <= 5 * math.sqrt(p * (1 - p) / draws)


@pytest.mark.kernels
@pytest.mark.parametrize("observer, asks_again", [(None, True), (ObserverSpec("filter", 0.5, 3), True),
                                                  (ObserverSpec("filter", 0.5, 3, prior=2.0), False)])
def test_replies_per_decision_and_the_first_decision_waiting_for_one(observer, asks_again):
    """Mean replies per decision, k = 3 lost at p = 0.5, 2 decisions: k(1 - p) at the second; at the first
    k(1 - p) / (1 - p^k) (conditioned on m >= 1) when there is nothing to decide on without a reply (fresh,
    a filter without a prior), k(1 - p) when a filter's prior decides alone. The two differ by ~10 sd."""
    k, p, rollouts = 3, 0.5, 10000
    rng = np.random.default_rng(7)
    game = _random_game(rng)
    pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(k, game.n_sl))).astype(np.int32)
    pi_l = _random_policies(rng, game, k)[1]
    est = rollout_welfare(game, pi_g, pi_l, k, n=5, horizon=2, seeds=2, rollouts=rollouts, seed=3,
                          observer=observer, reply_loss=p)
    first = k * (1 - p) / (1 - p**k) if asks_again else k * (1 - p)
    sd = math.sqrt(k * p * (1 - p) / (2 * 2 * rollouts))  # per decision sd k p (1 - p), 2 x 2 x rollouts decisions
    assert abs(est.replies - (first + k * (1 - p)) / 2) <= 4 * sd, est.replies


def _value_of_a_state_rule(game, pi_l, rule, horizon):
    """Exact value when a_g = rule[s_g]: one local's joint chain with s_g (locals are exchangeable, so the
    mean local reward is one local's expected reward)."""
    fused_P = np.einsum("sga,sgat->gst", pi_l, game.P_l)
    fused_r = np.einsum("sga,sga->gs", pi_l, game.r_l)
    joint = np.outer(game.mu0_g, game.mu0_l)  # [s_g, s_l]
    value = 0.0
    for t in range(horizon):
        value += game.gamma**t * sum(joint[g].sum() * game.r_g[g, rule[g]] + joint[g] @ fused_r[g]
                                     for g in range(game.n_sg))
        joint = sum(np.outer(game.P_g[g, rule[g]], joint[g] @ fused_P[g]) for g in range(game.n_sg))
    return value


def test_fresh_with_nearly_every_reply_lost_keeps_its_first_action():
    """p = 0.999, k = 1: the first decision waits for its reply and nearly no later one hears any (5 in
    1,000 rollouts, a bias below half the CI), so a fresh depot keeps its first action: from s_g = 0,
    where pi_g says 0, a_g = 0 throughout, the exact value of the constant rule; pi_g's own rule
    a_g = s_g (no loss) is > 4 CI away."""
    rng = np.random.default_rng(11)
    game = make_game(P_g=rng.dirichlet(np.ones(2), size=(2, 2)), P_l=rng.dirichlet(np.ones(2), size=(2, 2, 1)),
                     r_g=rng.uniform(-1, 1, (2, 2)), r_l=rng.uniform(0, 3, (2, 2, 1)), gamma=0.9, mu0_g=[1.0, 0.0])
    pi_l = np.ones((2, 2, 1))
    pi_g = np.repeat(np.arange(2, dtype=np.int32)[:, None], n_count_vectors(1, 2), axis=1)  # a_g = s_g
    horizon = 6
    est = rollout_welfare(game, pi_g, pi_l, 1, n=2, horizon=horizon, seeds=2, rollouts=2000, seed=5,
                          reply_loss=0.999)
    kept = _value_of_a_state_rule(game, pi_l, [0, 0], horizon)
    assert abs(est.mean - kept) <= 2 * est.ci95, (est.mean, kept, est.ci95)
    assert abs(est.mean - _value_of_a_state_rule(game, pi_l, [0, 1], horizon)) > 4 * est.ci95


@pytest.mark.kernels
@pytest.mark.parametrize(
    "change, error, needle",
    [
        (dict(pi_g=np.zeros((2, 4), np.int32)), PolicyError, r"pi_g: has shape \(2, 4\)"),
        (dict(pi_g_value=5), PolicyError, r"pi_g\[1, 3\]: is 5"),
        (dict(pi_g=np.zeros((2, 6))), PolicyError, "integer global actions"),
        (dict(pi_l_scale=0.5), PolicyError, r"pi_l\[0, 0, :\]: sums to 0.5"),
        (dict(pi_l_nan=True), PolicyError, r"pi_l\[0, 1, 0\]: is nan"),
        (dict(k=4), EvaluationError, "k: k = 4 exceeds the number of local agents n = 3"),
        (dict(seeds=0), EvaluationError, "seeds: must be an integer >= 1, got 0"),
        (dict(reply_loss=1.0), EvaluationError, "reply_loss: must be below 1"),
        (dict(reply_loss=-0.1), EvaluationError, r"reply_loss: must be in \[0, 1\], got -0.1"),
        (dict(reply_loss=float("nan")), EvaluationError, "reply_loss: must be finite"),
        (dict(dirichlet_alpha=0.0), EvaluationError, r"dirichlet_alpha: must be > 0, got 0\.0"),
        (dict(dirichlet_alpha=-1e-300), EvaluationError, r"dirichlet_alpha: must be > 0, got -1e-300"),
        (dict(dirichlet_alpha=float("inf")), EvaluationError, "dirichlet_alpha: must be finite"),
    ],
)
def test_bad_arguments_raise_named_errors(change, error, needle):
    rng = np.random.default_rng(0)
    game = _random_game(rng)
    pi_g, pi_l = _random_policies(rng, game, 2)
    pi_g = change.get("pi_g", pi_g)
    if "pi_g_value" in change:
        pi_g[1, 3] = change["pi_g_value"]
    if "pi_l_scale" in change:
        pi_l = pi_l * change["pi_l_scale"]
    if "pi_l_nan" in change:
        pi_l[0, 1, 0] = np.nan
    with pytest.raises(error, match=needle):
        rollout_welfare(game, pi_g, pi_l, change.get("k", 2), n=3, horizon=2,
                        seeds=change.get("seeds", 1), rollouts=2, reply_loss=change.get("reply_loss", 0.0),
                        dirichlet_alpha=change.get("dirichlet_alpha"))


def test_t_quantile_is_within_its_documented_error_of_the_exact_quantile():
    """Exact to rounding at df 1 and 2 (closed forms: a few ulps); the Cornish-Fisher expansion within 4e-3 at
    df 3 and 4, 3e-4 from df 5 and 1e-5 from df 10 (the docstring's bounds) of scipy's quantile."""
    from scipy.stats import t

    for df, bound in [(1, 1e-14), (2, 1e-14), (3, 4e-3), (4, 4e-3)] + [(df, 3e-4) for df in range(5, 10)] + \
            [(df, 1e-5) for df in range(10, 400)]:
        assert abs(t_quantile_975(df) - t.ppf(0.975, df)) < bound, df


def test_rollout_sizes_are_refused_just_past_their_documented_limits():
    """docs/operations.md: n <= 2^31 - 1 (int32), horizon <= 1,000,000, seeds x rollouts <= 1,000,000."""
    int32_max = int(np.iinfo(np.int32).max)
    check_rollout_size(EvaluationError, int32_max, 1_000_000, 1000, 1000)  # each at its limit
    for sizes, needle in (((int32_max + 1, 1, 1, 1), r"^n: n = 2147483648 is more than 2147483647 \(int32\) agents"),
                          ((1, 1_000_001, 1, 1), r"^horizon: 1000001 epochs is more than 1000000"),
                          ((1, 1, 1001, 1000), r"^rollouts: seeds x rollouts = 1001000 is more than 1000000")):
        with pytest.raises(EvaluationError, match=needle):
            check_rollout_size(EvaluationError, *sizes)


def test_the_rollout_memory_counts_every_array_the_rollouts_allocate():
    """Per rollout: its xoshiro256+ state (4 uint64), return, error and replies (a float64 each), and its start
    distribution with its cumulative (S_l float64 each); per rollout running at once (a thread): each agent's
    state (int32) and slot of the running permutation (int64), docs/operations.md's 12 bytes per agent."""
    per_agent = np.dtype(np.int32).itemsize + np.dtype(np.int64).itemsize
    assert per_agent == 12
    for n, n_sl, seeds, rollouts, threads in ((1, 1, 1, 1, 1), (1000, 3, 15, 50, 2), (7, 5, 2, 3, 4)):
        per_rollout = 4 * np.dtype(np.uint64).itemsize + 3 * 8 + 2 * n_sl * np.dtype(np.float64).itemsize
        assert rollout_bytes(n, n_sl, seeds, rollouts, threads) == seeds * rollouts * per_rollout + \
            n * per_agent * threads



def test_seed_streams_are_the_documented_spawn_tree_and_hold_only_what_the_budget_counts():
    """Seed s's rollouts run on SeedSequence(seed).spawn(seeds)[s].spawn(2): the first child's words are their
    xoshiro states, the second's Generator draws their Dirichlet start distributions (built here the long way).
    And a million seeds are accepted: what the streams hold per rollout is within rollout_bytes' per-rollout
    count (traced: 10x the seeds, no SeedSequence or Generator kept per seed; ~1 KB a seed before)."""
    from altmarl_ros.core.evaluate import _rng_streams

    alpha = np.array([0.3, 0.3, 0.3])
    states, init_l = _rng_streams(6, 3, 4, alpha)
    for s, child in enumerate(np.random.SeedSequence(6).spawn(3)):
        stream, init = child.spawn(2)
        np.testing.assert_array_equal(states[4 * s:4 * s + 4], stream.generate_state(16, np.uint64).reshape(4, 4))
        np.testing.assert_array_equal(init_l[4 * s:4 * s + 4], np.random.default_rng(init).dirichlet(alpha, 4))
    assert _rng_streams(6, 3, 4)[1] is None

    small, large = (traced_peak(lambda seeds=seeds: _rng_streams(0, seeds, 1, alpha)) for seeds in (2_000, 20_000))
    per_rollout = rollout_bytes(0, len(alpha), 1, 1, 1)
    assert large - small <= 18_000 * per_rollout, (small, large, per_rollout)


def test_an_all_zero_xoshiro_state_is_replaced_by_a_valid_one(monkeypatch):
    """xoshiro256+ stays at zero forever from the all-zero state, so a stream whose words are all zero
    (probability 2^-256: forced here through a SeedSequence whose words are zeros) must start elsewhere; the
    other rollouts keep their words."""
    from altmarl_ros.core.evaluate import _rng_streams

    real = np.random.SeedSequence

    class ZeroWordsForSeed1(real):
        def spawn(self, n_children):
            children = super().spawn(n_children)
            if self.spawn_key == (1,):
                children[0].generate_state = lambda n_words, dtype: np.zeros(n_words, dtype)
            return children
    monkeypatch.setattr(np.random, "SeedSequence", ZeroWordsForSeed1)
    states = _rng_streams(3, 2, 2)[0]
    monkeypatch.setattr(np.random, "SeedSequence", real)
    assert states[2:].any(axis=-1).all(), states
    np.testing.assert_array_equal(states[:2], _rng_streams(3, 2, 2)[0][:2])

@pytest.mark.kernels
def test_a_population_step_is_advance_then_a_fresh_subset_on_one_stream():
    """step_population = advance then sample_subset, the stream carried through and written back;
    start_population = the identity order, draw_population, then sample_subset."""
    from altmarl_ros.core.evaluate import advance, draw_population, sample_subset, start_population, step_population

    rng = np.random.default_rng(12)
    n, n_sl, k = 9, 3, 4
    rows = cumulative(rng.dirichlet(np.ones(n_sl), size=2 * n_sl))  # (state, action) codes
    cum_g, cum_g0, cum_l0 = cumulative(rng.dirichlet(np.ones(2))), cumulative(np.ones(2) / 2), \
        cumulative(rng.dirichlet(np.ones(n_sl)))
    stream = rollout_streams(4, 1)[0].copy()
    states, counts, order, sample = (np.zeros(n, np.int32), np.zeros(n_sl, np.int64), rng.permutation(n),
                                     np.zeros(n_sl, np.int64))
    s_g = start_population(cum_g0, cum_l0, states, counts, order, k, sample, stream)
    ref_states, ref_counts, ref_order, ref_sample = (np.zeros(n, np.int32), np.zeros(n_sl, np.int64),
                                                     np.arange(n), np.zeros(n_sl, np.int64))
    ref_g, *words = draw_population(cum_g0, cum_l0, ref_states, ref_counts, *rollout_streams(4, 1)[0])
    words = np.array(sample_subset(ref_order, ref_states, k, ref_sample, *np.array(words, np.uint64)), np.uint64)
    assert s_g == ref_g and list(stream) == list(words)
    for got, ref in ((states, ref_states), (counts, ref_counts), (order, ref_order), (sample, ref_sample)):
        np.testing.assert_array_equal(got, ref)
    for _ in range(3):
        codes = (2 * states + rng.integers(0, 2, n)).astype(np.int32)
        s_g = step_population(rows, codes, states, counts, cum_g, order, k, sample, stream)
        ref_g, *words = advance(rows, codes, ref_states, ref_counts, cum_g, *words)
        words = np.array(sample_subset(ref_order, ref_states, k, ref_sample, *np.array(words, np.uint64)), np.uint64)
        assert s_g == ref_g and list(stream) == list(words)
        for got, ref in ((states, ref_states), (counts, ref_counts), (order, ref_order), (sample, ref_sample)):
            np.testing.assert_array_equal(got, ref)
        assert sample.sum() == k and counts.sum() == n


def test_cumulative_rows_end_at_exactly_one():
    """The last entry is pinned to 1.0 where the sums round below it (ten 0.1s add up to 0.9999999999999999):
    decision.local_actions counts the entries a uniform in [0, 1) reaches, the last included."""
    probs = np.full((2, 3, 10), 0.1)
    assert np.cumsum(probs[0, 0])[-1] < 1.0  # the rounding the pin is for
    cum = cumulative(probs)
    assert (cum[..., -1] == 1.0).all()
    np.testing.assert_array_equal(cum[..., :-1], np.cumsum(probs, axis=-1)[..., :-1])
