"""G-LEARN's fixed draws of the next count vector, and how they are stored (int32 ranks or 16-bit codes).

The m draws of F' for each (s_g, F) are fixed for a whole G-LEARN call, so its operator
is a gamma-contraction with one fixed point, deterministic for a seed. Draw (s_g, F, i)
comes from a counter-based RNG keyed by (seed, s_g, rank F, i), one uniform per
conditional binomial, drawn from exact Walker alias tables. So a draw can be recomputed
at will, and how draws are stored never changes the answer (glearn_memory.MemoryPlan):
"ranks" stores int32 successor ranks; "codes" stores each draw in 16 bits as the offsets
of its cumulative counts c_j = F'_0 + ... + F'_j (j < S_l - 1) from their rounded means,
16 // (S_l - 1) bits each. A code is decoded with S_l - 1 lookups in Pascal's triangle
(rank = sum_j C(c_j + j, j + 1)); a draw outside that window is stored as ESCAPE, and its
int32 rank is kept in a side store indexed per row when the budget has room (else
recomputed where met). Count vectors beyond the stored rows are recomputed every sweep.
Two local policies map the same uniforms to nearby F' (common random numbers), which
keeps the surrogate values of successive ALTERNATING-MARL rounds comparable.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from altmarl_ros.core.counts import rank_kernel as _rank, successor_kernel as _successor
from altmarl_ros.core.counts import unrank_kernel as _unrank
from altmarl_ros.core.fused import log_factorials
from altmarl_ros.core.rng import GOLDEN, counter_uniform, position_uniform

N_BLOCKS = 64  # prange work units of the G-LEARN kernels; results do not depend on it
CODE_BITS = 16
ESCAPE = 0xFFFF  # a "codes" entry whose draw is recomputed (or read from the escaped ranks) where it is met


class Draws(NamedTuple):
    """The fixed draws of one (game, pi_l, k, m, seed), as the kernels read them (a numba record).

    Stored rows are count vectors 0, 1, ... by rank: `ranks` int32 [rows, S_g, m] or `codes`
    uint16 [rows, S_g, m], the other one (or both) with no rows. `escape_start` int64 [rows + 1]
    and `escaped` int32: the ranks of the escaped codes, row f's (in (g, i) order) from
    escaped[escape_start[f]]; [0] and empty when they are not stored. The rest is what a
    draw is made from (alias tables, targets' order, key) or decoded with.
    """

    ranks: np.ndarray
    codes: np.ndarray
    cols: np.ndarray  # [S_l - 1, k + S_l]: C(n, j + 1), the terms of rank() a code is decoded with
    mean_cum: np.ndarray  # [S_g, S_l, S_l - 1]: the expected cumulative moves, centres of a code's windows
    accept: np.ndarray  # the alias tables' records (_alias_records) [S_g, S_l, S_l - 1, k + 1, k + 1, 2]
    choice: np.ndarray  # the same records as int32 [..., 4]: x at [..., 2], its alias at [..., 3]
    order: np.ndarray  # [S_g, S_l, S_l]: the targets of each source state, most likely first
    key: np.uint64  # the counter RNG's key, from the seed
    escape_start: np.ndarray
    escaped: np.ndarray
    k: int
    m: int


def make_draws(P_fused: np.ndarray, k: int, m: int, seed: int) -> Draws:
    """The draws of m next count vectors of k locals moving by P_fused [S_g, S_l, S_l'], nothing stored yet."""
    n_sg, n_sl = P_fused.shape[0], P_fused.shape[1]
    order = np.argsort(-P_fused, axis=2, kind="stable")
    accept, choice = _alias_records(*_binomial_alias(P_fused, order, k))
    mean_cum = np.ascontiguousarray(np.cumsum(P_fused, axis=2)[:, :, :max(n_sl - 1, 1)])
    cols = _binomial_columns(k, n_sl)
    key = np.uint64(np.random.SeedSequence([seed, 0x61C8]).generate_state(1, np.uint64)[0])
    return Draws(**_no_stores(n_sg, m), cols=cols, mean_cum=mean_cum, accept=accept, choice=choice, order=order,
                 key=key, k=k, m=m)


def _no_stores(n_sg, m) -> dict:
    return dict(ranks=np.empty((0, n_sg, m), np.int32), codes=np.empty((0, n_sg, m), np.uint16),
                escape_start=np.zeros(1, np.int64), escaped=np.empty(0, np.int32))


def without_stores(draws: Draws) -> Draws:
    """`draws` with nothing stored: every draw is recomputed where it is met."""
    return draws._replace(**_no_stores(draws.order.shape[0], draws.m))


def code_shifts(draws: Draws) -> tuple:
    """The bit offsets of a code's fields, for `successors`: a tuple, not a field of the record, because
    its length must be a compile-time constant and numba's parallel loops cannot take a tuple inside a record."""
    n_fields = draws.cols.shape[0]
    return tuple(np.uint64(CODE_BITS // n_fields * j) for j in range(n_fields))


def with_escapes_stored(draws: Draws, row_escapes: np.ndarray) -> Draws:
    """`draws` with the ranks of its escaped codes stored. row_escapes [rows + 1] holds row f's
    escapes at [1 + f] (fill_draws counts them there) and becomes escape_start, summed in place."""
    np.cumsum(row_escapes[1:], out=row_escapes[1:])
    draws = draws._replace(escape_start=row_escapes, escaped=np.empty(int(row_escapes[-1]), np.int32))
    fill_escapes(draws)
    return draws


# ----------------------------------------------------------------------------- kernels

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
def draw_scratch(m, S_l):
    """(counts [m, S_l], work [3, m] int64, fractions [m]): the buffers of _draw_counts for one thread."""
    return np.empty((m, S_l), np.int64), np.empty((3, m), np.int64), np.empty(m)


@njit(cache=True, inline="always")
def _alias_pick(row_accept, row_choice, at, fraction):
    """x of one alias draw at flat entry `at` = n (k + 1) + x of a (g, j, t) table: x, or its alias
    when the uniform's fraction reaches accept (the records of _alias_records).

    The comparison picks an index into the record, not a branch: as a select between
    two loaded values, the compiler turned it into a jump the CPU mispredicted about
    every other draw (docs/training.md, Kernel figures).
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
    bits = CODE_BITS // base.shape[0]
    for j in range(base.shape[0]):
        mean = 0.0
        for s in range(F.shape[0]):
            mean += F[s] * mean_cum[g, s, j]
        base[j] = int(math.floor(mean + 0.5)) + j - (1 << (bits - 1))


@njit(cache=True)
def _encode(counts_row, base):
    """The 16-bit code of one drawn count vector, or ESCAPE when a field leaves its window."""
    n_fields = base.shape[0]
    bits = CODE_BITS // n_fields
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
def successors(draws, shifts, F, f, g, base, scratch, out, slot):
    """out[i] = rank of draw i of (g, F = unrank(f)): decoded code, stored escape, or recomputed.

    For rows beyond the stored ranks (those the sweep gathers in place). `shifts`, the
    code's field offsets in bits (code_shifts), is a tuple: its length is a compile-time
    constant, so each number of fields gets an unrolled decode, not a loop over a runtime count.
    Indices are unsigned: no negative-index wraparound checks, and base[j] + field, which
    is >= 0 for every stored code, comes out right modulo 2^64. An escaped code's rank is
    escaped[slot] when escapes are stored (slots run in (g, i) order from escape_start[f]),
    else recomputed. Returns the next slot.
    """
    codes, cols, escaped = draws.codes, draws.cols, draws.escaped
    accept, choice, order, key = draws.accept, draws.choice, draws.order, draws.key
    m = out.shape[0]
    if f >= codes.shape[0]:
        _draw_ranks(F, f, g, accept, choice, order, key, scratch, out)
        return slot
    _code_base(F, g, draws.mean_cum, base)
    flat = cols.ravel()
    for j in range(base.shape[0]):
        base[j] += j * cols.shape[1]  # field j's terms start at flat[j * n_cols]
    mask = (np.uint64(1) << np.uint64(CODE_BITS // len(shifts))) - np.uint64(1)
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
def next_in_block(f, first, k, F):
    """F <- unrank(f) in a loop over consecutive ranks from `first`: a search once, then successor steps."""
    if f == first:
        _unrank(f, k, F)
    else:
        _successor(F)


@njit(parallel=True, cache=True)
def fill_draws(draws, row_escapes):
    """Store the draws of the stored rows (ranks or codes); row_escapes[f] += row f's escaped codes."""
    ranks, codes, mean_cum, accept, choice, order, key = (draws.ranks, draws.codes, draws.mean_cum, draws.accept,
                                                          draws.choice, draws.order, draws.key)
    k, m, S_l = draws.k, draws.m, accept.shape[1]
    S_g = accept.shape[0]
    N = max(ranks.shape[0], codes.shape[0])
    block = (N + N_BLOCKS - 1) // N_BLOCKS
    for g in range(S_g):  # one global state at a time: its alias tables stay in cache
        for b in prange(N_BLOCKS):
            F = np.empty(S_l, np.int64)
            scratch = draw_scratch(m, S_l)
            counts = scratch[0]
            base = np.empty(max(S_l - 1, 1), np.int64)
            first = b * block
            for f in range(first, min(N, (b + 1) * block)):
                next_in_block(f, first, k, F)
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
def fill_escapes(draws):
    """escaped[escape_start[f] + ...] = the ranks of row f's escaped codes, in (g, i) order."""
    codes, accept, choice, order, key = draws.codes, draws.accept, draws.choice, draws.order, draws.key
    escape_start, escaped = draws.escape_start, draws.escaped
    k, m, S_l = draws.k, draws.m, accept.shape[1]
    S_g = accept.shape[0]
    N = codes.shape[0]
    block = (N + N_BLOCKS - 1) // N_BLOCKS
    for b in prange(N_BLOCKS):
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
def sample_draw_costs(draws, states):
    """Draw (without storing) the m draws of each (f, g) in `states`; returns escaped codes among them."""
    mean_cum, accept, choice, order, key = draws.mean_cum, draws.accept, draws.choice, draws.order, draws.key
    k, m, S_l = draws.k, draws.m, accept.shape[1]
    escapes = np.zeros(states.shape[0], np.int64)
    for s in prange(states.shape[0]):
        F = np.empty(S_l, np.int64)
        scratch = draw_scratch(m, S_l)
        counts = scratch[0]
        base = np.empty(max(S_l - 1, 1), np.int64)
        f, g = states[s, 0], states[s, 1]
        _unrank(f, k, F)
        _draw_counts(F, f, g, accept, choice, order, key, scratch)
        _code_base(F, g, mean_cum, base)
        for i in range(m):
            escapes[s] += _encode(counts[i], base) == ESCAPE
    return escapes


def _binomial_columns(k, n_sl):
    """cols[j, n] = C(n, j + 1) for n < k + n_sl: the terms of rank() a code is decoded with."""
    cols = np.zeros((max(n_sl - 1, 1), k + n_sl), np.int64)
    for j in range(n_sl - 1):
        for n in range(k + n_sl):
            cols[j, n] = math.comb(n, j + 1)
    return cols
