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
  against P_g (for a sampler source: against its pooled draws, see sampler.py).
  V is stored as V[rank(F), s_g] (float64), so a backup is m gathers of one row.
- The draws are fixed for the whole call, so T is a gamma-contraction with one
  fixed point, deterministic for a seed: glearn_draws makes them (a counter-based
  RNG, so any draw can be recomputed) and stores them as int32 ranks or 16-bit
  codes, and glearn_memory plans which within a budget. The storage never changes
  the answer.
- Iteration: Jacobi value iteration with the McQueen-Porteus constant shift
  (after each sweep V += gamma/(1-gamma) * mid-range of V_new - V_old), which
  leaves the fixed point unchanged and makes the error decay with the span of
  the differences instead of gamma alone. When the span of the differences has
  shrunk by one steady ratio for three sweeps, the error is one slow mode of the
  sampled chain, and a step of ratio / (1 - ratio) times the last difference
  removes most of it (_SlowModeExtrapolation; it never fires where no ratio is
  steady). Once the sup-norm residual
  max |V_n - V_{n-1}| <= tol, one more sweep records Q = T V_n and pi_g (Q is
  not written before, so it need not sit next to all the draws: under a memory
  plan that says so, that sweep frees the stored draws as it goes). Then
  ||T_Q Q - Q||_inf <= gamma*tol and ||Q - Q*||_inf <= gamma*tol/(1-gamma).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import config as numba_config, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.counts import successor_kernel as _successor
from altmarl_ros.core.fused import fold_local_policy, log_factorials, log_multinomial_pmf, log_or_minus_inf
from altmarl_ros.core.glearn_draws import (N_BLOCKS, code_shifts, draw_scratch, fill_draws, make_draws, next_in_block,
                                           successors, with_escapes_stored, without_stores)
from altmarl_ros.core.glearn_memory import (DEFAULT_TABLE_BYTES, MemoryPlan, check_learning_size, check_max_memory,
                                            draw_storage, release_rows, sample_costs)
from altmarl_ros.core.model import MeanFieldGame
from altmarl_ros.core.policy import FOR_THIS_K, check_global_policy, check_local_policy
from altmarl_ros.core.sampler import DEFAULT_POOL, as_game
from altmarl_ros.errors import LearnError

DEFAULT_MAX_SWEEPS = 10_000
_RELEASE_CHUNKS = 64  # the recording sweep frees releasable draw storage in this many steps: Q and the
# draws then overlap by one step, 1/_RELEASE_CHUNKS of the smaller


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
    plan: "MemoryPlan | None" = field(default=None, repr=False)  # how the draws were held


# ----------------------------------------------------------------------------- kernels

@njit(cache=True, inline="always")
def _plus(total, V, r, s):
    """total + V[r, s], or total where V has no column s (fewer than 8 global states)."""
    return total + V[r, s] if s < V.shape[1] else total


@njit(cache=True, inline="always")
def _gather_rows(V, rows, w):
    """w[s] = sum_i V[rows[i], s]: the m gathers of one backup, the sweep's inner loop.

    Up to 8 global states the sums live in scalars (registers): an array w updated
    in the loop is stored and reloaded at every step, since it might alias V
    (docs/training.md, Kernel figures).
    """
    S_g = V.shape[1]
    if S_g > 8:
        w[:] = 0.0
        for i in range(rows.shape[0]):
            for s in range(S_g):
                w[s] += V[rows[i], s]
        return
    w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = 0.0
    for i in range(rows.shape[0]):
        r = rows[i]
        w0, w1, w2, w3 = w0 + V[r, 0], _plus(w1, V, r, 1), _plus(w2, V, r, 2), _plus(w3, V, r, 3)
        w4, w5, w6, w7 = _plus(w4, V, r, 4), _plus(w5, V, r, 5), _plus(w6, V, r, 6), _plus(w7, V, r, 7)
    sums = (w0, w1, w2, w3, w4, w5, w6, w7)
    for s in range(S_g):
        w[s] = sums[s]


@njit(cache=True, inline="always")
def _decode_row(V, draws, shifts, F, f, base, scratch, rows):
    """rows[g] = the successor ranks of (g, F = unrank(f)) for every g, f a coded row; their V rows requested."""
    escape_start = draws.escape_start
    slot = escape_start[f] if f < escape_start.shape[0] - 1 else 0
    for g in range(rows.shape[0]):
        slot = successors(draws, shifts, F, f, g, base, scratch, rows[g], slot)
        for i in range(rows.shape[1]):
            _prefetch_row(V, rows[g, i])


@intrinsic
def _prefetch_row(typingctx, array, row):
    """Ask the CPU to start loading array[row, 0]'s cache line (llvm.prefetch: read, keep in every level).

    A hint: it changes no value. The sweep issues the gathers of the next rows this way,
    so their cache misses overlap the current row's work instead of queueing behind it.
    """
    def codegen(context, builder, signature, args):
        array_type, row_type = signature.args
        view = context.make_array(array_type)(context, builder, args[0])
        index = [context.cast(builder, args[1], row_type, types.intp), context.get_constant(types.intp, 0)]
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, index, wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(hint, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(array, row), codegen


if numba_config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 (scripts/coverage.sh, debugging): the kernels run as Python,
    def _prefetch_row(array, row):  # noqa: F811 - which cannot call an intrinsic; a hint changes no value
        pass


@njit(parallel=True, cache=True)
def _sweep(draws, shifts, step, V_old, V_new, Q, pi_out, policy, f_lo, f_hi, spans, from_zero):
    """One Jacobi backup of the states with rank in [f_lo, f_hi): V_new = T V_old (or T^policy V_old).

    Writes Q[g, f, a] and the greedy pi_out[g, f] when those arrays are non-empty;
    spans[0, b] / spans[1, b] get block b's min / max of V_new - V_old. The gathers miss the cache once
    V outgrows it, so they are requested one count vector ahead (_prefetch_row): stored
    ranks straight from the store; codes are decoded a count vector ahead into a two-row
    buffer, so that decoding F + 1 overlaps the cache misses of F's gathers.
    `from_zero` says V_old is 0 everywhere: every sum of gathers is then 0.0, so none is
    made (nor any draw recomputed), which gives the same V_new bit for bit.
    """
    r_g, r_loc, P_g, gamma = step.r_g, step.r_loc, step.P_g, step.gamma
    k, m = draws.k, draws.m
    S_g = V_old.shape[1]
    A_g = r_g.shape[1]
    S_l = r_loc.shape[1]
    write_q = Q.shape[1] > 0
    write_pi = pi_out.shape[1] > 0
    fixed = policy.shape[0] > 0
    stored_ranks, codes_rows = draws.ranks, draws.codes.shape[0]
    block = (f_hi - f_lo + N_BLOCKS - 1) // N_BLOCKS
    for b in prange(N_BLOCKS):
        F = np.empty(S_l, np.int64)
        scratch = draw_scratch(m, S_l)
        base = np.empty(max(S_l - 1, 1), np.int64)
        recomputed = np.empty(m, np.int64)
        decoded = np.empty((2, S_g, m), np.int64)  # ranks of coded rows f and f + 1, at [f % 2]
        F_ahead = np.empty(S_l, np.int64)
        w = np.empty(S_g)
        lo, hi = np.inf, -np.inf
        first = f_lo + b * block
        end = min(f_hi, f_lo + (b + 1) * block)
        for f in range(first, end):
            next_in_block(f, first, k, F)
            if not from_zero and f + 1 < stored_ranks.shape[0]:
                for g in range(S_g):
                    for i in range(m):
                        _prefetch_row(V_old, stored_ranks[f + 1, g, i])
            coded = not from_zero and stored_ranks.shape[0] <= f < codes_rows
            if coded:  # coded rows run from the block's first (a store holds ranks or codes, not both)
                if f == first:
                    _decode_row(V_old, draws, shifts, F, f, base, scratch, decoded[f % 2])
                if f + 1 < min(end, codes_rows):
                    F_ahead[:] = F
                    _successor(F_ahead)
                    _decode_row(V_old, draws, shifts, F_ahead, f + 1, base, scratch, decoded[(f + 1) % 2])
            for g in range(S_g):
                local = 0.0
                for j in range(S_l):
                    local += F[j] * r_loc[g, j]
                local /= k
                if from_zero:
                    w[:] = 0.0
                elif f < stored_ranks.shape[0]:  # the common case: gather straight from the store
                    _gather_rows(V_old, stored_ranks[f, g], w)
                elif coded:
                    _gather_rows(V_old, decoded[f % 2, g], w)
                else:  # a row beyond the store: its draws are recomputed
                    successors(draws, shifts, F, f, g, base, scratch, recomputed, 0)
                    _gather_rows(V_old, recomputed, w)
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
        spans[0, b] = lo
        spans[1, b] = hi


@njit(parallel=True, cache=True)
def _initial_weighted_sum(V, k, log_mu0_l, mu0_g):
    """sum_{g, F} mu0_g[g] Multinomial(F; k, mu0_l) V[rank F, g]."""
    N_F, S_g = V.shape
    log_fact = log_factorials(k)
    sums = np.zeros(N_BLOCKS)
    block = (N_F + N_BLOCKS - 1) // N_BLOCKS
    for b in prange(N_BLOCKS):
        F = np.empty(log_mu0_l.shape[0], np.int64)
        acc = 0.0
        first = b * block
        for f in range(first, min(N_F, (b + 1) * block)):
            next_in_block(f, first, k, F)
            weight = math.exp(log_multinomial_pmf(F, k, log_mu0_l, log_fact))
            if weight > 0.0:
                for g in range(S_g):
                    acc += weight * mu0_g[g] * V[f, g]
        sums[b] = acc
    return sums.sum()


@njit(parallel=True, cache=True)
def _extrapolate(V, V_old, factor, mid):
    """V += factor * (V - V_old - mid), in place: the step along the slowest error mode."""
    for f in prange(V.shape[0]):
        for s in range(V.shape[1]):
            V[f, s] += factor * (V[f, s] - V_old[f, s] - mid)


# ----------------------------------------------------------------------------- drivers

def initial_value(game: MeanFieldGame, V: np.ndarray, k: int) -> float:
    """E[V(s_g, F)] for s_g ~ mu0_g, F ~ Multinomial(k, mu0_l); V is [N_F, S_g] float64."""
    return float(_initial_weighted_sum(V, k, log_or_minus_inf(game.mu0_l), game.mu0_g))


def _all_zero(V) -> bool:
    return not V.any()


class _NoExtrapolation:
    def factor(self, sweep, span):
        return 0.0


class _SlowModeExtrapolation:
    """When the span of V_n+1 - V_n has shrunk by one steady ratio rho for three sweeps, the
    error is one slow mode e_n ~ rho^n v: adding rho / (1 - rho) times the last
    difference (less its constant part, which the McQueen shift takes) removes it.

    Faster modes get amplified by that step, so it waits EVERY sweeps for them to die
    out, and is switched off for good if a step was followed by a larger span.
    Any start converges to the same fixed point, and the stop rule still tests the
    residual of T itself, so this changes the number of sweeps, not the answer's bounds.
    """

    EVERY, STEADY, RATIOS = 3, 0.01, (0.5, 0.98)

    def __init__(self):
        self.spans, self.last_step, self.enabled = [], -self.EVERY, True

    def factor(self, sweep, span):
        if sweep == self.last_step + 1 and span > self.spans[-1]:
            self.enabled = False
        self.spans.append(span)
        if not self.enabled or len(self.spans) < 3 or sweep - self.last_step < self.EVERY:
            return 0.0
        ratio, before = self.spans[-1] / self.spans[-2], self.spans[-2] / self.spans[-3]
        if abs(ratio - before) >= self.STEADY or not self.RATIOS[0] <= ratio < self.RATIOS[1]:
            return 0.0
        self.last_step = sweep
        return ratio / (1.0 - ratio)


class _Step(NamedTuple):
    """One step of the surrogate besides the locals' moves (a numba record): the global reward r_g
    [S_g, A_g] and kernel P_g [S_g, A_g, S_g'], the local reward folded over pi_l r_loc [S_g, S_l], gamma.

    The draws and their code shifts are _sweep's own arguments, not fields of this: a parallel
    loop of numba takes a record of arrays and numbers, not one holding another record or a tuple."""

    r_g: np.ndarray
    r_loc: np.ndarray
    P_g: np.ndarray
    gamma: float


class _Surrogate:
    """The fixed m-sample operator of one (game, pi_l, k, m, seed): draws plus iteration."""

    def __init__(self, game, pi_l, k, m, seed, table_bytes, max_memory=None, keep_draws=True, extrapolate=True):
        self.game, self.k, self.m, self.extrapolate = game, k, m, extrapolate
        plan = check_learning_size(game, k, m, table_bytes, max_memory, keep_draws)
        self.n_f = plan.n_f
        P_fused, self.r_loc = fold_local_policy(game, pi_l)
        self.draws = make_draws(P_fused, k, m, seed)
        self.shifts = code_shifts(self.draws)
        self.plan = sample_costs(plan, self.draws)
        self._spans = np.empty((2, N_BLOCKS))  # a sweep's per-block min and max of V_new - V_old
        storage, self._buffer = draw_storage((plan.n_cached, game.n_sg, m),
                                             np.int32 if plan.layout == "ranks" else np.uint16, plan.release_draws)
        if plan.layout == "ranks":
            self.draws = self.draws._replace(ranks=storage)
        else:
            self.draws = self.draws._replace(codes=storage)
        # a codes store counts each row's escapes in what becomes their index (escape_start)
        index = np.zeros(plan.n_cached + 1 if plan.layout == "codes" else 1, np.int64)
        fill_draws(self.draws, index[1:])
        if plan.layout == "codes" and plan.n_cached:
            self.plan = replace(self.plan, escape_fraction=index.sum() / storage.size)
            slack = table_bytes - plan.draw_bytes if max_memory is None else max_memory - plan.peak_bytes
            self._store_escapes(index, slack)
        self.table_fraction = plan.cached_fraction

    def _store_escapes(self, index, slack):
        """Keep the escaped codes' ranks (int32) when they fit the budget's slack (the draw
        store's, or max_memory's), so that sweeps read them instead of recomputing them; the
        plan then counts their bytes (their index, escape_start, it counts already: 8 bytes a row)."""
        total = int(index.sum())
        extra = 4 * total
        if total == 0 or extra > slack:
            return
        self.draws = with_escapes_stored(self.draws, index)
        self.plan = replace(self.plan, draw_bytes=self.plan.draw_bytes + extra, escapes_stored=True)

    def _sweep(self, V, other, Q, pi_out, policy, f_lo, f_hi, from_zero=False):
        """(min, max) of other - V after other = T V on ranks [f_lo, f_hi) (_sweep)."""
        game = self.game
        _sweep(self.draws, self.shifts, _Step(game.r_g, self.r_loc, game.P_g, game.gamma), V, other, Q, pi_out,
               policy, f_lo, f_hi, self._spans, from_zero)
        return float(self._spans[0].min()), float(self._spans[1].max())

    def _recording_sweep(self, V, other, Q, pi_out, policy):
        """The sweep that writes Q and pi_g; under a releasing plan, in chunks that free the draws behind them."""
        if not self.plan.release_draws:
            return self._sweep(V, other, Q, pi_out, policy, 0, self.n_f)
        lo, hi = math.inf, -math.inf
        edges = np.linspace(0, self.n_f, _RELEASE_CHUNKS + 1).astype(np.int64)
        for f_lo, f_hi in zip(edges[:-1], edges[1:]):
            chunk_lo, chunk_hi = self._sweep(V, other, Q, pi_out, policy, int(f_lo), int(f_hi))
            lo, hi = min(lo, chunk_lo), max(hi, chunk_hi)
            for stored in (self.draws.ranks, self.draws.codes):
                if stored.shape[0]:
                    release_rows(stored, self._buffer, min(int(f_hi), stored.shape[0]))
        # the freed rows read as zeros now: from here on every draw is recomputed
        self.draws = without_stores(self.draws)
        return lo, hi

    def iterate(self, V, tol, max_sweeps, policy=None, Q=None, pi_out=None, progress=None):
        """McQueen-shifted value iteration from V (float64 [N_F, S_g], overwritten).

        Returns (V_last, sweeps, residual, history). With Q/pi_out, a last sweep after
        the residual reaches tol (or at max_sweeps) writes them: Q = T V_last's input.
        """
        empty_q = np.empty((0, 0, 0), np.float32)
        empty_pi = np.empty((0, 0), np.int32)
        record = Q is not None or pi_out is not None
        Q = empty_q if Q is None else Q
        pi_out = empty_pi if pi_out is None else pi_out
        policy = empty_pi if policy is None else policy
        other = np.empty_like(V)
        gamma = self.game.gamma
        slow_mode = _SlowModeExtrapolation() if self.extrapolate else _NoExtrapolation()
        history = []
        residual = math.inf
        from_zero = _all_zero(V)  # a cold start: the first sweep needs no gathers
        for sweep in range(1, max_sweeps + 1):
            last = record and (residual <= tol or sweep == max_sweeps)
            if last:
                lo, hi = self._recording_sweep(V, other, Q, pi_out, policy)
            else:
                lo, hi = self._sweep(V, other, empty_q, empty_pi, policy, 0, self.n_f,
                                     from_zero=from_zero and sweep == 1)
            residual = max(-lo, hi)
            history.append(residual)
            V, other = other, V
            if progress is not None:
                progress(sweep, residual)
            if last or (not record and residual <= tol):
                break
            if residual > tol:
                mid = 0.5 * (lo + hi)
                factor = slow_mode.factor(sweep, hi - lo)
                if factor:
                    _extrapolate(V, other, factor, mid)
                V += gamma / (1.0 - gamma) * mid
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


def learn_with_surrogate(game, pi_l, k, m, tol, max_sweeps, seed, Q0, progress, table_bytes, max_memory=None,
                         keep_draws=True, extrapolate=True):
    """(GLearnResult, its surrogate, its final V [N_F, S_g]) for validated arguments.

    keep_draws=False lets a memory plan free the stored draws in the last sweep (the
    surrogate then recomputes every draw if it is iterated again).
    """
    started = time.perf_counter()
    surrogate = _Surrogate(game, pi_l, k, m, seed, table_bytes, max_memory, keep_draws, extrapolate=extrapolate)
    setup_seconds = time.perf_counter() - started
    V = _start_value(game, Q0, surrogate.n_f)
    Q = np.empty((game.n_sg, surrogate.n_f, game.n_ag), np.float32)
    pi_g = np.empty((game.n_sg, surrogate.n_f), np.int32)
    V, sweeps, residual, history = surrogate.iterate(V, tol, max_sweeps, Q=Q, pi_out=pi_g,
                                                     progress=progress)
    result = GLearnResult(Q=Q, pi_g=pi_g, sweeps=sweeps, residual=residual, converged=residual <= tol,
                          seconds=time.perf_counter() - started, residual_history=history,
                          value=initial_value(game, V, k), k=k, m=m, seed=seed,
                          table_fraction=surrogate.table_fraction, setup_seconds=setup_seconds,
                          plan=surrogate.plan)
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
            progress=None, *, table_bytes=DEFAULT_TABLE_BYTES, max_memory=None,
            pool=DEFAULT_POOL, extrapolate=True) -> GLearnResult:
    """Global best response to the local policy pi_l [S_l, S_g, A_l] in the k-agent surrogate.

    Iterates the m-sample empirical Bellman operator (module docstring) to the
    sup-norm residual `tol`, at most `max_sweeps` sweeps (then converged=False).
    `Q0`: warm start (a previous result's Q for the same game and k). `progress`:
    called as progress(sweep, residual) after every sweep. `table_bytes`: memory
    for stored draws; `max_memory`: instead, a budget in bytes for all of G-LEARN's
    arrays, from which plan_memory picks the layout (the answer depends on neither;
    the result's `plan` says what was chosen). `pool`: sampler draws per pair when
    `source` is a generative sampler (see sampler.py). `extrapolate`: step along the
    slowest error mode when the residuals say it dominates (_SlowModeExtrapolation);
    False gives plain McQueen-shifted iteration (same fixed point, more sweeps).
    """
    k, m, tol, max_sweeps, seed, table_bytes = check_learning_args(k, m, tol, max_sweeps, seed,
                                                                    table_bytes)
    max_memory = check_max_memory(max_memory)
    game = as_game(source, pool, seed)
    pi_l = check_local_policy(game.sizes, pi_l, LearnError)
    return learn_with_surrogate(game, pi_l, k, m, tol, max_sweeps, seed, Q0, progress, table_bytes, max_memory,
                                keep_draws=False, extrapolate=extrapolate)[0]


def global_best_response_gain(game, pi_g, pi_l, k, m=30, seed=0, tol=1e-6,
                              max_sweeps=DEFAULT_MAX_SWEEPS, *, Q0=None,
                              table_bytes=DEFAULT_TABLE_BYTES, max_memory=None, pool=DEFAULT_POOL) -> float:
    """How much the global agent gains by deviating from pi_g, given pi_l, in the k-agent surrogate.

    gain = E[V*(s_g, F) - V^{pi_g}(s_g, F)], s_g ~ mu0_g, F ~ Multinomial(k, mu0_l),
    where V* is the fixed point of the m-sample operator of g_learn (same k, m,
    seed: the same draws) and V^{pi_g} the fixed point of the same operator with
    the action fixed to pi_g[s_g, rank F] (policy evaluation). Both are iterated to
    residual `tol`, so the gain is exact to 2*gamma*tol/(1-gamma); a negative
    result within that bound is reported as 0. `Q0` warm-starts V* (e.g. the Q of
    the g_learn run that produced pi_g). `table_bytes`/`max_memory` as in g_learn.
    """
    k, m, tol, max_sweeps, seed, table_bytes = check_learning_args(k, m, tol, max_sweeps, seed,
                                                                    table_bytes)
    max_memory = check_max_memory(max_memory)
    game = as_game(game, pool, seed)
    pi_l = check_local_policy(game.sizes, pi_l, LearnError)
    surrogate = _Surrogate(game, pi_l, k, m, seed, table_bytes, max_memory)
    pi_g = check_global_policy(game.sizes, pi_g, surrogate.n_f, LearnError, hint=FOR_THIS_K)
    return surrogate_gain(surrogate, _start_value(game, Q0, surrogate.n_f), pi_g, tol, max_sweeps)
