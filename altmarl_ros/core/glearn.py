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
  fixed point, and deterministic for a seed. Draw (s_g, F, i) comes from a
  counter-based RNG keyed by (seed, s_g, rank F, i), one uniform per conditional
  binomial, drawn from exact Walker alias tables. So a draw can be recomputed at
  will, and how draws are stored never changes the answer (MemoryPlan):
  "ranks" stores int32 successor ranks; "codes" stores each draw in 16 bits as
  the offsets of its cumulative counts c_j = F'_0 + ... + F'_j (j < S_l - 1)
  from their rounded means, 16 // (S_l - 1) bits each. A code is decoded with
  S_l - 1 lookups in Pascal's triangle (rank = sum_j C(c_j + j, j + 1)); a draw
  outside that window is stored as ESCAPE, and its int32 rank is kept in a side
  store indexed per row when the budget has room (else recomputed where met).
  Count vectors beyond the stored rows are recomputed every sweep. Two local
  policies map the same uniforms to nearby F' (common random numbers), which
  keeps the surrogate values of successive ALTERNATING-MARL rounds comparable.
- Iteration: Jacobi value iteration with the McQueen-Porteus constant shift
  (after each sweep V += gamma/(1-gamma) * mid-range of V_new - V_old), which
  leaves the fixed point unchanged and makes the error decay with the span of
  the differences instead of gamma alone. When the span of the differences has
  shrunk by one steady ratio for three sweeps, the error is one slow mode of the
  sampled chain, and a step of ratio / (1 - ratio) times the last difference
  removes most of it (_SlowModeExtrapolation; about 40% fewer sweeps on the
  warehouse model, none lost where no ratio is steady). Once the sup-norm residual
  max |V_n - V_{n-1}| <= tol, one more sweep records Q = T V_n and pi_g (Q is
  not written before, so it need not sit next to all the draws: under a memory
  plan that says so, that sweep frees the stored draws as it goes). Then
  ||T_Q Q - Q||_inf <= gamma*tol and ||Q - Q*||_inf <= gamma*tol/(1-gamma).
"""
from __future__ import annotations

import math
import mmap
import time
from dataclasses import dataclass, field, replace

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from altmarl_ros.core import budget
from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.counts import n_count_vectors, rank_kernel as _rank, successor_kernel as _successor
from altmarl_ros.core.counts import unrank_kernel as _unrank
from altmarl_ros.core.model import MeanFieldGame
from altmarl_ros.core.rng import GOLDEN, counter_uniform, position_uniform
from altmarl_ros.core.policy import FOR_THIS_K, check_global_policy, check_local_policy, uniform_local_policy
from altmarl_ros.core.sampler import DEFAULT_POOL, as_game
from altmarl_ros.errors import LearnError

DEFAULT_TABLE_BYTES = 1 << 30  # cache of sampled next-count ranks; beyond it draws are recomputed
DEFAULT_MAX_SWEEPS = 10_000
_N_BLOCKS = 64  # prange work units; results do not depend on it
LAYOUTS = ("ranks", "codes")  # how stored draws are held (module docstring)
_CODE_BITS = 16
ESCAPE = 0xFFFF  # a "codes" entry whose draw is recomputed where it is met
_RELEASE_CHUNKS = 64  # the recording sweep frees releasable draw storage in this many steps (Q and the
# draws overlap by one step: 1/64 of the smaller, 9 MiB at k = 100, against 35 MiB with 16 steps)


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


def _alias_records(accept, alias):
    """(accept, choice): two views of one buffer of 16-byte records, one per table entry x.

    accept[..., x, 0] is x's acceptance (float64); choice[..., x, 2] is x and
    choice[..., x, 3] its alias (int32), so a lookup reads one record and indexes it.
    """
    records = np.zeros(accept.shape + (2,))
    records[..., 0] = accept
    choice = records.view(np.int32)
    choice[..., 2] = np.arange(accept.shape[-1], dtype=np.int32)
    choice[..., 3] = alias
    return records, choice


@njit(cache=True)
def _draw_scratch(m, S_l):
    """(counts [m, S_l], work [3, m] int64, fractions [m]): the buffers of _draw_counts for one thread."""
    return np.empty((m, S_l), np.int64), np.empty((3, m), np.int64), np.empty(m)


@njit(cache=True, inline="always")
def _alias_pick(row_accept, row_choice, at, fraction):
    """x of one alias draw at flat entry `at` = n (k + 1) + x of a (g, j, t) table: x, or its alias
    when the uniform's fraction reaches accept (the records of _alias_records).

    The comparison picks an index into the record, not a branch: as a select between
    two loaded values, the compiler turned it into a jump the CPU mispredicted about
    every other draw (a third of the fill's time at k = 100).
    """
    take = np.uint64(fraction >= row_accept[at * np.uint64(2)])
    return np.int64(row_choice[at * np.uint64(4) + np.uint64(2) + take])


@njit(cache=True)
def _draw_counts(F, f, g, accept, choice, order, key, scratch):
    """scratch[0][i] = next count vector of draw i < m of (s_g = g, F = unrank(f)).

    Draw i uses the uniforms of counters S_l^2 ((f S_g + g) m + i) + (j S_l + t).
    The m draws advance together, binomial (j, t) for all i at a time, in two passes:
    the uniforms and alias indices of all m (a loop the compiler vectorises: the
    counter hash is a few 64-bit multiplies), then the table lookups. A draw with no
    agent of source j left takes row n = 0, which gives x = 0 whatever its uniform.
    Counters as key + counter * golden are summed in parts (modulo 2^64, so exactly
    counter_uniform's); work[2] holds each draw's part.
    """
    counts, work, fractions = scratch
    S_g, S_l = accept.shape[0], F.shape[0]
    m = counts.shape[0]
    width = accept.shape[3]
    remaining, flat_index, draw_part = work[0], work[1], work[2]
    step = np.uint64(S_l * S_l) * GOLDEN
    base = np.uint64((f * S_g + g) * m)
    for i in range(m):
        draw_part[i] = np.int64(key + (base + np.uint64(i)) * step)
    counts[:, :] = 0
    for j in range(S_l):
        if F[j] == 0:
            continue
        remaining[:] = F[j]
        for t in range(S_l - 1):
            row_accept = accept[g, j, t].ravel()
            row_choice = choice[g, j, t].ravel()
            binomial_part = np.uint64(j * S_l + t) * GOLDEN
            for i in range(m):
                n = remaining[i]
                y = position_uniform(np.uint64(draw_part[i]) + binomial_part) * (n + 1)
                x = min(int(y), n)
                fractions[i] = y - x
                flat_index[i] = n * width + x
            target = order[g, j, t]
            for i in range(m):
                x = _alias_pick(row_accept, row_choice, np.uint64(flat_index[i]), fractions[i])
                counts[i, target] += x
                remaining[i] -= x
        last = order[g, j, S_l - 1]
        for i in range(m):
            counts[i, last] += remaining[i]


@njit(cache=True)
def _draw_ranks(F, f, g, accept, choice, order, key, scratch, ranks):
    """ranks[i] = rank of draw i (i < m) of the next count vector of (s_g = g, F = unrank(f))."""
    _draw_counts(F, f, g, accept, choice, order, key, scratch)
    counts = scratch[0]
    for i in range(ranks.shape[0]):
        ranks[i] = _rank(counts[i])


@njit(cache=True)
def _draw_rank_one(F, f, g, i, m, accept, choice, order, key, row):
    """Rank of draw i alone: the uniforms and arithmetic of _draw_counts for that i (an escaped code).

    A source whose agents have all been placed stops early; _draw_counts goes on for
    the other draws, but with n = 0 the alias row always gives x = 0, so the counts agree.
    """
    S_g, S_l = accept.shape[0], F.shape[0]
    width = accept.shape[3]
    counter = (np.uint64((f * S_g + g) * m) + np.uint64(i)) * np.uint64(S_l * S_l)
    row[:] = 0
    for j in range(S_l):
        n = F[j]
        for t in range(S_l - 1):
            if n == 0:
                break
            y = counter_uniform(key, counter + np.uint64(j * S_l + t)) * (n + 1)
            x = min(int(y), n)
            x = _alias_pick(accept[g, j, t].ravel(), choice[g, j, t].ravel(), np.uint64(n * width + x), y - x)
            row[order[g, j, t]] += x
            n -= x
        row[order[g, j, S_l - 1]] += n
    return _rank(row)


@njit(cache=True)
def _code_base(F, g, mean_cum, base):
    """base[j] = round(E[c_j(F')]) + j - half window: c_j + j - base[j] is draw's field j of a code."""
    bits = _CODE_BITS // base.shape[0]
    for j in range(base.shape[0]):
        mean = 0.0
        for s in range(F.shape[0]):
            mean += F[s] * mean_cum[g, s, j]
        base[j] = int(math.floor(mean + 0.5)) + j - (1 << (bits - 1))


@njit(cache=True)
def _encode(counts_row, base):
    """The 16-bit code of one drawn count vector, or ESCAPE when a field leaves its window."""
    n_fields = base.shape[0]
    bits = _CODE_BITS // n_fields
    code = 0
    cumulative = 0
    for j in range(n_fields):
        cumulative += counts_row[j]
        field = cumulative + j - base[j]
        if field < 0 or field >= (1 << bits):
            return ESCAPE
        code |= field << (bits * j)
    return code


@njit(cache=True, inline="always")
def _successors(draws, F, f, g, base, shifts, scratch, out, slot):
    """out[i] = rank of draw i of (g, F = unrank(f)): decoded code, stored escape, or recomputed.

    For rows beyond the stored ranks (those the sweep gathers in place). `shifts` are the
    code's field offsets in bits: a tuple, so its length is a compile-time constant and
    each number of fields gets an unrolled decode (1.5-2x faster sweeps than a loop over a
    runtime count). Indices are unsigned: no negative-index wraparound checks, and
    base[j] + field, which is >= 0 for every stored code, comes out right modulo 2^64.
    An escaped code's rank is escaped[slot] when escapes are stored (slots run in (g, i)
    order from escape_start[f]), else recomputed. Returns the next slot.
    """
    ranks, codes, cols, mean_cum, accept, choice, order, key, escape_start, escaped = draws
    m = out.shape[0]
    if f >= codes.shape[0]:
        _draw_ranks(F, f, g, accept, choice, order, key, scratch, out)
        return slot
    _code_base(F, g, mean_cum, base)
    flat = cols.ravel()
    for j in range(base.shape[0]):
        base[j] += j * cols.shape[1]  # field j's terms start at flat[j * n_cols]
    mask = (np.uint64(1) << np.uint64(_CODE_BITS // len(shifts))) - np.uint64(1)
    row = codes[f, g]
    for i in range(m):
        code = np.uint64(row[i])
        if code == np.uint64(ESCAPE):
            if escaped.shape[0] > 0:
                out[i] = escaped[slot]
                slot += 1
            else:
                out[i] = _draw_rank_one(F, f, g, i, m, accept, choice, order, key, scratch[0][0])
        else:
            r = np.uint64(0)
            for j in range(len(shifts)):
                r += np.uint64(flat[np.uint64(base[j]) + ((code >> shifts[j]) & mask)])
            out[i] = r
    return slot


@njit(cache=True, inline="always")
def _next_in_block(f, first, k, F):
    """F <- unrank(f) in a loop over consecutive ranks from `first`: a search once, then successor steps."""
    if f == first:
        _unrank(f, k, F)
    else:
        _successor(F)


@njit(parallel=True, cache=True)
def _fill_draws(draws, k, S_l, m, row_escapes):
    """Store the draws of the stored rows (ranks or codes); row_escapes[f] += row f's escaped codes."""
    ranks, codes, cols, mean_cum, accept, choice, order, key, escape_start, escaped = draws
    S_g = accept.shape[0]
    N = max(ranks.shape[0], codes.shape[0])
    block = (N + _N_BLOCKS - 1) // _N_BLOCKS
    for g in range(S_g):  # one global state at a time: its alias tables stay in cache
        for b in prange(_N_BLOCKS):
            F = np.empty(S_l, np.int64)
            scratch = _draw_scratch(m, S_l)
            counts = scratch[0]
            base = np.empty(max(S_l - 1, 1), np.int64)
            first = b * block
            for f in range(first, min(N, (b + 1) * block)):
                _next_in_block(f, first, k, F)
                _draw_counts(F, f, g, accept, choice, order, key, scratch)
                if ranks.shape[0] > 0:
                    for i in range(m):
                        ranks[f, g, i] = _rank(counts[i])
                else:
                    _code_base(F, g, mean_cum, base)
                    for i in range(m):
                        code = _encode(counts[i], base)
                        codes[f, g, i] = code
                        if code == ESCAPE:
                            row_escapes[f] += 1


@njit(parallel=True, cache=True)
def _fill_escapes(draws, k, S_l, m):
    """escaped[escape_start[f] + ...] = the ranks of row f's escaped codes, in (g, i) order."""
    ranks, codes, cols, mean_cum, accept, choice, order, key, escape_start, escaped = draws
    S_g = accept.shape[0]
    N = codes.shape[0]
    block = (N + _N_BLOCKS - 1) // _N_BLOCKS
    for b in prange(_N_BLOCKS):
        F = np.empty(S_l, np.int64)
        row = np.empty(S_l, np.int64)
        for f in range(b * block, min(N, (b + 1) * block)):
            slot = escape_start[f]
            if escape_start[f + 1] == slot:
                continue
            _unrank(f, k, F)
            for g in range(S_g):
                for i in range(m):
                    if codes[f, g, i] == ESCAPE:
                        escaped[slot] = _draw_rank_one(F, f, g, i, m, accept, choice, order, key, row)
                        slot += 1


@njit(parallel=True, cache=True)
def _sample_draw_costs(draws, k, S_l, m, states):
    """Draw (without storing) the m draws of each (f, g) in `states`; returns escaped codes among them."""
    ranks, codes, cols, mean_cum, accept, choice, order, key, escape_start, escaped = draws
    escapes = np.zeros(states.shape[0], np.int64)
    for s in prange(states.shape[0]):
        F = np.empty(S_l, np.int64)
        scratch = _draw_scratch(m, S_l)
        counts = scratch[0]
        base = np.empty(max(S_l - 1, 1), np.int64)
        f, g = states[s, 0], states[s, 1]
        _unrank(f, k, F)
        _draw_counts(F, f, g, accept, choice, order, key, scratch)
        _code_base(F, g, mean_cum, base)
        for i in range(m):
            escapes[s] += _encode(counts[i], base) == ESCAPE
    return escapes


@njit(cache=True, inline="always")
def _gather_rows(V, rows, w):
    """w[s] = sum_i V[rows[i], s]: the m gathers of one backup, the sweep's inner loop.

    Up to 8 global states the sums live in scalars (registers): an array w updated
    in the loop is stored and reloaded at every step, since it might alias V, and
    that took about half of a sweep's time.
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
        w0 += V[r, 0]
        if S_g > 1:
            w1 += V[r, 1]
        if S_g > 2:
            w2 += V[r, 2]
        if S_g > 3:
            w3 += V[r, 3]
        if S_g > 4:
            w4 += V[r, 4]
        if S_g > 5:
            w5 += V[r, 5]
        if S_g > 6:
            w6 += V[r, 6]
        if S_g > 7:
            w7 += V[r, 7]
    sums = (w0, w1, w2, w3, w4, w5, w6, w7)
    for s in range(S_g):
        w[s] = sums[s]


@njit(cache=True, inline="always")
def _decode_row(V, draws, F, f, base, shifts, scratch, rows):
    """rows[g] = the successor ranks of (g, F = unrank(f)) for every g, f a coded row; their V rows requested."""
    escape_start = draws[8]
    slot = escape_start[f] if f < escape_start.shape[0] - 1 else 0
    for g in range(rows.shape[0]):
        slot = _successors(draws, F, f, g, base, shifts, scratch, rows[g], slot)
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


@njit(parallel=True, cache=True)
def _sweep(V_old, V_new, Q, pi_out, policy, draws, shifts, f_lo, f_hi, k, m, r_g, r_loc, P_g, gamma, lo_blk,
           hi_blk, from_zero):
    """One Jacobi backup of the states with rank in [f_lo, f_hi): V_new = T V_old (or T^policy V_old).

    Writes Q[g, f, a] and the greedy pi_out[g, f] when those arrays are non-empty;
    lo_blk/hi_blk get per-block min/max of V_new - V_old. The gathers miss the cache once
    V outgrows it, so they are requested one count vector ahead (_prefetch_row): stored
    ranks straight from the store; codes are decoded a count vector ahead into a two-row
    buffer, so that decoding F + 1 overlaps the cache misses of F's gathers.
    `from_zero` says V_old is 0 everywhere: every sum of gathers is then 0.0, so none is
    made (nor any draw recomputed), which gives the same V_new bit for bit.
    """
    S_g = V_old.shape[1]
    A_g = r_g.shape[1]
    S_l = r_loc.shape[1]
    write_q = Q.shape[1] > 0
    write_pi = pi_out.shape[1] > 0
    fixed = policy.shape[0] > 0
    stored_ranks, codes_rows = draws[0], draws[1].shape[0]
    block = (f_hi - f_lo + _N_BLOCKS - 1) // _N_BLOCKS
    for b in prange(_N_BLOCKS):
        F = np.empty(S_l, np.int64)
        scratch = _draw_scratch(m, S_l)
        base = np.empty(max(S_l - 1, 1), np.int64)
        ranks = np.empty(m, np.int64)
        decoded = np.empty((2, S_g, m), np.int64)  # ranks of coded rows f and f + 1, at [f % 2]
        F_ahead = np.empty(S_l, np.int64)
        w = np.empty(S_g)
        lo, hi = np.inf, -np.inf
        first = f_lo + b * block
        end = min(f_hi, f_lo + (b + 1) * block)
        for f in range(first, end):
            _next_in_block(f, first, k, F)
            if not from_zero and f + 1 < stored_ranks.shape[0]:
                for g in range(S_g):
                    for i in range(m):
                        _prefetch_row(V_old, stored_ranks[f + 1, g, i])
            coded = not from_zero and stored_ranks.shape[0] <= f < codes_rows
            if coded:  # coded rows run from the block's first (a store holds ranks or codes, not both)
                if f == first:
                    _decode_row(V_old, draws, F, f, base, shifts, scratch, decoded[f % 2])
                if f + 1 < min(end, codes_rows):
                    F_ahead[:] = F
                    _successor(F_ahead)
                    _decode_row(V_old, draws, F_ahead, f + 1, base, shifts, scratch, decoded[(f + 1) % 2])
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
                    _successors(draws, F, f, g, base, shifts, scratch, ranks, 0)
                    _gather_rows(V_old, ranks, w)
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
        first = b * block
        for f in range(first, min(N_F, (b + 1) * block)):
            _next_in_block(f, first, k, F)
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


def check_learning_size(game, k: int, m: int, table_bytes: int = DEFAULT_TABLE_BYTES, max_memory=None,
                        keep_draws=True, reserve: int = 0) -> "MemoryPlan":
    """The MemoryPlan for (game, k), after checking that ranks fit int32 and that the plan's peak
    plus `reserve` (what the caller holds beside G-LEARN's arrays) fits the memory budget;
    called before any work starts. `max_memory` covers the plan and the reserve together. `game`
    may be its sizes (n_sg, n_ag, n_sl, n_al) alone: only they are read."""
    n_sg, n_ag, n_sl, _ = getattr(game, "sizes", game)
    n_f = n_count_vectors(k, n_sl)
    if n_f >= 2**31:
        raise LearnError("k", f"k = {k} gives {n_f:.3g} count vectors over {n_sl} local states, beyond "
                              f"int32 ranks (2^31); use a smaller k")
    plan_budget = None if max_memory is None else max_memory - reserve
    if plan_budget is not None and plan_budget <= 0:
        raise LearnError("max_memory", f"is {max_memory / 2**20:.0f} MiB; ALTERNATING-MARL at k = {k} holds "
                         f"{reserve / 2**20:.0f} MiB beside G-LEARN's arrays; raise it or lower k")
    plan = _plan((n_sg, n_ag, n_sl), k, m, n_f, table_bytes, plan_budget, keep_draws)
    budget.require(f"G-LEARN on {n_sg} x {n_f} (s_g, F) states for k = {k}", plan.peak_bytes + reserve,
                   "use a smaller --k")
    return plan


def alternation_reserve(game, k: int) -> int:
    """Bytes ALTERNATING-MARL holds beside one G-LEARN's plan: the accepted round's Q and pi_g,
    and the global gain's three further value arrays (V*, V^pi_g and a sweep buffer)."""
    cells = n_count_vectors(k, game.n_sl) * game.n_sg
    return cells * (4 * game.n_ag + 4 + 3 * 8)


def alternation_budget(game, k: int, m: int, table_bytes: int, max_memory):
    """G-LEARN's share of an ALTERNATING-MARL memory budget (None: no budget): max_memory less
    alternation_reserve, after checking that the plan (draws kept) and the reserve fit together."""
    reserve = alternation_reserve(game, k)
    check_learning_size(game, k, m, table_bytes, max_memory, keep_draws=True, reserve=reserve)
    return None if max_memory is None else max_memory - reserve


@dataclass(frozen=True)
class MemoryPlan:
    """How one G-LEARN call holds its draws, what its arrays take, and what recomputation costs.

    Chosen by `plan_memory`; the answer never depends on it (module docstring).
    `escape_fraction` and `draw_seconds` are sampled on a few hundred states
    before anything big is allocated (the surrogate then counts the escapes exactly).
    """

    layout: str  # "ranks" or "codes"
    n_f: int
    n_sg: int
    m: int
    n_cached: int  # count vectors whose draws are stored; the others are recomputed every sweep
    draw_bytes: int
    fixed_bytes: int  # alias tables + two value arrays
    result_bytes: int  # Q + pi_g
    release_draws: bool  # the recording sweep frees the stored draws as it writes Q and pi_g
    escape_fraction: float = 0.0  # of stored codes, recomputed where met unless escapes_stored
    escapes_stored: bool = False  # the escaped draws' ranks are kept (int32) beside the codes
    draw_seconds: float = math.nan  # wall seconds per draw on this machine (all threads)

    @property
    def peak_bytes(self) -> int:
        together = max(self.draw_bytes, self.result_bytes) if self.release_draws else self.draw_bytes + self.result_bytes
        return self.fixed_bytes + together

    @property
    def cached_fraction(self) -> float:
        return self.n_cached / self.n_f

    @property
    def recomputed_per_sweep(self) -> float:
        """Draws recomputed every sweep: those of unstored rows, plus escaped codes."""
        stored = self.n_cached * self.n_sg * self.m
        escaped = 0.0 if self.escapes_stored else self.escape_fraction * stored
        return (self.n_f - self.n_cached) * self.n_sg * self.m + escaped

    def describe(self) -> str:
        mib = 2**20
        width = "int32 ranks" if self.layout == "ranks" else "16-bit codes"
        text = (f"draws: {width} for {self.cached_fraction:.0%} of {self.n_f:,} count vectors "
                f"({self.draw_bytes / mib:.0f} MiB)")
        if self.layout == "codes":
            text += f", {self.escape_fraction:.2%} escaped" + (" (their ranks stored)" if self.escapes_stored else "")
        per_sweep = self.recomputed_per_sweep * self.draw_seconds
        text += (f"; recomputed per sweep: {self.recomputed_per_sweep:.3g} draws (~{per_sweep:.2g} s); "
                 f"filling the store ~{self.n_cached * self.n_sg * self.m * self.draw_seconds:.2g} s; "
                 f"arrays at peak {self.peak_bytes / mib:.0f} MiB")
        if self.release_draws:
            text += " (the last sweep frees the draws as it writes Q)"
        return text


def _code_fields(n_sl: int) -> int:
    """Bits per field of a 16-bit code (0: codes unavailable, too many local states or only one)."""
    return _CODE_BITS // (n_sl - 1) if n_sl >= 2 else 0


def _layout_options(n_sl, row_ranks, row_codes):
    """(layout, bytes per stored count vector), fastest first."""
    options = [("ranks", row_ranks)]
    if _code_fields(n_sl) >= 1:
        options.append(("codes", row_codes))
    return options


def _plan(sizes, k, m, n_f, table_bytes, max_memory, keep_draws) -> MemoryPlan:
    """The layout and stored rows for a `table_bytes` draw store, or for a `max_memory` total."""
    n_sg, n_ag, n_sl = sizes
    alias_bytes = n_sg * n_sl * max(n_sl - 1, 1) * (k + 1) ** 2 * 16  # _alias_records
    fixed = alias_bytes + 2 * n_f * n_sg * 8
    result = n_sg * n_f * (n_ag * 4 + 4)
    options = _layout_options(n_sl, n_sg * m * 4, n_sg * m * 2 + 8)  # codes: + a row's escape count (int64)

    def plan(layout, row_bytes, n_cached, release):
        return MemoryPlan(layout, n_f, n_sg, m, n_cached, n_cached * row_bytes, fixed, result, release)

    if max_memory is None:
        for layout, row_bytes in options:
            if n_f * row_bytes <= table_bytes:
                return plan(layout, row_bytes, n_f, False)
        layout, row_bytes = options[-1]
        return plan(layout, row_bytes, min(n_f, table_bytes // row_bytes), False)
    for release in ((False,) if keep_draws else (False, True)):
        for layout, row_bytes in options:
            candidate = plan(layout, row_bytes, n_f, release)
            if candidate.peak_bytes <= max_memory:
                return candidate
    release = not keep_draws
    room = max_memory - fixed - (0 if release else result)
    if room < 0 or result + fixed > max_memory:
        need = fixed + result
        raise LearnError("max_memory", f"is {max_memory / 2**20:.0f} MiB; G-LEARN at k = {k} needs at least "
                         f"{need / 2**20:.0f} MiB (two value arrays, alias tables, Q and pi_g) before any "
                         "stored draw; raise it or lower k")
    layout, row_bytes = options[-1]
    return plan(layout, row_bytes, min(n_f, room // row_bytes), release)


def _draw_storage(shape, dtype, releasable):
    """(array for stored draws, its anonymous mmap or None): mmap-backed when it must be freed page by page."""
    if not releasable:
        return np.empty(shape, dtype), None
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype, count=count).reshape(shape), buffer


def _release_rows(array, buffer, rows):
    """Return the whole pages under array[:rows] to the OS (RSS drops; those rows then read as 0)."""
    end = rows * (array.nbytes // max(array.shape[0], 1)) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > 0:
        buffer.madvise(mmap.MADV_DONTNEED, 0, end)


def _binomial_columns(k, n_sl):
    """cols[j, n] = C(n, j + 1) for n < k + n_sl: the terms of rank() a code is decoded with."""
    cols = np.zeros((max(n_sl - 1, 1), k + n_sl), np.int64)
    for j in range(n_sl - 1):
        for n in range(k + n_sl):
            cols[j, n] = math.comb(n, j + 1)
    return cols


@njit(parallel=True, cache=True)
def _extrapolate(V, V_old, factor, mid):
    """V += factor * (V - V_old - mid), in place: the step along the slowest error mode."""
    for f in prange(V.shape[0]):
        for s in range(V.shape[1]):
            V[f, s] += factor * (V[f, s] - V_old[f, s] - mid)


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


class _Surrogate:
    """The fixed m-sample operator of one (game, pi_l, k, m, seed): draws plus iteration."""

    def __init__(self, game, pi_l, k, m, seed, table_bytes, max_memory=None, keep_draws=True, fill=True,
                 extrapolate=True):
        self.game, self.k, self.m, self.extrapolate = game, k, m, extrapolate
        plan = check_learning_size(game, k, m, table_bytes, max_memory, keep_draws)
        self.n_f = plan.n_f
        P_fused, self.r_loc = fold_local_policy(game, pi_l)
        self.order = np.argsort(-P_fused, axis=2, kind="stable")
        self.accept, self.choice = _alias_records(*_binomial_alias(P_fused, self.order, k))
        self.mean_cum = np.ascontiguousarray(np.cumsum(P_fused, axis=2)[:, :, :max(game.n_sl - 1, 1)])
        self.cols = _binomial_columns(k, game.n_sl)
        n_fields = self.cols.shape[0]
        self.shifts = tuple(np.uint64(_CODE_BITS // n_fields * j) for j in range(n_fields))
        self.key = np.uint64(np.random.SeedSequence([seed, 0x61C8]).generate_state(1, np.uint64)[0])
        self.table = np.empty((0, game.n_sg, m), np.int32)
        self.codes = np.empty((0, game.n_sg, m), np.uint16)
        self.escape_start, self.escaped = np.zeros(1, np.int64), np.empty(0, np.int32)
        self.table_fraction = 0.0
        self.plan = self._sample_costs(plan)
        if not fill:
            return
        storage, self._buffer = _draw_storage((plan.n_cached, game.n_sg, m),
                                              np.int32 if plan.layout == "ranks" else np.uint16, plan.release_draws)
        if plan.layout == "ranks":
            self.table = storage
        else:
            self.codes = storage
        # a codes store counts each row's escapes in what becomes their index (escape_start)
        index = np.zeros(plan.n_cached + 1 if plan.layout == "codes" else 1, np.int64)
        _fill_draws(self.draws, k, game.n_sl, m, index[1:])
        if plan.layout == "codes" and plan.n_cached:
            self.plan = replace(self.plan, escape_fraction=index.sum() / storage.size)
            slack = table_bytes - plan.draw_bytes if max_memory is None else max_memory - plan.peak_bytes
            self._store_escapes(index, slack)
        self.table_fraction = plan.cached_fraction

    def _store_escapes(self, index, slack):
        """Keep the escaped codes' ranks (int32) when they fit the budget's slack (the draw
        store's, or max_memory's), so that sweeps read them instead of recomputing them; the
        plan then counts their bytes. index[1 + f] holds row f's escapes and becomes, summed
        in place, escape_start (the plan already counts it: 8 bytes a stored row)."""
        total = int(index.sum())
        extra = 4 * total
        if total == 0 or extra > slack:
            return
        np.cumsum(index[1:], out=index[1:])
        self.escape_start = index
        self.escaped = np.empty(total, np.int32)
        _fill_escapes(self.draws, self.k, self.game.n_sl, self.m)
        self.plan = replace(self.plan, draw_bytes=self.plan.draw_bytes + extra, escapes_stored=True)

    @property
    def draws(self):
        return (self.table, self.codes, self.cols, self.mean_cum, self.accept, self.choice, self.order, self.key,
                self.escape_start, self.escaped)

    def _sample_costs(self, plan, n_states=2048):
        """The plan with this machine's seconds per draw and the escape rate of codes, from a sample of states."""
        n_states = min(n_states, self.n_f * self.game.n_sg)
        flat = np.linspace(0, self.n_f * self.game.n_sg - 1, n_states).astype(np.int64)
        states = np.stack([flat // self.game.n_sg, flat % self.game.n_sg], axis=1)
        _sample_draw_costs(self.draws, self.k, self.game.n_sl, self.m, states)  # load the kernel, warm the caches
        started = time.perf_counter()
        escapes = _sample_draw_costs(self.draws, self.k, self.game.n_sl, self.m, states)
        seconds = (time.perf_counter() - started) / (n_states * self.m)
        escape_fraction = escapes.sum() / (n_states * self.m) if plan.layout == "codes" else 0.0
        return replace(plan, escape_fraction=escape_fraction, draw_seconds=seconds)

    def _sweep(self, V, other, Q, pi_out, policy, f_lo, f_hi, lo_blk, hi_blk, from_zero=False):
        game = self.game
        _sweep(V, other, Q, pi_out, policy, self.draws, self.shifts, f_lo, f_hi, self.k, self.m, game.r_g,
               self.r_loc, game.P_g, game.gamma, lo_blk, hi_blk, from_zero)
        return float(lo_blk.min()), float(hi_blk.max())

    def _recording_sweep(self, V, other, Q, pi_out, policy, lo_blk, hi_blk):
        """The sweep that writes Q and pi_g; under a releasing plan, in chunks that free the draws behind them."""
        if not self.plan.release_draws:
            return self._sweep(V, other, Q, pi_out, policy, 0, self.n_f, lo_blk, hi_blk)
        lo, hi = math.inf, -math.inf
        edges = np.linspace(0, self.n_f, _RELEASE_CHUNKS + 1).astype(np.int64)
        for f_lo, f_hi in zip(edges[:-1], edges[1:]):
            chunk_lo, chunk_hi = self._sweep(V, other, Q, pi_out, policy, int(f_lo), int(f_hi), lo_blk, hi_blk)
            lo, hi = min(lo, chunk_lo), max(hi, chunk_hi)
            for stored in (self.table, self.codes):
                if stored.shape[0]:
                    _release_rows(stored, self._buffer, min(int(f_hi), stored.shape[0]))
        # the freed rows read as zeros now: from here on every draw is recomputed
        self.table = np.empty((0, self.game.n_sg, self.m), np.int32)
        self.codes = np.empty((0, self.game.n_sg, self.m), np.uint16)
        self.escape_start, self.escaped = np.zeros(1, np.int64), np.empty(0, np.int32)
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
        lo_blk, hi_blk = np.empty(_N_BLOCKS), np.empty(_N_BLOCKS)
        gamma = self.game.gamma
        slow_mode = _SlowModeExtrapolation() if self.extrapolate else _NoExtrapolation()
        history = []
        residual = math.inf
        from_zero = _all_zero(V)  # a cold start: the first sweep needs no gathers
        for sweep in range(1, max_sweeps + 1):
            last = record and (residual <= tol or sweep == max_sweeps)
            if last:
                lo, hi = self._recording_sweep(V, other, Q, pi_out, policy, lo_blk, hi_blk)
            else:
                lo, hi = self._sweep(V, other, empty_q, empty_pi, policy, 0, self.n_f, lo_blk, hi_blk,
                                     from_zero and sweep == 1)
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


def check_max_memory(max_memory):
    """None (no budget) or a positive number of bytes."""
    if max_memory is None:
        return None
    return integer(LearnError, "max_memory", max_memory, 1)


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


def plan_memory(source, k, m=30, max_memory=None, pi_l=None, seed=0, *, table_bytes=DEFAULT_TABLE_BYTES,
                keep_draws=False, alternating=False, pool=DEFAULT_POOL) -> MemoryPlan:
    """The MemoryPlan g_learn would use, with its time cost sampled on this machine, before any big allocation.

    `keep_draws=True` plans for callers that iterate the same draws again
    (ALTERNATING-MARL's global gain), so the draws and Q must fit together;
    `alternating=True` plans as alternating_marl does (draws kept, and its
    alternation_reserve taken out of max_memory first).
    Raises LearnError("max_memory") when the budget cannot hold even the value arrays and Q.
    """
    k = integer(LearnError, "k", k, 1)
    m = integer(LearnError, "m", m, 1)
    seed = integer(LearnError, "seed", seed, 0)
    table_bytes = integer(LearnError, "table_bytes", table_bytes, 0)
    max_memory = check_max_memory(max_memory)
    game = as_game(source, pool, seed)
    pi_l = uniform_local_policy(game) if pi_l is None else check_local_policy(game.sizes, pi_l, LearnError)
    if alternating:
        max_memory, keep_draws = alternation_budget(game, k, m, table_bytes, max_memory), True
    return _Surrogate(game, pi_l, k, m, seed, table_bytes, max_memory, keep_draws, fill=False).plan


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
