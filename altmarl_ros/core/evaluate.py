"""Welfare of a deployed joint policy by n-agent Monte Carlo rollouts, Nash gap, baselines.

Welfare (the paper's and the authors' `AlternatingMARL.evaluate` definition):
the discounted return  sum_{t=0}^{H-1} gamma^t [ r_g(s_g, a_g) + (1/n) sum_i r_l(s_i, s_g, a_i) ]
of the policy as deployed: each step a fresh uniform k-subset of the n locals
(without replacement) is summarised as a count vector F, a_g = pi_g[s_g, rank(F)],
every local draws a_i ~ pi_l(.|s_i, s_g), then s_g' ~ P_g(.|s_g, a_g) and
s_i' ~ P_l(.|s_i, s_g, a_i) with the *current* s_g (the model's definition, which
G-LEARN also uses; the authors' evaluator moves the locals under the new s_g).

Two exact simplifications keep the kernel at one uniform per agent per step:
a_i only enters through r_l and P_l, so the kernel draws s_i' from the fused
P~_l(s'|s, s_g) = sum_a pi_l(a|s,s_g) P_l(s'|s,s_g,a) and scores the expected
local reward r~_l(s, s_g) (conditional expectation given the state: the same mean
return, lower variance). Likewise a uniformly random global action is folded
into an averaged single-action global model.

Reply loss (`reply_loss` p, default 0: none, and no extra draw): each of the k sampled
locals' replies is lost independently with probability p and the decision uses the m that
arrived, as the coordinator does with a short sample (core.observer: fresh scales F to k,
the filter weighs the m samples by m). With m = 0 a fresh coordinator skips the decision
and the depot keeps its goal, so a_g stays the last one; a filter decides on its
prediction. The first decision waits for a reply (the fleet holds still until the first
command): a fresh observer, or a filter without a prior, asks again until one arrives.

The 95% CI is Student-t on the per-rollout returns: every rollout (seeds x
rollouts of them) has its own independent random stream, so they are iid.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from altmarl_ros.core import budget
from altmarl_ros.core._checks import as_float, integer, probability
from altmarl_ros.core.baselines import BASELINES, score_candidates
from altmarl_ros.core.counts import rank_kernel, n_count_vectors
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.glearn import global_best_response_gain
from altmarl_ros.core.llearn import local_best_response_gain
from altmarl_ros.core.observer import correct_kernel, predict_kernel, round_kernel, scale_kernel, still_model
from altmarl_ros.core.observers import ObserverSpec, fresh
from altmarl_ros.core.policy import build_policy
from altmarl_ros.core.rng import xoshiro_next
from altmarl_ros.errors import LearnError

MAX_AGENTS = 2**31 - 1  # n: agent indices and counts stay exact in int32
MAX_HORIZON = 1_000_000  # decision epochs per rollout
MAX_ROLLOUTS = 1_000_000  # seeds x rollouts
_BYTES_PER_AGENT = 12  # _rollout_returns: int32 state + int64 slot of the running permutation


class EvaluationError(LearnError):
    """Bad arguments to the evaluator (sizes, rollout counts); message "<field>: <detail>"."""


@dataclass(frozen=True)
class WelfareEstimate:
    """Mean discounted return with its 95% CI half-width and the raw per-rollout returns."""

    mean: float
    ci95: float
    returns: np.ndarray  # float64 [seeds, rollouts]
    agent_steps: int
    seconds: float
    detail: str = ""  # what a baseline chose, e.g. "a_g = 2"
    # mean total-variation distance between the observer's estimate and the fleet (NaN if not measured)
    estimation_error: float = float("nan")
    # mean replies a decision used (k without reply loss; NaN if not measured)
    replies: float = float("nan")

    @property
    def agent_steps_per_second(self) -> float:
        return self.agent_steps / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class NashGap:
    """Unilateral best-response gains; `gap` is the larger (the exploitability)."""

    global_gain: float
    local_gain: float
    gap: float


# ---------------------------------------------------------------------------
# statistics


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student-t quantile: closed forms for df 1, 2; Cornish-Fisher
    expansion (Abramowitz & Stegun 26.7.5, error < 4e-3 at df=3, < 3e-4 from df=5, < 1e-5 from df=10) beyond."""
    if df == 1:
        return math.tan(math.pi * 0.475)
    if df == 2:
        return 0.95 / math.sqrt(2 * 0.975 * 0.025)
    z = 1.959963984540054
    g = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(gi / df ** (i + 1) for i, gi in enumerate(g))


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and 95% t half-width of iid values (NaN half-width for a single value)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        return float(values.mean()), float("nan")
    sem = values.std(ddof=1) / math.sqrt(values.size)
    return float(values.mean()), float(t_quantile_975(values.size - 1) * sem)


# ---------------------------------------------------------------------------
# numba kernels


@njit(cache=True, inline="always")
def _draw(cum_row, u):
    """Index of the first cumulative entry above u (last entry is exactly 1.0).

    Counts the entries <= u instead of scanning to the first one above: no
    data-dependent loop exit to mispredict (docs/training.md, Kernel figures).
    """
    j = 0
    for i in range(cum_row.shape[0] - 1):
        j += u >= cum_row[i]
    return j


@njit(cache=True, inline="always")
def draw_population(cum_g0, cum_l0, states, counts, s0, s1, s2, s3):
    """Initial state of one rollout: s_g from cum_g0, then agent i's state from cum_l0 (one uniform
    each, in that order); counts <- the agents' state counts. Returns (s_g, stream)."""
    s0, s1, s2, s3, u = xoshiro_next(s0, s1, s2, s3)
    s_g = _draw(cum_g0, u)
    for i in range(states.shape[0]):
        s0, s1, s2, s3, u = xoshiro_next(s0, s1, s2, s3)
        s = _draw(cum_l0, u)
        states[i] = s
        counts[s] += 1
    return s_g, s0, s1, s2, s3


@njit(cache=True, inline="always")
def sample_subset(order, states, k, sample, s0, s1, s2, s3):
    """sample <- the state counts of a fresh uniform k-subset of the agents, without replacement
    (partial Fisher-Yates on the running permutation `order`, k uniforms). Returns the stream."""
    n = order.shape[0]
    sample[:] = 0
    for j in range(k):
        s0, s1, s2, s3, u = xoshiro_next(s0, s1, s2, s3)
        m = j + int(u * (n - j))
        tmp = order[j]
        order[j] = order[m]
        order[m] = tmp
        sample[states[order[j]]] += 1
    return s0, s1, s2, s3


@njit(cache=True, inline="always")
def lose_replies(order, states, k, p, sample, s0, s1, s2, s3):
    """Each reply of the k agents sample_subset just drew (order[:k]) is lost with probability p (one
    uniform each, in sampling order): sample <- the state counts of those that arrived. Returns (m, stream)."""
    m = k
    for j in range(k):
        s0, s1, s2, s3, u = xoshiro_next(s0, s1, s2, s3)
        if u < p:
            sample[states[order[j]]] -= 1
            m -= 1
    return m, s0, s1, s2, s3


@njit(cache=True, inline="always")
def advance(rows, codes, states, counts, cum_g_row, s0, s1, s2, s3):
    """One decision epoch's transition: agent i's next state is drawn from the cumulative row
    rows[codes[i]] (one uniform each, in agent order; codes may be `states` itself), counts <- the
    new state counts, then s_g' from cum_g_row (one uniform). Returns (s_g', stream)."""
    counts[:] = 0
    for i in range(states.shape[0]):
        s0, s1, s2, s3, u = xoshiro_next(s0, s1, s2, s3)
        s = _draw(rows[codes[i]], u)
        states[i] = s
        counts[s] += 1
    s0, s1, s2, s3, u = xoshiro_next(s0, s1, s2, s3)
    return _draw(cum_g_row, u), s0, s1, s2, s3


@njit(cache=True)
def step_population(rows, codes, states, counts, cum_g_row, order, k, sample, stream):
    """advance, then sample_subset of the new states: one step of an environment whose agents choose
    their own actions (rows indexed by state and action in codes). stream: uint64 [4] xoshiro256+
    state, updated in place. Returns s_g'."""
    s0, s1, s2, s3 = stream[0], stream[1], stream[2], stream[3]
    s_g, s0, s1, s2, s3 = advance(rows, codes, states, counts, cum_g_row, s0, s1, s2, s3)
    s0, s1, s2, s3 = sample_subset(order, states, k, sample, s0, s1, s2, s3)
    stream[0], stream[1], stream[2], stream[3] = s0, s1, s2, s3
    return s_g


@njit(cache=True)
def start_population(cum_g0, cum_l0, states, counts, order, k, sample, stream):
    """draw_population, then the first sample_subset (stream updated in place, order reset to the
    identity first). Returns s_g."""
    s0, s1, s2, s3 = stream[0], stream[1], stream[2], stream[3]
    for i in range(order.shape[0]):
        order[i] = i
    counts[:] = 0
    s_g, s0, s1, s2, s3 = draw_population(cum_g0, cum_l0, states, counts, s0, s1, s2, s3)
    s0, s1, s2, s3 = sample_subset(order, states, k, sample, s0, s1, s2, s3)
    stream[0], stream[1], stream[2], stream[3] = s0, s1, s2, s3
    return s_g


@njit(cache=True, parallel=True)
def _rollout_returns(cum_l, rew_l, cum_g, rew_g, pi_g, init_g, init_l, rng_state, n, k, horizon, gamma,
                     P_obs, resolution, forget, estimates, prior_mu, prior_weight, reply_loss, errors, replies):
    """Discounted returns of independent rollouts.

    cum_l [S_g, S_l, S_l] cumulative fused local transitions; rew_l [S_g, S_l] fused local
    reward; cum_g [S_g, A_g, S_g] cumulative global transitions; rew_g [S_g, A_g];
    pi_g [S_g, N_F(resolution)]; init_g [S_g] and init_l [R, S_l] cumulative initial
    distributions; rng_state uint64 [R, 4] (one xoshiro256+ stream per rollout).
    Observer (core.observers' entry): `estimates` False is fresh (pi_g at the k-sample scaled to
    `resolution`, = the sample when resolution = k); True keeps an estimate (a filter) with the
    model P_obs [S_g, S_l, S_l] it predicts with (identity: no prediction), forget = 1 - gain, and its starting
    estimate prior_mu [S_l] with weight prior_weight (0: the first sample alone).
    reply_loss: probability that a sampled agent's reply is lost (module docstring; 0 draws nothing).
    errors [R]: each rollout's mean over decisions of the total-variation distance between
    the estimate pi_g was queried with (before rounding) and the fleet's distribution;
    replies [R]: its mean number of replies per decision.
    """
    n_rollouts = rng_state.shape[0]
    n_sl = cum_l.shape[1]
    out = np.empty(n_rollouts)
    for r in prange(n_rollouts):
        mu = prior_mu.copy()
        scratch = np.zeros(n_sl)
        query = np.zeros(n_sl, np.int64)
        weight = prior_weight
        error = 0.0
        s0 = rng_state[r, 0]
        s1 = rng_state[r, 1]
        s2 = rng_state[r, 2]
        s3 = rng_state[r, 3]
        states = np.empty(n, np.int32)
        order = np.arange(n)
        counts = np.zeros(n_sl, np.int64)
        sample = np.zeros(n_sl, np.int64)
        s_g, s0, s1, s2, s3 = draw_population(init_g, init_l[r], states, counts, s0, s1, s2, s3)
        s_g_prev = s_g
        total = 0.0
        discount = 1.0
        n_replies = 0
        a_g = 0
        for t in range(horizon):
            s0, s1, s2, s3 = sample_subset(order, states, k, sample, s0, s1, s2, s3)
            m = k
            if reply_loss > 0.0:
                m, s0, s1, s2, s3 = lose_replies(order, states, k, reply_loss, sample, s0, s1, s2, s3)
                # no estimate yet and no reply: the first decision asks again (the fleet holds still)
                while m == 0 and t == 0 and not (estimates and prior_weight > 0.0):
                    s0, s1, s2, s3 = sample_subset(order, states, k, sample, s0, s1, s2, s3)
                    m, s0, s1, s2, s3 = lose_replies(order, states, k, reply_loss, sample, s0, s1, s2, s3)
            n_replies += m
            if estimates:
                if t > 0:
                    predict_kernel(mu, P_obs[s_g_prev], scratch)
                weight = correct_kernel(mu, weight, sample, forget)
                round_kernel(mu, resolution, query)
                a_g = pi_g[s_g, rank_kernel(query)]
            elif m > 0:  # fresh without a reply: no decision, a_g stays the last one
                for j in range(n_sl):
                    mu[j] = sample[j] / m
                if resolution == k and m == k:
                    query[:] = sample
                else:
                    scale_kernel(sample, resolution, query)
                a_g = pi_g[s_g, rank_kernel(query)]
            tv = 0.0
            for j in range(n_sl):
                tv += abs(mu[j] - counts[j] / n)
            error += 0.5 * tv
            s_g_prev = s_g
            local = 0.0
            for j in range(n_sl):
                local += counts[j] * rew_l[s_g, j]
            total += discount * (rew_g[s_g, a_g] + local / n)
            discount *= gamma
            if t == horizon - 1:
                break
            s_g, s0, s1, s2, s3 = advance(cum_l[s_g], states, states, counts, cum_g[s_g, a_g], s0, s1, s2, s3)
        out[r] = total
        errors[r] = error / horizon
        replies[r] = n_replies / horizon
    return out


# ---------------------------------------------------------------------------
# drivers


def cumulative(probs: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis with the last entry pinned to exactly 1.0."""
    cum = np.cumsum(probs, axis=-1)
    cum[..., -1] = 1.0
    return np.ascontiguousarray(cum)


def check_policy_arrays(game, pi_g, pi_l, k: int, observer: ObserverSpec | None = None):
    """pi_g [S_g, N_F(resolution)] int32 and pi_l [S_l, S_g, A_l] validated against the game
    and the observer (default fresh); the policy file's own checks: PolicyError naming the
    array and index."""
    artifact = build_policy(pi_g, pi_l, k, game=game, observer=observer)
    return artifact.pi_g, artifact.pi_l


def _rng_streams(seed: int, seeds: int, rollouts: int, alpha=None) -> tuple[np.ndarray, np.ndarray | None]:
    """One xoshiro256+ state per rollout and, given a Dirichlet `alpha` [S_l], each rollout's initial local
    distribution (float64 [seeds * rollouts, S_l]; None without).

    Seed s's streams come only from SeedSequence(seed).spawn(seeds)[s], so adding
    seeds or rollouts never changes the earlier ones' first draws. That child is
    SeedSequence(seed, spawn_key=(s,)), made when its turn comes: a list of every
    seed's SeedSequence and Generator held about 1 KB a seed that rollout_bytes
    does not count (1 GB at a million seeds).
    """
    states = np.empty((seeds, rollouts, 4), np.uint64)
    init_l = None if alpha is None else np.empty((seeds, rollouts, len(alpha)))
    for s in range(seeds):
        stream_ss, init_ss = np.random.SeedSequence(seed, spawn_key=(s,)).spawn(2)
        states[s] = stream_ss.generate_state(4 * rollouts, np.uint64).reshape(rollouts, 4)
        if init_l is not None:
            init_l[s] = np.random.default_rng(init_ss).dirichlet(alpha, size=rollouts)
    zero = ~states.any(axis=-1)  # xoshiro's one forbidden state; astronomically unlikely
    states[zero, 0] = 1
    return states.reshape(seeds * rollouts, 4), None if init_l is None else init_l.reshape(seeds * rollouts, -1)


def rollout_streams(seed: int, rollouts: int) -> np.ndarray:
    """uint64 [rollouts, 4]: the xoshiro256+ states of rollouts 0..rollouts-1 of `seed` with seeds = 1
    (each call's rows are a prefix of a longer call's: SeedSequence.generate_state is prefix-stable)."""
    return _rng_streams(seed, 1, rollouts)[0]


def _estimate(game, pi_g, P_fused, r_fused, P_g, r_g, k, n, horizon, seeds, rollouts, seed,
              dirichlet_alpha, observer=None, P_observer=None, reply_loss=0.0) -> WelfareEstimate:
    """Shared driver: allocate initial distributions and streams, run the kernel, summarise.

    `observer` (default fresh) runs with `P_observer`, the fused model it predicts
    with (default P_fused: the observer knows the model exactly; an observer that does
    not predict: still_model)."""
    observer = fresh(k) if observer is None else observer
    if P_observer is None:
        P_observer = P_fused if observer.kind.predicts else still_model(game.n_sg, game.n_sl)
    alpha = None if dirichlet_alpha is None else np.full(game.n_sl, float(dirichlet_alpha))
    rng_state, init_l = _rng_streams(seed, seeds, rollouts, alpha)
    if init_l is None:
        init_l = np.broadcast_to(game.mu0_l, (seeds * rollouts, game.n_sl))
    pi_g = pi_g.view()
    pi_g.flags.writeable = False  # one compiled signature whether or not the caller's copy is read-only
    errors, replies = np.empty(seeds * rollouts), np.empty(seeds * rollouts)
    start = time.perf_counter()
    returns = _rollout_returns(
        cumulative(P_fused), np.ascontiguousarray(r_fused), cumulative(P_g),
        np.ascontiguousarray(r_g, dtype=np.float64), pi_g, cumulative(game.mu0_g),
        cumulative(init_l), rng_state, n, k, horizon, float(game.gamma),
        np.ascontiguousarray(P_observer, dtype=np.float64), observer.resolution, 1.0 - observer.gain,
        observer.kind.estimates, np.ascontiguousarray(game.mu0_l, dtype=np.float64), observer.prior,
        float(reply_loss), errors, replies,
    )
    seconds = time.perf_counter() - start
    mean, ci = mean_ci95(returns)
    return WelfareEstimate(
        mean=mean, ci95=ci, returns=returns.reshape(seeds, rollouts),
        agent_steps=seeds * rollouts * n * horizon, seconds=seconds, estimation_error=float(errors.mean()),
        replies=float(replies.mean()),
    )


def check_rollout_size(error, n: int, horizon: int, seeds: int, rollouts: int) -> None:
    """Bounds shared by every rollout driver (tabular and simulator): n fits int32, horizon
    <= MAX_HORIZON, seeds * rollouts <= MAX_ROLLOUTS."""
    if n > MAX_AGENTS:
        raise error("n", f"n = {n} is more than {MAX_AGENTS} (int32) agents; use a smaller n")
    if horizon > MAX_HORIZON:
        raise error("horizon", f"{horizon} epochs is more than {MAX_HORIZON}; with gamma < 1 the tail adds "
                               f"nothing measurable: use a shorter horizon")
    if seeds * rollouts > MAX_ROLLOUTS:
        raise error("rollouts", f"seeds x rollouts = {seeds * rollouts} is more than {MAX_ROLLOUTS}; "
                                f"use fewer seeds or rollouts")


def check_reply_loss(error, reply_loss) -> float:
    """A reply-loss probability in [0, 1): with every reply lost no decision would ever be made."""
    reply_loss = probability(error, "reply_loss", reply_loss)
    if reply_loss == 1.0:
        raise error("reply_loss", "must be below 1: with every reply lost the coordinator never decides")
    return reply_loss


def rollout_bytes(n: int, n_sl: int, seeds: int, rollouts: int, threads: int) -> float:
    """What _estimate and _rollout_returns allocate: per rollout its stream state, return, error,
    replies and cumulative start distribution; per thread (prange runs one rollout on each) the n
    agents' states and permutation. A failed allocation inside the prange is not raised, so
    all of it is checked against the budget before the kernel starts."""
    per_rollout = 4 * 8 + 3 * 8 + 2 * 8 * n_sl
    return float(seeds) * rollouts * per_rollout + float(n) * _BYTES_PER_AGENT * threads


def check_rollout_args(error, k, n, horizon, seeds, rollouts, seed, agents: str = "local agents") -> tuple:
    """(k, n, horizon, seeds, rollouts, seed) as checked integers, k <= n, within check_rollout_size: every
    rollout driver's arguments (the tabular evaluator's and the simulator's; `agents` names the n)."""
    k = integer(error, "k", k, 1)
    n = integer(error, "n", n, 1)
    if k > n:
        raise error("k", f"k = {k} exceeds the number of {agents} n = {n}: use k <= n")
    horizon, seeds, rollouts, seed = (integer(error, field, value, minimum) for field, value, minimum in
                                      (("horizon", horizon, 1), ("seeds", seeds, 1),
                                       ("rollouts", rollouts, 1), ("seed", seed, 0)))
    check_rollout_size(error, n, horizon, seeds, rollouts)
    return k, n, horizon, seeds, rollouts, seed


def _check_rollout_args(k, n, horizon, seeds, rollouts, seed, dirichlet_alpha, n_sl: int):
    k, n, horizon, seeds, rollouts, _ = check_rollout_args(EvaluationError, k, n, horizon, seeds, rollouts, seed)
    from numba import get_num_threads  # rollouts run in parallel, one per thread

    budget.require(f"rollout state of n = {n} agents ({get_num_threads()} rollouts at once)",
                   rollout_bytes(n, n_sl, seeds, rollouts, get_num_threads()), "use a smaller --n")
    if dirichlet_alpha is not None and as_float(EvaluationError, "dirichlet_alpha", dirichlet_alpha) <= 0:
        raise EvaluationError("dirichlet_alpha", f"must be > 0, got {dirichlet_alpha!r}")
    return k, n


def rollout_welfare(game, pi_g, pi_l, k, n=1000, horizon=100, seeds=15, rollouts=50, seed=0,
                    dirichlet_alpha=None, observer: ObserverSpec | None = None,
                    reply_loss: float = 0.0) -> WelfareEstimate:
    """Welfare of (pi_g, pi_l) deployed with n locals and fresh k-subsampling.

    Initial states: s_g ~ mu0_g and every s_i iid ~ mu0_l; with `dirichlet_alpha`
    each rollout instead draws its locals iid from p ~ Dirichlet(alpha, ..., alpha)
    (the authors' evaluator uses alpha = 0.3 with a uniform s_g). `observer`
    (core.observer; default fresh) turns each k-sample into the count vector pi_g
    reads; pi_g has that observer's resolution. `reply_loss`: probability in [0, 1)
    that a sampled local's reply is lost (module docstring).
    """
    k, n = _check_rollout_args(k, n, horizon, seeds, rollouts, seed, dirichlet_alpha, game.n_sl)
    reply_loss = check_reply_loss(EvaluationError, reply_loss)
    pi_g, pi_l = check_policy_arrays(game, pi_g, pi_l, k, observer)
    P_fused, r_fused = fold_local_policy(game, pi_l)
    return _estimate(game, pi_g, P_fused, r_fused, game.P_g, game.r_g, k, n, horizon, seeds,
                     rollouts, seed, dirichlet_alpha, observer, reply_loss=reply_loss)


def policy_welfare(game, policy, **rollout_args) -> WelfareEstimate:
    """rollout_welfare of a PolicyArtifact under the observer it records."""
    return rollout_welfare(game, policy.pi_g, policy.pi_l, policy.k, observer=policy.observer, **rollout_args)


# A baseline whose global action ignores F does not care which locals are sampled:
# it runs with k = 1, which keeps its [S_g, N_F] tables small at any requested k.
_BLIND_K = 1


def nash_gap(game, pi_g, pi_l, k, m=30, seed=0, tol=1e-6) -> NashGap:
    """Both unilateral best-response gains of (pi_g, pi_l) and the larger one.

    Global: G-LEARN's optimal value minus pi_g's value in the k-agent surrogate
    (m-sample operator, same draws; total reward r_g + mean r_l). Local: one
    local's best response minus pi_l's value in the induced MDP (its own r_l).
    Both are expectations over the initial distribution (core.glearn, core.llearn).
    """
    global_gain = float(global_best_response_gain(game, pi_g, pi_l, k, m=m, seed=seed, tol=tol))
    local_gain = float(local_best_response_gain(game, pi_g, pi_l, k))
    return NashGap(global_gain=global_gain, local_gain=local_gain, gap=max(global_gain, local_gain))


def baselines(game, k, n=1000, horizon=100, seeds=15, rollouts=50, seed=0, dirichlet_alpha=None,
              names=None) -> dict:
    """name -> WelfareEstimate of the named baselines (default: every registered one, in order).

    A blind baseline runs at k = 1: its global action ignores F, and k = 1 keeps its
    [S_g, N_F] tables small at any requested k. A uniformly random a_g (pi_g None) is
    folded into one averaged global action (mean over a_g of P_g and r_g): the same
    expected return.
    """
    names = BASELINES.check(BASELINES if names is None else names, EvaluationError)
    _check_rollout_args(k, n, horizon, seeds, rollouts, seed, dirichlet_alpha, game.n_sl)
    found = {}
    for name in names:
        baseline = BASELINES[name]
        run_k = _BLIND_K if baseline.blind else k

        def score(pi_g, pi_l, stream_seed, run_k=run_k):
            args = dict(n=n, horizon=horizon, seeds=seeds, rollouts=rollouts, seed=stream_seed,
                        dirichlet_alpha=dirichlet_alpha)
            if pi_g is not None:
                return rollout_welfare(game, pi_g, pi_l, run_k, **args)
            P_fused, r_fused = fold_local_policy(game, pi_l)
            blind_pi_g = np.zeros((game.n_sg, n_count_vectors(run_k, game.n_sl)), np.int32)
            return _estimate(game, blind_pi_g, P_fused, r_fused, game.P_g.mean(axis=1, keepdims=True),
                             game.r_g.mean(axis=1, keepdims=True), run_k, n, horizon, seeds, rollouts,
                             stream_seed, dirichlet_alpha)

        found[name] = score_candidates(baseline.candidates(game, run_k), score, seed)
    return found
