"""How G-LEARN stores its draws (int32 ranks, 16-bit codes, released, recomputed) never changes the answer.

test_glearn.py checks the default layout against brute force; here every other
layout must reproduce it bit for bit, and the memory plan must pick, and refuse, as documented.
"""
import numpy as np
import pytest

from _learn_reference import module_game, random_game, random_local_policy
from altmarl_ros.core import glearn
from altmarl_ros.core.glearn import g_learn, global_best_response_gain
from altmarl_ros.core.glearn_memory import plan_memory
from altmarl_ros.errors import LearnError

K, M = 10, 30
# One worker runs this file: the module's reference is solved once, and the code layouts' kernels (one per
# field count) are compiled once on an empty cache instead of by every worker at once.
pytestmark = pytest.mark.xdist_group("glearn_storage")


# 6 local states: 16 // 5 = 3 bits per code field, so a window of +-4 agents and many escapes
game, pi_l = module_game(21, 8, n_sg=2, n_ag=3, n_sl=6, n_al=2)


@pytest.fixture(scope="module")
def reference(game, pi_l):
    result = g_learn(game, pi_l, K, m=M, seed=5)
    assert result.plan.layout == "ranks" and result.table_fraction == 1.0
    return result


def _codes_bytes(game, k=K, m=M):
    """A store that holds every row's codes (2 bytes a draw) and its escape count (8 bytes a row)."""
    return plan_memory(game, k, m).n_f * (game.n_sg * m * 2 + 8)


def _same(a, b):
    assert np.array_equal(a.Q, b.Q) and np.array_equal(a.pi_g, b.pi_g) and a.value == b.value
    assert a.sweeps == b.sweeps and a.residual_history == b.residual_history


def test_codes_with_escapes_give_the_same_answer(game, pi_l, reference):
    coded = g_learn(game, pi_l, K, m=M, seed=5, table_bytes=_codes_bytes(game))
    assert coded.plan.layout == "codes" and coded.table_fraction == 1.0
    assert 0.01 < coded.plan.escape_fraction < 0.9 and not coded.plan.escapes_stored  # no room: recomputed
    assert coded.plan.recomputed_per_sweep > 0
    _same(coded, reference)


@pytest.mark.parametrize("n_sl", [2, 3, 4, 9])
def test_codes_decode_every_field_width(n_sl):
    """A code holds n_sl - 1 fields of 16 // (n_sl - 1) bits (16, 8, 5 and 2 here; 3 in the fixture):
    each width decodes to the ranks the int32 layout stores."""
    game = random_game(30 + n_sl, n_sg=2, n_ag=2, n_sl=n_sl, n_al=2)
    pi_l = random_local_policy(game, n_sl)
    k = 7
    ranks = g_learn(game, pi_l, k, m=M, seed=3)
    coded = g_learn(game, pi_l, k, m=M, seed=3, table_bytes=_codes_bytes(game, k))
    assert ranks.plan.layout == "ranks" and coded.plan.layout == "codes" and coded.table_fraction == 1.0
    _same(coded, ranks)


def test_stored_escapes_give_the_same_answer(game, pi_l, reference):
    """With room beside the codes, the escaped draws' ranks are kept instead of recomputed every sweep."""
    codes = g_learn(game, pi_l, K, m=M, seed=5, table_bytes=_codes_bytes(game)).plan
    escapes = round(codes.escape_fraction * codes.n_f * game.n_sg * M)
    room = 4 * escapes  # their int32 ranks; the per-row index is already in the codes' bytes
    assert _codes_bytes(game) + room < 2 * _codes_bytes(game)  # still below int32 ranks' size
    stored = g_learn(game, pi_l, K, m=M, seed=5, table_bytes=_codes_bytes(game) + room)
    assert stored.plan.layout == "codes" and stored.plan.escapes_stored and stored.plan.escape_fraction > 0.01
    assert stored.plan.recomputed_per_sweep == 0 and stored.plan.draw_bytes > _codes_bytes(game)
    _same(stored, reference)


@pytest.mark.parametrize("share", [0.0, 0.4])
def test_recomputed_rows_give_the_same_answer(game, pi_l, reference, share):
    partial = g_learn(game, pi_l, K, m=M, seed=5, table_bytes=int(share * _codes_bytes(game)))
    assert partial.table_fraction == pytest.approx(share, abs=0.01)
    _same(partial, reference)


def test_a_cold_start_skips_the_first_sweeps_gathers_bit_for_bit(game, pi_l, reference, monkeypatch):
    """From V = 0 only the first sweep makes no gather; a run that gathers there too has the same bits."""
    calls = []
    sweep = glearn._Surrogate._sweep

    def spy(self, *args, from_zero=False):
        calls.append(from_zero)
        return sweep(self, *args, from_zero=from_zero)

    monkeypatch.setattr(glearn._Surrogate, "_sweep", spy)
    _same(g_learn(game, pi_l, K, m=M, seed=5), reference)
    assert calls[0] is True and not any(calls[1:])
    calls.clear()
    g_learn(game, pi_l, K, m=M, seed=5, Q0=reference.Q)
    assert calls and not any(calls)
    monkeypatch.setattr(glearn, "_all_zero", lambda V: False)
    _same(g_learn(game, pi_l, K, m=M, seed=5), reference)


def test_a_budget_that_forces_release_frees_the_draws_and_keeps_the_answer(game, pi_l, reference):
    codes = plan_memory(game, K, M, table_bytes=_codes_bytes(game))
    budget = codes.fixed_bytes + max(codes.draw_bytes, codes.result_bytes)
    plan = plan_memory(game, K, M, max_memory=budget)
    assert plan.layout == "codes" and plan.release_draws and plan.peak_bytes <= budget
    released = g_learn(game, pi_l, K, m=M, seed=5, max_memory=budget)
    assert released.plan.release_draws
    _same(released, reference)


def test_ample_budget_stores_ranks_and_the_gain_keeps_its_draws(game, pi_l, reference):
    plan = plan_memory(game, K, M, max_memory=1 << 30)
    assert plan.layout == "ranks" and plan.cached_fraction == 1.0 and not plan.release_draws
    assert "int32 ranks" in plan.describe() and "codes" not in plan.describe()
    worst = reference.Q.argmin(axis=2).astype(np.int32)
    kept = plan_memory(game, K, M, keep_draws=True, table_bytes=0,
                       max_memory=plan_memory(game, K, M, table_bytes=_codes_bytes(game)).peak_bytes)
    assert not kept.release_draws  # the gain iterates the same draws twice: nothing may be freed
    ample = global_best_response_gain(game, worst, pi_l, K, m=M, seed=5, tol=1e-6)
    tight = global_best_response_gain(game, worst, pi_l, K, m=M, seed=5, tol=1e-6, max_memory=kept.peak_bytes)
    assert ample > 0.1 and ample == tight


def test_small_budget_stores_part_of_the_codes_and_says_what_it_costs(game):
    full = plan_memory(game, K, M, table_bytes=_codes_bytes(game))
    budget = full.fixed_bytes + full.result_bytes + full.draw_bytes // 3
    plan = plan_memory(game, K, M, max_memory=budget, keep_draws=True)
    assert plan.layout == "codes" and 0.2 < plan.cached_fraction < 0.4 and plan.peak_bytes <= budget
    freeing = plan_memory(game, K, M, max_memory=budget)  # g_learn's plan: Q may replace the draws
    assert freeing.release_draws and freeing.cached_fraction > plan.cached_fraction
    assert freeing.peak_bytes <= budget
    assert plan.recomputed_per_sweep > (1 - plan.cached_fraction) * plan.n_f * game.n_sg * M
    assert plan.draw_seconds > 0 and "recomputed per sweep" in plan.describe()
    assert "16-bit codes" in plan.describe() and "ranks" not in plan.describe()


def test_the_plan_samples_the_escape_rate_the_fill_counts(game, pi_l):
    """plan_memory estimates the codes' escape rate from up to 2048 (s_g, F) states, before anything
    is stored; the fill then counts every stored code. With fewer states than that (k = 7: 792 count
    vectors x 2) the sample is every state once, so the two rates agree exactly; at K = 10 (6006
    states) the sample is within a tenth of the count."""
    for k, rel in ((7, 0.0), (K, 0.1)):
        codes_bytes = _codes_bytes(game, k)
        sampled = plan_memory(game, k, M, pi_l=pi_l, seed=5, table_bytes=codes_bytes)
        counted = g_learn(game, pi_l, k, m=M, seed=5, table_bytes=codes_bytes).plan
        assert sampled.layout == counted.layout == "codes" and counted.cached_fraction == 1.0
        assert counted.escape_fraction > 0.002  # 3-bit fields: some draws leave their window
        assert sampled.escape_fraction == pytest.approx(counted.escape_fraction, rel=rel, abs=0)


@pytest.mark.kernels
@pytest.mark.parametrize("max_memory", [1, 0, -5, 2.5, "1G"])
def test_budget_that_cannot_work_is_named(game, pi_l, max_memory):
    with pytest.raises(LearnError) as raised:
        g_learn(game, pi_l, K, max_memory=max_memory)
    assert raised.value.field == "max_memory"


@pytest.mark.kernels
def test_the_size_check_budgets_the_plan_not_int32_draws(warehouse_game):
    """Warehouse k = 100 (4.6 M count vectors) under a 2 GiB budget: int32 draws alone would take
    2.6 GiB, but the plan's codes fit, so the check passes and returns that plan (nothing allocated);
    ALTERNATING-MARL, which keeps draws and Q together plus its reserve, gets a partial store instead."""
    from altmarl_ros.core import budget
    from altmarl_ros.core.glearn_memory import alternation_reserve, check_learning_size

    warehouse = warehouse_game
    two_gib = 2 << 30
    with budget.limited(two_gib):
        plan = check_learning_size(warehouse, 100, 30, max_memory=two_gib, keep_draws=False)
        assert plan.n_f == 4_598_126 and plan.layout == "codes" and plan.cached_fraction == 1.0
        assert plan.peak_bytes <= two_gib < plan.n_f * warehouse.n_sg * 30 * 4
        reserve = alternation_reserve(warehouse, 100)
        kept = check_learning_size(warehouse, 100, 30, max_memory=two_gib, keep_draws=True, reserve=reserve)
        assert kept.peak_bytes + reserve <= two_gib and kept.cached_fraction < 1.0
        with pytest.raises(budget.BudgetError):
            check_learning_size(warehouse, 100, 30, keep_draws=False, table_bytes=4 << 30)  # all int32: 3.5 GiB


@pytest.mark.kernels
def test_every_layout_of_a_tiny_game_gives_the_ranks_answer():
    """The layouts' own paths (codes with escapes recomputed or stored, rows beyond the stored codes drawn in
    place, the draws freed by the last sweep) at a size where the kernels also run as Python (scripts/
    coverage.sh): nine local states leave 16 // 8 = 2 bits a field, so k = 3 agents already escape."""
    game = random_game(41, n_sg=2, n_ag=2, n_sl=9, n_al=2)
    pi_l = random_local_policy(game, 41)
    k, m = 3, 4
    run = lambda **budget: g_learn(game, pi_l, k, m=m, seed=2, tol=1e-6, **budget)  # noqa: E731
    ranks = run()
    assert ranks.plan.layout == "ranks"
    full = _codes_bytes(game, k, m)
    recomputed = run(table_bytes=full)
    assert recomputed.plan.layout == "codes" and recomputed.plan.escape_fraction > 0.05
    assert not recomputed.plan.escapes_stored and recomputed.plan.recomputed_per_sweep > 0
    escapes = round(recomputed.plan.escape_fraction * recomputed.plan.n_f * game.n_sg * m)
    stored = run(table_bytes=full + 4 * escapes)
    assert stored.plan.escapes_stored and stored.plan.recomputed_per_sweep == 0
    partial = run(table_bytes=full // 2)
    assert 0.3 < partial.table_fraction < 0.7
    codes = plan_memory(game, k, m, table_bytes=full)
    released = run(max_memory=codes.fixed_bytes + max(codes.draw_bytes, codes.result_bytes))
    assert released.plan.release_draws
    for other in (recomputed, stored, partial, released):
        _same(other, ranks)
