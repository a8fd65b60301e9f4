"""G-LEARN: the global agent's best response to a fixed local policy, on count vectors.

The k-agent surrogate MDP has states (s_g, F), F the count vector of k sampled
locals. With pi_l folded in (r~_l(j, s_g) = sum_a pi_l(a|j,s_g) r_l(j,s_g,a),
P~_l(.|j, s_g) likewise), the m-sample empirical Bellman operator is

  (T V)(s_g, F) = max_a  r_g(s_g, a) + (1/k) sum_j F_j r~_l(j, s_g)
                        + gamma sum_s' P_g(s'|s_g, a) (1/m) sum_i V(s', F'_i(s_g, F))

where F'_1..F'_m are fixed draws of the next count vector (each of the F_j agents
in state j moves by P~_l(.|j, s_g)). Choices, and why:

- F' does not depend on a_g and s_g' does not depend on F, so one set of m
  draws per (s_g, F) serves every action, and the s_g' expectation is exact
  against P_g (for a sampler source: against its pooled draws, see source.py).
  V is stored as V[rank(F), s_g] (float64), so a backup is m gathers of one row.
- The draws are fixed for the whole call, so T is a gamma-contraction with one
  fixed point, and deterministic for a seed. Draw (s_g, F, i) comes from a
  counter-based RNG keyed by (seed, s_g, rank F, i), one uniform per conditional
  binomial, drawn from exact Walker alias tables. So a draw can be recomputed at
  will: ranks are cached in an int32 table up to `table_bytes` and recomputed
  beyond it, with the same result. Two local policies map the same uniforms to
  nearby F' (common random numbers), which keeps the surrogate values of
  successive ALTERNATING-MARL rounds comparable.
- Iteration: Jacobi value iteration with the McQueen-Porteus constant shift
  (after each sweep V += gamma/(1-gamma) * mid-range of V_new - V_old), which
  leaves the fixed point unchanged and makes the error decay with the span of
  the differences instead of gamma alone. It stops when the sup-norm residual
  max |V_{n+1} - V_n| <= tol. The returned Q = T V_n then has
  ||T_Q Q - Q||_inf <= gamma*tol and ||Q - Q*||_inf <= gamma*tol/(1-gamma).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.counts import n_count_vectors, rank_kernel as _rank, unrank_kernel as _unrank
from altmarl_ros.core.model import MeanFieldGame
from altmarl_ros.core.rng import counter_uniform
from altmarl_ros.core.policy import FOR_THIS_K, check_global_policy, check_local_policy
from altmarl_ros.core.sampler import DEFAULT_POOL, as_game
from altmarl_ros.errors import LearnError

DEFAULT_TABLE_BYTES = 1 << 30  # cache of sampled next-count ranks; beyond it draws are recomputed
DEFAULT_MAX_SWEEPS = 10_000
_N_BLOCKS = 64  # prange work units; results do not depend on it



@dataclass(frozen=True)
class GLearnResult:
    """Q float32 [S_g, N_F, A_g]; pi_g int32 [S_g, N_F] greedy in Q (lowest action on ties).

    `value` = sum over s_g ~ mu0_g, F ~ Multinomial(k, mu0_l) of max_a Q: the
    surrogate's estimate of the welfare of (pi_g, pi_l).
    """

    Q: np.ndarray
    pi_g: np.ndarray
    sweeps: int
    residual: float
    converged: bool
    seconds: float
    residual_history: list = field(repr=False)
    value: float = float("nan")
    k: int = 0
    m: int = 0
    seed: int = 0
    table_fraction: float = 1.0  # share of (s_g, F) whose draws were cached rather than recomputed
    setup_seconds: float = 0.0  # of `seconds`: alias tables and the cached draws


# ----------------------------------------------------------------------------- kernels

@njit(cache=True)
def log_factorials(k):
    out = np.empty(k + 1)
    for n in range(k + 1):
        out[n] = math.lgamma(n + 1.0)
    return out


@njit(cache=True)
def log_multinomial_pmf(F, k, log_mu, log_fact):
    """log Pr(F) for F ~ Multinomial(k, mu); -inf where F puts agents on mu = 0."""
    total = log_fact[k]
    for j in range(F.shape[0]):
        if F[j] > 0:
            total += F[j] * log_mu[j] - log_fact[F[j]]
    return total


@njit(cache=True)
def _binomial_alias(P_fused, order, k):
    """Walker alias tables of the conditional binomials of the moves out of each state, n = 0..k.

    Targets of source j are taken in `order[s_g, j]` (most likely first, so the
    agents run out after few binomials): X_t = the agents in j that go to the
    t-th target given they went to none before, X_t ~ Binomial(n, q_t),
    q_t = p_t / (1 - p_0 - ... - p_{t-1}). Row [s_g, j, t, n] holds accept[0..n] and alias[0..n]:
    a uniform u picks x = floor(u (n+1)) and keeps it if the fraction left is
    below accept[x], else takes alias[x]: one uniform, no search (Vose's method).
    """
    S_g, S_l = P_fused.shape[0], P_fused.shape[1]
    log_fact = log_factorials(k)
    shape = (S_g, S_l, max(S_l - 1, 1), k + 1, k + 1)
    accept = np.ones(shape)
    alias = np.zeros(shape, np.int32)
    pmf = np.empty(k + 1)
    small = np.empty(k + 1, np.int64)
    large = np.empty(k + 1, np.int64)
    for g in range(S_g):
        for j in range(S_l):
            mass_left = 1.0
            for t in range(S_l - 1):
                p = P_fused[g, j, order[g, j, t]]
                q = 1.0 if p >= mass_left else (0.0 if p <= 0.0 else p / mass_left)
                mass_left -= p
                for n in range(k + 1):
                    size = n + 1
                    for x in range(size):
                        if q == 0.0 or q == 1.0:
                            pmf[x] = 1.0 if x == (0 if q == 0.0 else n) else 0.0
                        else:
                            pmf[x] = math.exp(log_fact[n] - log_fact[x] - log_fact[n - x]
                                              + x * math.log(q) + (n - x) * math.log1p(-q))
                    n_small = n_large = 0
                    for x in range(size):
                        pmf[x] *= size
                        if pmf[x] < 1.0:
                            small[n_small] = x
                            n_small += 1
                        else:
                            large[n_large] = x
                            n_large += 1
                    row_accept = accept[g, j, t, n]
                    row_alias = alias[g, j, t, n]
                    for x in range(size):
                        row_alias[x] = x
                    while n_small > 0 and n_large > 0:
                        n_small -= 1
                        lo = small[n_small]
                        hi = large[n_large - 1]
                        row_accept[lo] = pmf[lo]
                        row_alias[lo] = hi
                        pmf[hi] += pmf[lo] - 1.0
                        if pmf[hi] < 1.0:
                            n_large -= 1
                            small[n_small] = hi
                            n_small += 1
                    # leftovers (either stack) keep accept = 1: rounding residue only
    return accept, alias


@njit(cache=True)
def _draw_ranks(F, f, g, accept, alias, order, key, counts, remaining, ranks):
    """ranks[i] = rank of draw i (i < m) of the next count vector of (s_g = g, F = unrank(f)).

    Draw i uses the uniforms of counters S_l^2 ((f S_g + g) m + i) + (j S_l + t).
    The m draws advance together, binomial (j, t) for all i at a time: they are
    independent, so the CPU overlaps them instead of waiting on each draw's chain.
    """
    S_g, S_l = accept.shape[0], F.shape[0]
    m = ranks.shape[0]
    base = np.uint64((f * S_g + g) * m)
    counts[:, :] = 0
    for j in range(S_l):
        if F[j] == 0:
            continue
        remaining[:] = F[j]
        for t in range(S_l - 1):
            row_accept = accept[g, j, t]
            row_alias = alias[g, j, t]
            offset = np.uint64(j * S_l + t)
            target = order[g, j, t]
            left = 0
            for i in range(m):
                n = remaining[i]
                y = counter_uniform(key, (base + np.uint64(i)) * np.uint64(S_l * S_l) + offset) * (n + 1)
                x = min(int(y), n)
                other = row_alias[n, x]
                x = other if y - x >= row_accept[n, x] else x
                counts[i, target] += x
                remaining[i] = n - x
                left += n - x
            if left == 0:
                break
        last = order[g, j, S_l - 1]
        for i in range(m):
            counts[i, last] += remaining[i]
    for i in range(m):
        ranks[i] = _rank(counts[i])


@njit(parallel=True, cache=True)
def _fill_table(table, k, S_l, accept, alias, order, key):
    """table[f, g, :] = the m draws' ranks of (g, F = unrank(f)) for the cached ranks f."""
    N, S_g, m = table.shape
    block = (N + _N_BLOCKS - 1) // _N_BLOCKS
    for b in prange(_N_BLOCKS):
        F = np.empty(S_l, np.int64)
        counts = np.empty((m, S_l), np.int64)
        remaining = np.empty(m, np.int64)
        for f in range(b * block, min(N, (b + 1) * block)):
            _unrank(f, k, F)
            for g in range(S_g):
                _draw_ranks(F, f, g, accept, alias, order, key, counts, remaining, table[f, g])


@njit(parallel=True, cache=True)
def _sweep(V_old, V_new, Q, pi_out, policy, table, accept, alias, order, key, k, m, r_g, r_loc, P_g, gamma,
           lo_blk, hi_blk):
    """One Jacobi backup of every (s_g, F): V_new = T V_old (or T^policy V_old if policy has rows).

    Writes Q[g, f, a] and the greedy pi_out[g, f] when those arrays are non-empty;
    lo_blk/hi_blk get per-block min/max of V_new - V_old.
    """
    N_F, S_g = V_old.shape
    A_g = r_g.shape[1]
    S_l = r_loc.shape[1]
    n_cached = table.shape[0]
    write_q = Q.shape[1] > 0
    write_pi = pi_out.shape[1] > 0
    fixed = policy.shape[0] > 0
    block = (N_F + _N_BLOCKS - 1) // _N_BLOCKS
    for b in prange(_N_BLOCKS):
        F = np.empty(S_l, np.int64)
        counts = np.empty((m, S_l), np.int64)
        remaining = np.empty(m, np.int64)
        drawn = np.empty(m, np.int32)
        w = np.empty(S_g)
        lo, hi = np.inf, -np.inf
        for f in range(b * block, min(N_F, (b + 1) * block)):
            _unrank(f, k, F)
            for g in range(S_g):
                local = 0.0
                for j in range(S_l):
                    local += F[j] * r_loc[g, j]
                local /= k
                w[:] = 0.0
                if f < n_cached:
                    ranks = table[f, g]
                else:
                    _draw_ranks(F, f, g, accept, alias, order, key, counts, remaining, drawn)
                    ranks = drawn
                for i in range(m):
                    r = ranks[i]
                    for s in range(S_g):
                        w[s] += V_old[r, s]
                best, best_a, chosen = -np.inf, 0, 0.0
                for a in range(A_g):
                    acc = 0.0
                    for s in range(S_g):
                        acc += P_g[g, a, s] * w[s]
                    q = r_g[g, a] + local + gamma * acc / m
                    if write_q:
                        Q[g, f, a] = q
                    if q > best:
                        best, best_a = q, a
                    if fixed and a == policy[g, f]:
                        chosen = q
                v = chosen if fixed else best
                if write_pi:
                    pi_out[g, f] = best_a
                d = v - V_old[f, g]
                lo = min(lo, d)
                hi = max(hi, d)
                V_new[f, g] = v
        lo_blk[b] = lo
        hi_blk[b] = hi


@njit(parallel=True, cache=True)
def _initial_weighted_sum(V, k, log_mu0_l, mu0_g):
    """sum_{g, F} mu0_g[g] Multinomial(F; k, mu0_l) V[rank F, g]."""
    N_F, S_g = V.shape
    log_fact = log_factorials(k)
    sums = np.zeros(_N_BLOCKS)
    block = (N_F + _N_BLOCKS - 1) // _N_BLOCKS
    for b in prange(_N_BLOCKS):
        F = np.empty(log_mu0_l.shape[0], np.int64)
        acc = 0.0
        for f in range(b * block, min(N_F, (b + 1) * block)):
            _unrank(f, k, F)
            weight = math.exp(log_multinomial_pmf(F, k, log_mu0_l, log_fact))
            if weight > 0.0:
                for g in range(S_g):
                    acc += weight * mu0_g[g] * V[f, g]
        sums[b] = acc
    return sums.sum()


# ----------------------------------------------------------------------------- drivers

def fold_local_policy(game: MeanFieldGame, pi_l: np.ndarray) -> tuple:
    """(P~_l [S_g, S_l, S_l'], r~_l [S_g, S_l]): the local model averaged over pi_l."""
    P_fused = np.einsum("jga,jgat->gjt", pi_l, game.P_l)
    r_fused = np.einsum("jga,jga->gj", pi_l, game.r_l)
    return np.ascontiguousarray(P_fused), np.ascontiguousarray(r_fused)


def log_or_minus_inf(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def initial_value(game: MeanFieldGame, V: np.ndarray, k: int) -> float:
    """E[V(s_g, F)] for s_g ~ mu0_g, F ~ Multinomial(k, mu0_l); V is [N_F, S_g] float64."""
    return float(_initial_weighted_sum(V, k, log_or_minus_inf(game.mu0_l), game.mu0_g))


class _Surrogate:
    """The fixed m-sample operator of one (game, pi_l, k, m, seed): tables plus iteration."""

    def __init__(self, game, pi_l, k, m, seed, table_bytes):
        self.game, self.k, self.m = game, k, m
        self.n_f = n_count_vectors(k, game.n_sl)
        if self.n_f >= 2**31:
            raise LearnError("k", f"k = {k} gives {self.n_f} count vectors, beyond int32 ranks; use a smaller k")
        P_fused, self.r_loc = fold_local_policy(game, pi_l)
        self.order = np.argsort(-P_fused, axis=2, kind="stable")
        self.accept, self.alias = _binomial_alias(P_fused, self.order, k)
        self.key = np.uint64(np.random.SeedSequence([seed, 0x61C8]).generate_state(1, np.uint64)[0])
        row_bytes = game.n_sg * m * 4
        n_cached = min(self.n_f, table_bytes // row_bytes)
        self.table = np.empty((n_cached, game.n_sg, m), np.int32)
        _fill_table(self.table, k, game.n_sl, self.accept, self.alias, self.order, self.key)
        self.table_fraction = n_cached / self.n_f

    def iterate(self, V, tol, max_sweeps, policy=None, Q=None, pi_out=None, progress=None):
        """McQueen-shifted value iteration from V (float64 [N_F, S_g], overwritten).

        Returns (V_last, sweeps, residual, history); Q/pi_out, if given, hold the last sweep's.
        """
        game = self.game
        empty_q = np.empty((0, 0, 0), np.float32)
        empty_pi = np.empty((0, 0), np.int32)
        other = np.empty_like(V)
        lo_blk, hi_blk = np.empty(_N_BLOCKS), np.empty(_N_BLOCKS)
        gamma = game.gamma
        history = []
        residual = math.inf
        for sweep in range(1, max_sweeps + 1):
            _sweep(V, other, empty_q if Q is None else Q, empty_pi if pi_out is None else pi_out,
                   empty_pi if policy is None else policy, self.table, self.accept, self.alias, self.order, self.key,
                   self.k, self.m, game.r_g, self.r_loc, game.P_g, gamma, lo_blk, hi_blk)
            lo, hi = float(lo_blk.min()), float(hi_blk.max())
            residual = max(-lo, hi)
            history.append(residual)
            V, other = other, V
            if progress is not None:
                progress(sweep, residual)
            if residual <= tol:
                break
            V += gamma / (1.0 - gamma) * 0.5 * (lo + hi)
        return V, len(history), residual, history


def check_learning_args(k, m, tol, max_sweeps, seed, table_bytes):
    k = integer(LearnError, "k", k, 1)
    m = integer(LearnError, "m", m, 1)
    tol = as_float(LearnError, "tol", tol)
    if tol <= 0:
        raise LearnError("tol", f"must be > 0 (a sup-norm residual), got {tol:g}")
    max_sweeps = integer(LearnError, "max_sweeps", max_sweeps, 1)
    seed = integer(LearnError, "seed", seed, 0)
    table_bytes = integer(LearnError, "table_bytes", table_bytes, 0)
    return k, m, tol, max_sweeps, seed, table_bytes


def _start_value(game, Q0, n_f) -> np.ndarray:
    if Q0 is None:
        return np.zeros((n_f, game.n_sg))
    Q0 = np.asarray(Q0)
    expected = (game.n_sg, n_f, game.n_ag)
    if Q0.shape != expected:
        raise LearnError("Q0", f"has shape {Q0.shape}; a warm start needs (n_sg, N_F, n_ag) = {expected}, "
                         "from a G-LEARN run with the same model and k")
    V = np.ascontiguousarray(Q0.max(axis=2).T, dtype=np.float64)
    if not np.isfinite(V).all():
        raise LearnError("Q0", "holds non-finite values; pass the Q of a finished G-LEARN run or None")
    return V


def learn_with_surrogate(game, pi_l, k, m, tol, max_sweeps, seed, Q0, progress, table_bytes):
    """(GLearnResult, its surrogate, its final V [N_F, S_g]) for validated arguments."""
    started = time.perf_counter()
    surrogate = _Surrogate(game, pi_l, k, m, seed, table_bytes)
    setup_seconds = time.perf_counter() - started
    V = _start_value(game, Q0, surrogate.n_f)
    Q = np.empty((game.n_sg, surrogate.n_f, game.n_ag), np.float32)
    pi_g = np.empty((game.n_sg, surrogate.n_f), np.int32)
    V, sweeps, residual, history = surrogate.iterate(V, tol, max_sweeps, Q=Q, pi_out=pi_g,
                                                     progress=progress)
    result = GLearnResult(Q=Q, pi_g=pi_g, sweeps=sweeps, residual=residual, converged=residual <= tol,
                          seconds=time.perf_counter() - started, residual_history=history,
                          value=initial_value(game, V, k), k=k, m=m, seed=seed,
                          table_fraction=surrogate.table_fraction, setup_seconds=setup_seconds)
    return result, surrogate, V


def surrogate_gain(surrogate, V_start, pi_g, tol, max_sweeps) -> float:
    """E_init[V* - V^pi_g] in `surrogate`, V* iterated from V_start, V^pi_g from V*."""
    V_best, _, res_best, _ = surrogate.iterate(V_start, tol, max_sweeps)
    V_pol, _, res_pol, _ = surrogate.iterate(V_best.copy(), tol, max_sweeps, policy=pi_g)
    if max(res_best, res_pol) > tol:
        raise LearnError("max_sweeps", f"{max_sweeps} sweeps did not reach tol = {tol:g} "
                         f"(residuals {res_best:.3g}, {res_pol:.3g}); raise max_sweeps or tol")
    return max(0.0, initial_value(surrogate.game, V_best - V_pol, surrogate.k))


def g_learn(source, pi_l, k, m=30, tol=1e-4, max_sweeps=DEFAULT_MAX_SWEEPS, seed=0, Q0=None,
            progress=None, *, table_bytes=DEFAULT_TABLE_BYTES, pool=DEFAULT_POOL) -> GLearnResult:
    """Global best response to the local policy pi_l [S_l, S_g, A_l] in the k-agent surrogate.

    Iterates the m-sample empirical Bellman operator (module docstring) to the
    sup-norm residual `tol`, at most `max_sweeps` sweeps (then converged=False).
    `Q0`: warm start (a previous result's Q for the same game and k). `progress`:
    called as progress(sweep, residual) after every sweep. `table_bytes`: memory
    for cached draws (the answer does not depend on it). `pool`: sampler draws
    per pair when `source` is a generative sampler (see source.py).
    """
    k, m, tol, max_sweeps, seed, table_bytes = check_learning_args(k, m, tol, max_sweeps, seed,
                                                                    table_bytes)
    game = as_game(source, pool, seed)
    pi_l = check_local_policy(game.sizes, pi_l, LearnError)
    return learn_with_surrogate(game, pi_l, k, m, tol, max_sweeps, seed, Q0, progress, table_bytes)[0]


def global_best_response_gain(game, pi_g, pi_l, k, m=30, seed=0, tol=1e-6,
                              max_sweeps=DEFAULT_MAX_SWEEPS, *, Q0=None,
                              table_bytes=DEFAULT_TABLE_BYTES, pool=DEFAULT_POOL) -> float:
    """How much the global agent gains by deviating from pi_g, given pi_l, in the k-agent surrogate.

    gain = E[V*(s_g, F) - V^{pi_g}(s_g, F)], s_g ~ mu0_g, F ~ Multinomial(k, mu0_l),
    where V* is the fixed point of the m-sample operator of g_learn (same k, m,
    seed: the same draws) and V^{pi_g} the fixed point of the same operator with
    the action fixed to pi_g[s_g, rank F] (policy evaluation). Both are iterated to
    residual `tol`, so the gain is exact to 2*gamma*tol/(1-gamma); a negative
    result within that bound is reported as 0. `Q0` warm-starts V* (e.g. the Q of
    the g_learn run that produced pi_g).
    """
    k, m, tol, max_sweeps, seed, table_bytes = check_learning_args(k, m, tol, max_sweeps, seed,
                                                                    table_bytes)
    game = as_game(game, pool, seed)
    pi_l = check_local_policy(game.sizes, pi_l, LearnError)
    surrogate = _Surrogate(game, pi_l, k, m, seed, table_bytes)
    pi_g = check_global_policy(game.sizes, pi_g, surrogate.n_f, LearnError, hint=FOR_THIS_K)
    return surrogate_gain(surrogate, _start_value(game, Q0, surrogate.n_f), pi_g, tol, max_sweeps)
