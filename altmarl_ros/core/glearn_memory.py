"""G-LEARN's memory plan: how the fixed draws are held (glearn_draws) within a table size or a memory budget.

The plan is chosen before anything big is allocated, from the sizes alone plus a sample of
a few hundred states' draws timed on this machine; the answer never depends on it. Layouts,
fastest first: int32 ranks; 16-bit codes (escaped draws' ranks stored beside them when
there is room); the same, freed by the recording sweep as it writes Q (when only g_learn
iterates the draws); part of the codes, the other rows recomputed every sweep.
"""
from __future__ import annotations

import math
import mmap
import time
from dataclasses import dataclass, replace

import numpy as np

from altmarl_ros.core import budget
from altmarl_ros.core._checks import integer
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.glearn_draws import CODE_BITS, make_draws, sample_draw_costs
from altmarl_ros.core.policy import check_local_policy, uniform_local_policy
from altmarl_ros.core.sampler import DEFAULT_POOL, as_game
from altmarl_ros.errors import LearnError

DEFAULT_TABLE_BYTES = 1 << 30  # stored draws without a max_memory budget; beyond it draws are recomputed


@dataclass(frozen=True)
class MemoryPlan:
    """How one G-LEARN call holds its draws, what its arrays take, and what recomputation costs.

    Chosen by `plan_memory`; the answer never depends on it (glearn_draws).
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
        draws, result = self.draw_bytes, self.result_bytes
        return self.fixed_bytes + (max(draws, result) if self.release_draws else draws + result)

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
    return CODE_BITS // (n_sl - 1) if n_sl >= 2 else 0


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


def check_max_memory(max_memory):
    """None (no budget) or a positive number of bytes."""
    if max_memory is None:
        return None
    return integer(LearnError, "max_memory", max_memory, 1)


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
    plan = check_learning_size(game, k, m, table_bytes, max_memory, keep_draws)
    return sample_costs(plan, make_draws(fold_local_policy(game, pi_l)[0], k, m, seed))


def sample_costs(plan: MemoryPlan, draws, n_states=2048) -> MemoryPlan:
    """`plan` with this machine's seconds per draw and the escape rate of codes, from a sample of states."""
    n_states = min(n_states, plan.n_f * plan.n_sg)
    flat = np.linspace(0, plan.n_f * plan.n_sg - 1, n_states).astype(np.int64)
    states = np.stack([flat // plan.n_sg, flat % plan.n_sg], axis=1)
    sample_draw_costs(draws, states)  # load the kernel, warm the caches
    started = time.perf_counter()
    escapes = sample_draw_costs(draws, states)
    seconds = (time.perf_counter() - started) / (n_states * plan.m)
    escape_fraction = escapes.sum() / (n_states * plan.m) if plan.layout == "codes" else 0.0
    return replace(plan, escape_fraction=escape_fraction, draw_seconds=seconds)


def draw_storage(shape, dtype, releasable):
    """(array for stored draws, its anonymous mmap or None): mmap-backed when it must be freed page by page."""
    if not releasable:
        return np.empty(shape, dtype), None
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype, count=count).reshape(shape), buffer


def release_rows(array, buffer, rows):
    """Return the whole pages under array[:rows] to the OS (RSS drops; those rows then read as 0)."""
    end = rows * (array.nbytes // max(array.shape[0], 1)) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > 0:
        buffer.madvise(mmap.MADV_DONTNEED, 0, end)
