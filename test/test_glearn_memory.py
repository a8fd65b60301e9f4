"""G-LEARN's memory plan (core/glearn_memory.py) against bytes counted by hand from shapes and dtypes.

Fast (no learning but one tiny g_learn): the plan's byte counts must be those of the arrays
G-LEARN allocates; under a budget it must pick the fastest layout that fits, else store as
many rows as fit (found here by scanning every row count), and refuse, naming max_memory,
exactly when not even the value arrays and Q fit. test_glearn_storage checks that every
layout gives the same answer; this file checks the arithmetic that chooses between them.
"""
import dataclasses
import math
import mmap
import types

import numpy as np
import pytest

from _learn_reference import random_game, random_local_policy
from altmarl_ros.core import budget, glearn_memory
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.glearn import g_learn
from altmarl_ros.core.glearn_draws import make_draws
from altmarl_ros.core.glearn_memory import (MemoryPlan, alternation_budget, alternation_reserve, check_learning_size,
                                            check_max_memory, draw_storage, plan_memory, release_rows, sample_costs)
from altmarl_ros.errors import LearnError

MIB = 1 << 20


def _bytes(n_sg, n_ag, n_sl, k, m):
    """What G-LEARN allocates, by hand: n_f = C(k + S_l - 1, S_l - 1), alias tables (16-byte records [S_g, S_l, S_l - 1,
    k + 1, k + 1]) plus two float64 value arrays [n_f, S_g], Q (float32 [S_g, n_f, A_g]) plus pi_g (int32),
    and a stored row: int32 ranks [S_g, m], or uint16 codes [S_g, m] plus the row's int64 escape count."""
    n_f = math.comb(k + n_sl - 1, n_sl - 1)
    fixed = n_sg * n_sl * max(n_sl - 1, 1) * (k + 1) ** 2 * 16 + 2 * n_f * n_sg * 8
    rows = {"ranks": n_sg * m * 4}
    if 2 <= n_sl <= 17:  # a 16-bit code needs at least one bit for each of its n_sl - 1 fields
        rows["codes"] = n_sg * m * 2 + 8
    return n_f, fixed, n_sg * n_f * (4 * n_ag + 4), rows


def _peak(fixed, draws, result, release):
    return fixed + (max(draws, result) if release else draws + result)


def _reference(sizes, k, m, max_memory, keep_draws):
    """(layout, n_cached, release) the documented preference gives, or None when nothing fits:
    all rows in the fastest layout (ranks, then codes; then freeing the draws, unless they are kept),
    else the most rows of the last layout that fit, found by trying every row count."""
    n_f, fixed, result, rows = _bytes(*sizes[:3], k, m)
    for release in (False,) if keep_draws else (False, True):
        for layout, row in rows.items():
            if _peak(fixed, n_f * row, result, release) <= max_memory:
                return layout, n_f, release
    layout, row = list(rows.items())[-1]
    fitting = [n for n in range(n_f + 1) if _peak(fixed, n * row, result, not keep_draws) <= max_memory]
    return (layout, max(fitting), not keep_draws) if fitting else None


SMALL = (2, 3, 3, 2)  # n_sg, n_ag, n_sl, n_al; k = 4 gives 15 count vectors


# plans (layout, all rows, draws freed) a scan must meet besides a refusal and all ranks or codes beside Q:
# with 5 draws freed ranks come before kept codes; with 20, all codes (88 bytes a row) outweigh Q, so a
# plan that frees the draws may hold only part of them
FREEING = {5: {("ranks", True, True), ("codes", True, True)}, 20: {("codes", True, True), ("codes", False, True)}}


@pytest.mark.parametrize("keep_draws", [True, False])
@pytest.mark.parametrize("m", [5, 20])
def test_a_budget_gets_the_fastest_plan_that_fits_or_the_most_rows(keep_draws, m):
    """Every max_memory from below the value arrays + Q to past the all-ranks plan, byte by byte."""
    k = 4
    n_f, fixed, result, rows = _bytes(*SMALL[:3], k, m)
    low, high = fixed + result - 3, _peak(fixed, n_f * rows["ranks"], result, False) + 3
    outcomes = set()
    for max_memory in range(low, high):
        want = _reference(SMALL, k, m, max_memory, keep_draws)
        if want is None:
            with pytest.raises(LearnError) as raised:
                check_learning_size(SMALL, k, m, max_memory=max_memory, keep_draws=keep_draws)
            assert raised.value.field == "max_memory"
            outcomes.add("refused")
            continue
        plan = check_learning_size(SMALL, k, m, max_memory=max_memory, keep_draws=keep_draws)
        layout, n_cached, release = want
        assert (plan.layout, plan.n_cached, plan.release_draws) == want, max_memory
        assert type(plan.n_cached) is int and plan.n_f == n_f
        assert plan.draw_bytes == n_cached * rows[layout] and plan.fixed_bytes == fixed
        assert plan.result_bytes == result
        assert plan.peak_bytes == _peak(fixed, plan.draw_bytes, result, release) <= max_memory
        assert 0 <= plan.cached_fraction == n_cached / n_f <= 1
        outcomes.add((layout, n_cached == n_f, release))
    expected = {"refused", ("ranks", True, False), ("codes", True, False)}
    expected |= {("codes", False, False)} if keep_draws else FREEING[m]
    assert outcomes >= expected  # the scan crossed every boundary


@pytest.mark.parametrize("n_sl", [1, 2, 3, 17, 18])
def test_a_table_size_gets_ranks_if_they_fit_else_codes_else_part_of_them(n_sl):
    """Without max_memory, `table_bytes` bounds the draws alone; codes exist for 2..17 local states."""
    k, m = 4, 3
    n_f, _, _, rows = _bytes(2, 2, n_sl, k, m)
    edges = {n_f * row + d for row in rows.values() for d in (-1, 0, 1)} | {0, 1, rows["ranks"] * 2 + 1}
    for table_bytes in sorted(edges):
        plan = check_learning_size((2, 2, n_sl, 2), k, m, table_bytes=table_bytes)
        full = [layout for layout, row in rows.items() if n_f * row <= table_bytes]
        layout = full[0] if full else list(rows)[-1]
        n_cached = n_f if full else max(n for n in range(n_f + 1) if n * rows[layout] <= table_bytes)
        assert (plan.layout, plan.n_cached, plan.release_draws) == (layout, n_cached, False), table_bytes
        assert plan.draw_bytes == n_cached * rows[layout] <= table_bytes or full


def test_the_default_table_is_one_gib():
    """docs/training.md: `table_bytes` defaults to 1 GiB. Two local states (n_f = k + 1) and m = 2^20 draws
    make a row of int32 ranks 4 MiB: 256 rows are exactly 1 GiB (ranks), 257 are over (codes)."""
    with budget.limited(1 << 40):
        assert check_learning_size((1, 2, 2, 2), 255, 1 << 20).layout == "ranks"
        assert check_learning_size((1, 2, 2, 2), 256, 1 << 20).layout == "codes"


def test_the_byte_counts_are_those_of_the_arrays_g_learn_allocates():
    """The hand counts above, checked once against real arrays: the alias records, Q and pi_g, the ranks."""
    game = random_game(5, n_sg=2, n_ag=3, n_sl=3, n_al=2)
    pi_l = random_local_policy(game, 5)
    k, m = 4, 5
    n_f, fixed, result, rows = _bytes(2, 3, 3, k, m)
    draws = make_draws(fold_local_policy(game, pi_l)[0], k, m, 0)
    assert draws.accept.nbytes + 2 * n_f * game.n_sg * np.dtype(np.float64).itemsize == fixed
    learned = g_learn(game, pi_l, k, m=m, seed=0)
    assert learned.plan.layout == "ranks" and learned.Q.nbytes + learned.pi_g.nbytes == result
    assert learned.plan.draw_bytes == n_f * rows["ranks"] == n_f * game.n_sg * m * np.dtype(np.int32).itemsize


def test_the_reserve_and_the_alternation_budget():
    """ALTERNATING-MARL holds Q (float32) and pi_g (int32) and three float64 value arrays per (s_g, F) cell;
    G-LEARN gets the rest, and the plan it is checked with keeps its draws (the gain iterates them again)."""
    game = random_game(6, n_sg=2, n_ag=3, n_sl=3, n_al=2)
    k, m = 4, 5
    n_f, fixed, result, rows = _bytes(2, 3, 3, k, m)
    reserve = n_f * game.n_sg * (3 * 4 + 4 + 3 * 8)
    assert alternation_reserve(game, k) == reserve
    assert alternation_budget(game, k, m, 1 << 30, None) is None
    share = fixed + result + n_f * rows["codes"] - 1  # not all codes beside Q; with the draws freed, all ranks
    assert alternation_budget(game, k, m, 1 << 30, share + reserve) == share
    layout, n_cached, _ = _reference(SMALL, k, m, share, keep_draws=True)
    kept_peak = _peak(fixed, n_cached * rows[layout], result, False)
    layout, n_cached, _ = _reference(SMALL, k, m, share, keep_draws=False)
    assert kept_peak > _peak(fixed, n_cached * rows[layout], result, True)  # the freeing plan would pass below
    with budget.limited(kept_peak + reserve):
        alternation_budget(game, k, m, 1 << 30, share + reserve)
    with budget.limited(kept_peak + reserve - 1), pytest.raises(budget.BudgetError):
        alternation_budget(game, k, m, 1 << 30, share + reserve)


def test_refusals_name_the_field_and_the_sizes():
    sizes, k = (2, 3, 3, 2), 200  # 20301 count vectors: 8.6 MiB before any stored draw
    n_f, fixed, result, _ = _bytes(*sizes[:3], k, 1)
    need = fixed + result
    with pytest.raises(LearnError) as raised:
        check_learning_size(sizes, k, 1, max_memory=need - 1)
    assert raised.value.field == "max_memory"
    assert f"is {(need - 1) / MIB:.0f} MiB" in str(raised.value) and f"{need / MIB:.0f}" == "9"
    assert f"needs at least {need / MIB:.0f} MiB" in str(raised.value)
    assert check_learning_size(sizes, k, 1, max_memory=need).n_cached == 0
    with pytest.raises(LearnError) as raised:  # n_sl = 2 counts k + 1 vectors: 2^31 ranks overflow int32
        check_learning_size((1, 1, 2, 1), 2**31 - 1, 1)
    assert raised.value.field == "k"
    with pytest.raises(budget.BudgetError):  # 2^31 - 1 ranks fit int32; the next check is the budget's
        check_learning_size((1, 1, 2, 1), 2**31 - 2, 1)
    assert check_max_memory(None) is None and check_max_memory(1) == 1
    for bad in (0, -1, 2.5):
        with pytest.raises(LearnError) as raised:
            check_max_memory(bad)
        assert raised.value.field == "max_memory"


def test_plan_memory_takes_one_draw_and_refuses_none():
    game = random_game(7, n_sg=2, n_ag=2, n_sl=3, n_al=2)
    assert plan_memory(game, 2, m=1).m == 1
    with pytest.raises(LearnError) as raised:
        plan_memory(game, 2, m=0)
    assert raised.value.field == "m"


def test_plan_memory_plans_as_alternating_marl_does():
    """alternating=True: the draws kept, and the alternation's reserve (counted by hand) out of max_memory."""
    sizes, k, m = (2, 3, 3, 2), 4, 5
    game = random_game(8, *sizes)
    n_f, fixed, result, rows = _bytes(*sizes[:3], k, m)
    reserve = n_f * 2 * (3 * 4 + 4 + 3 * 8)
    share = fixed + result + n_f * rows["codes"] - 1  # freed draws would fit all ranks; kept, part of the codes
    plan = plan_memory(game, k, m, max_memory=share + reserve, alternating=True)
    assert (plan.layout, plan.n_cached, plan.release_draws) == _reference(sizes, k, m, share, keep_draws=True)
    alone = plan_memory(game, k, m, max_memory=share + reserve)  # g_learn's own plan: the whole budget
    assert (alone.layout, alone.n_cached, alone.release_draws) == _reference(sizes, k, m, share + reserve, False)
    assert alone.n_cached > plan.n_cached


def test_what_a_plan_recomputes_and_how_it_reads():
    """recomputed_per_sweep by counting row by row; describe's figures from the fields."""
    n_f, n_sg, m = 1000, 2, 30
    plan = MemoryPlan("codes", n_f, n_sg, m, 400, 5 * MIB + 1, MIB, MIB - 1, False, escape_fraction=0.015,
                      draw_seconds=1e-6)
    counted = sum(n_sg * m * (plan.escape_fraction if f < plan.n_cached else 1) for f in range(n_f))
    assert plan.recomputed_per_sweep == pytest.approx(counted, rel=1e-12) and plan.cached_fraction == 0.4
    text = plan.describe()
    assert text.startswith("draws: 16-bit codes for 40% of 1,000 count vectors (5 MiB), 1.50% escaped;")
    assert "filling the store ~0.024 s; arrays at peak 7 MiB" in text and "ranks" not in text
    stored = dataclasses.replace(plan, n_cached=n_f, escapes_stored=True)
    assert stored.recomputed_per_sweep == 0 and "1.50% escaped (their ranks stored)" in stored.describe()
    ranks = dataclasses.replace(plan, layout="ranks", escape_fraction=0.0)
    assert ranks.describe().startswith("draws: int32 ranks for 40%") and "escaped" not in ranks.describe()
    assert "frees" not in text and dataclasses.replace(plan, release_draws=True).describe().endswith(
        "arrays at peak 6 MiB (the last sweep frees the draws as it writes Q)")  # 1 + max(5, 1) MiB
    with pytest.raises(dataclasses.FrozenInstanceError):  # plans are shared values; changes go through replace
        plan.n_cached = 0


@pytest.mark.parametrize("n_states, every_state", [(2048, True), (5, False)])
def test_sample_costs_times_and_counts_escapes_on_spread_states(monkeypatch, n_states, every_state):
    """The sample is every (F, s_g) state once when there are few, else spread from the first to the last;
    seconds per draw and the escape rate are what the sample's draws took and met (a spy stands in for them)."""
    seen = []

    def spy(draws, states):
        seen.append(states.copy())
        return np.arange(len(states))  # escapes met at each state

    clock = iter([100.0, 103.0])
    monkeypatch.setattr(glearn_memory, "sample_draw_costs", spy)
    monkeypatch.setattr(glearn_memory, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    plan = MemoryPlan("codes", 6, 2, 5, 6, 0, 0, 0, False)
    costed = sample_costs(plan, None, n_states)
    states = [tuple(state) for state in seen[-1]]
    every = [(f, g) for f in range(6) for g in range(2)]
    assert len(states) == len(set(states)) == min(n_states, 12) and set(states) <= set(every)
    assert set(states) == set(every) if every_state else states[0] == every[0] and states[-1] == every[-1]
    draws = len(states) * plan.m
    assert costed.draw_seconds == pytest.approx(3.0 / draws, rel=1e-12)
    assert costed.escape_fraction == pytest.approx(sum(range(len(states))) / draws, rel=1e-12)
    clock = iter([100.0, 103.0])
    assert sample_costs(dataclasses.replace(plan, layout="ranks"), None, n_states).escape_fraction == 0.0


def test_release_rows_frees_the_whole_pages_under_the_rows():
    """Bytes below the last page boundary under rows [0, r) read 0 afterwards; every other byte is kept."""
    shape = (40, 3, 50)  # 600-byte rows: pages end mid-row
    stored, buffer = draw_storage(shape, np.int32, releasable=True)
    assert stored.shape == shape and stored.dtype == np.int32 and buffer is not None
    flat = stored.view(np.uint8).reshape(-1)
    for rows in range(shape[0] + 1):
        stored[...] = 7
        release_rows(stored, buffer, rows)
        freed = rows * 600 // mmap.PAGESIZE * mmap.PAGESIZE
        assert not flat[:freed].any() and (stored.reshape(-1)[freed // 4:] == 7).all(), rows
    plain, none = draw_storage(shape, np.uint16, releasable=False)
    assert plain.shape == shape and plain.dtype == np.uint16 and none is None
