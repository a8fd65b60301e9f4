"""G-LEARN checks written for survivors of the mutation runs of core/glearn.py (issue 28).

Kept apart from test_glearn.py and test_glearn_storage.py, whose tests are slow; each check
here pins a behaviour against something independent of the constant it guards.
"""
import dataclasses
import time

import numpy as np
import pytest

from _learn_reference import random_game, random_local_policy
from altmarl_ros.core import glearn
from altmarl_ros.core.glearn import GLearnResult, _SlowModeExtrapolation, _Surrogate, g_learn
from altmarl_ros.core.glearn_memory import DEFAULT_TABLE_BYTES, check_learning_size


@pytest.mark.parametrize("ratio", [1.0, 1.25])
def test_spans_that_do_not_shrink_never_take_a_slow_mode_step(ratio):
    """The step ratio / (1 - ratio) sums a geometric tail, which exists only for ratio < 1: spans held
    steady (ratio 1, a division by zero) or growing steadily by 1.25 (a negative step) give no step."""
    rule = _SlowModeExtrapolation()
    assert [rule.factor(sweep, ratio ** sweep) for sweep in range(1, 11)] == [0.0] * 10
    assert rule.enabled


def test_a_result_is_read_only():
    """A GLearnResult cannot be rebound field by field (its Q, pi_g and value stay the run's)."""
    result = GLearnResult(Q=np.zeros((1, 1, 1), np.float32), pi_g=np.zeros((1, 1), np.int32), sweeps=1,
                          residual=0.0, converged=True, seconds=0.0, residual_history=[0.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.value = 1.0


def _two_state_game():
    """Two local states (one code field): the kernels test_glearn's brute-force checks compile."""
    game = random_game(5, n_sg=2, n_ag=2, n_sl=2, n_al=2)
    return game, random_local_policy(game, 5)


def test_the_setup_time_is_part_of_the_time_and_both_are_the_calls_own():
    """0 <= setup_seconds <= seconds <= the wall time around the call (timed once compiled), and a result
    built without timings has none: both are durations of this call, not clock readings."""
    game, pi_l = _two_state_game()
    g_learn(game, pi_l, 3, m=4, seed=1)  # compiles
    started = time.perf_counter()
    result = g_learn(game, pi_l, 3, m=4, seed=1)
    wall = time.perf_counter() - started
    assert 0.0 <= result.setup_seconds <= result.seconds <= wall
    untimed = GLearnResult(Q=result.Q, pi_g=result.pi_g, sweeps=1, residual=0.0, converged=True, seconds=0.0,
                           residual_history=[0.0])
    assert 0.0 <= untimed.setup_seconds <= untimed.seconds


def test_every_sweep_that_writes_q_and_pi_g_is_given_room_for_all_of_them(monkeypatch):
    """The kernel writes Q[g, f, a] and pi_g[g, f] of every state it sweeps whenever they have columns (numba
    checks no bounds): each call must pass either none or the whole arrays, or it writes past their ends. Only
    the last sweep of a run records them."""
    game, pi_l = _two_state_game()
    kernel, passed = glearn._sweep, []

    def spy(draws, shifts, step, V_old, V_new, Q, pi_out, *rest):
        passed.append((Q.shape, pi_out.shape))
        return kernel(draws, shifts, step, V_old, V_new, Q, pi_out, *rest)

    monkeypatch.setattr(glearn, "_sweep", spy)
    result = g_learn(game, pi_l, 3, m=4, seed=1)
    n_f = result.pi_g.shape[1]
    nothing = ((0, 0, 0), (0, 0))
    assert passed == [nothing] * (result.sweeps - 1) + [((game.n_sg, n_f, game.n_ag), (game.n_sg, n_f))]


def _nine_state_surrogate(table_bytes=DEFAULT_TABLE_BYTES, max_memory=None):
    """Nine local states, 2 bits a code field: k = 3 agents escape (test_glearn_storage's tiny layouts game)."""
    game = random_game(41, n_sg=2, n_ag=2, n_sl=9, n_al=2)
    return _Surrogate(game, random_local_policy(game, 41), 3, 4, seed=2, table_bytes=table_bytes,
                      max_memory=max_memory)


def test_stored_escapes_are_counted_in_the_draw_bytes_and_kept_within_max_memory():
    """The plan's draw bytes are the bytes the store holds (codes, an 8-byte escape index a row, the escaped
    ranks as int32); escapes are stored when they fit the room left, exactly or with a byte to spare, and under
    max_memory only when the plan's peak then still fits it."""
    game = random_game(41, n_sg=2, n_ag=2, n_sl=9, n_al=2)
    n_f = check_learning_size(game, 3, 4).n_f
    codes = check_learning_size(game, 3, 4, table_bytes=n_f * (game.n_sg * 4 * 2 + 8))
    escapes = round(_nine_state_surrogate(table_bytes=codes.draw_bytes).plan.escape_fraction * n_f * game.n_sg * 4)
    assert codes.layout == "codes" and escapes > 0
    for spare in (0, 1):
        room = 4 * escapes + spare
        for stored in (_nine_state_surrogate(table_bytes=codes.draw_bytes + room),
                       _nine_state_surrogate(max_memory=codes.peak_bytes + room)):
            plan, draws = stored.plan, stored.draws
            assert plan.layout == "codes" and plan.escapes_stored and draws.escaped.size == escapes
            assert plan.draw_bytes == draws.codes.nbytes + 8 * n_f + draws.escaped.nbytes
    tight = _nine_state_surrogate(max_memory=codes.peak_bytes + 4 * escapes - 1).plan
    assert tight.layout == "codes" and not tight.escapes_stored
    assert tight.peak_bytes <= codes.peak_bytes + 4 * escapes - 1
