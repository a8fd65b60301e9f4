"""G-LEARN checks written for survivors of the mutation runs of core/glearn.py (issue 28).

Kept apart from test_glearn.py and test_glearn_storage.py, whose tests are slow; each check
here pins a behaviour against something independent of the constant it guards.
"""
import dataclasses

import numpy as np
import pytest

from altmarl_ros.core.glearn import GLearnResult, _SlowModeExtrapolation


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
