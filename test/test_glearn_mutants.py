"""G-LEARN checks written for survivors of the mutation runs of core/glearn.py (issue 28).

Kept apart from test_glearn.py and test_glearn_storage.py, whose tests are slow; each check
here pins a behaviour against something independent of the constant it guards.
"""
import pytest

from altmarl_ros.core.glearn import _SlowModeExtrapolation


@pytest.mark.parametrize("ratio", [1.0, 1.25])
def test_spans_that_do_not_shrink_never_take_a_slow_mode_step(ratio):
    """The step ratio / (1 - ratio) sums a geometric tail, which exists only for ratio < 1: spans held
    steady (ratio 1, a division by zero) or growing steadily by 1.25 (a negative step) give no step."""
    rule = _SlowModeExtrapolation()
    assert [rule.factor(sweep, ratio ** sweep) for sweep in range(1, 11)] == [0.0] * 10
    assert rule.enabled
