"""Training for deployment under an observer (core.observer_training), against closed forms and
direct ALTERNATING-MARL runs: the candidate set is the documented one, every candidate is
deployed once and the best kept (fresh on a tie), each resolution is trained once, and the
arrays returned are that resolution's own run."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from _learn_reference import random_game
from altmarl_ros.core.alternating import alternating_marl
from altmarl_ros.core.observers import ObserverError, fresh
from altmarl_ros.core import observer_training
from altmarl_ros.core.observer_training import candidates_for, max_resolution, selection_streams, train_observed

K = 2
GAINS = (0.5, 0.25)  # resolutions 6 and 14 at k = 2: K(alpha) = k (2 - alpha) / alpha
ALTERNATING = dict(m=5, rounds=2, seed=3, start="uniform")


@pytest.fixture(scope="module")
def game():
    return random_game(5, n_sg=2, n_ag=2, n_sl=3, n_al=2, gamma=0.8)


def _columns(K, n_sl):
    return math.comb(K + n_sl - 1, n_sl - 1)


@pytest.mark.parametrize("n_sl", [2, 3, 5, 8])
def test_max_resolution_is_the_largest_resolution_within_the_column_cap(n_sl):
    for max_columns in (1, 2, 9, 10, 11, 100, 5000, 400_000):
        K = max_resolution(n_sl, max_columns)
        assert K >= 1
        assert _columns(K + 1, n_sl) > max_columns, (n_sl, max_columns, K)
        assert K == 1 or _columns(K, n_sl) <= max_columns, (n_sl, max_columns, K)


def test_one_local_state_puts_no_cap_on_the_resolution():
    # C(K + 0, 0) = 1 column at every K (this search never ended once)
    assert max_resolution(1, 1) >= 10 ** 9
    assert [spec.resolution for spec in candidates_for(2, 1, "filter", gains=(0.5, 0.1))] == [2, 6, 6, 38, 38]


def test_candidates_are_fresh_then_each_gain_with_no_prior_and_the_steady_weight():
    k, n_sl = 3, 4
    # K(alpha) = 3 (2 - alpha) / alpha: 9 at 1/2, 27 at 1/5; W = 3 (1 - alpha) / alpha: 3 and 12
    specs = candidates_for(k, n_sl, "filter", gains=(0.5, 0.2), max_columns=10 ** 6)
    assert specs[0] == fresh(3)
    assert [(s.name, s.gain, s.resolution) for s in specs[1:]] == [("filter", 0.5, 9), ("filter", 0.5, 9),
                                                                   ("filter", 0.2, 27), ("filter", 0.2, 27)]
    assert [s.prior for s in specs[1:]] == pytest.approx([0.0, 3.0, 0.0, 12.0], abs=1e-12)
    # 100 columns over 4 states: C(9, 3) = 84 at K = 6, C(10, 3) = 120 at K = 7
    capped = candidates_for(k, n_sl, "filter", gains=(0.5, 0.2), max_columns=100)
    assert [spec.resolution for spec in capped] == [3, 6, 6, 6, 6]
    assert [spec.prior for spec in capped] == pytest.approx([0.0, 0.0, 3.0, 0.0, 12.0], abs=1e-12)
    # the cap never goes below k: a filter is always trainable at the sample size itself
    assert [spec.resolution for spec in candidates_for(k, n_sl, "filter", gains=(0.5,), max_columns=1)] == [3, 3, 3]


def _selection(best_index):
    """A score that ranks candidate `best_index` first and records what it was given."""
    scored = []

    def score(pi_g, pi_l, spec):
        index = len(scored)
        scored.append((spec, pi_g.copy(), pi_l.copy()))
        mean = 100.0 if index == best_index else float(index)
        return SimpleNamespace(mean=mean, ci95=0.01 * (index + 1), estimation_error=0.001 * (index + 1), seconds=0.5)

    return score, scored


@pytest.mark.parametrize("best_index", [0, 3, 4])
def test_every_candidate_is_deployed_with_its_own_resolution_and_the_best_is_kept(game, best_index):
    specs = candidates_for(K, game.n_sl, "filter", gains=GAINS)
    score, scored = _selection(best_index)
    started, stages = [], []
    out = train_observed(game, K, "filter", score=score, n_sl=game.n_sl, gains=GAINS, on_run=started.append,
                         on_stage=stages.append, **ALTERNATING)
    resolutions = [K, 6, 14]
    assert [spec.resolution for spec in specs] == [K, 6, 6, 14, 14]
    assert started == resolutions  # each resolution trained once, in candidate order
    assert sorted(out.runs) == resolutions
    direct = {R: alternating_marl(game, R, **ALTERNATING) for R in resolutions}
    assert [spec for spec, _, _ in scored] == specs
    for spec, pi_g, pi_l in scored:  # each candidate deployed with the arrays trained at its resolution
        np.testing.assert_array_equal(pi_g, direct[spec.resolution].pi_g)
        np.testing.assert_array_equal(pi_l, direct[spec.resolution].pi_l)
        assert pi_g.shape == (game.n_sg, _columns(spec.resolution, game.n_sl))
    best = specs[best_index]
    assert out.observer == best
    np.testing.assert_array_equal(out.pi_g, direct[best.resolution].pi_g)
    np.testing.assert_array_equal(out.pi_l, direct[best.resolution].pi_l)
    assert out.result is out.runs[best.resolution] and out.result.nash_gap == direct[best.resolution].nash_gap
    assert [c.observer for c in out.candidates] == specs
    assert [c.welfare for c in out.candidates] == [100.0 if i == best_index else float(i) for i in range(5)]
    assert [c.ci95 for c in out.candidates] == pytest.approx([0.01 * (i + 1) for i in range(5)])
    assert [c.estimation_error for c in out.candidates] == pytest.approx([0.001 * (i + 1) for i in range(5)])
    assert [text for text in stages if text.startswith("ALTERNATING")] == \
        [f"ALTERNATING-MARL at resolution {R}" for R in resolutions]
    assert [text for text in stages if text.startswith("selecting")] == \
        [f"selecting: {spec.describe()}" for spec in specs]
    assert out.seconds > 0


def test_a_tie_keeps_the_papers_observer(game):
    tie = SimpleNamespace(mean=1.0, ci95=0.0, estimation_error=0.0, seconds=0.5)
    out = train_observed(game, K, "filter", score=lambda *_: tie, n_sl=game.n_sl, gains=GAINS, **ALTERNATING)
    assert out.observer == fresh(K)
    np.testing.assert_array_equal(out.pi_g, alternating_marl(game, K, **ALTERNATING).pi_g)


def test_fresh_is_one_run_at_k_and_no_selection(game):
    started = []

    def score(*_):
        raise AssertionError("fresh needs no selection rollouts")

    out = train_observed(game, K, "fresh", score=score, n_sl=game.n_sl, gains=GAINS, on_run=started.append,
                         **ALTERNATING)
    direct = alternating_marl(game, K, **ALTERNATING)
    assert started == [K] and list(out.runs) == [K]
    assert out.observer == fresh(K) and [c.observer for c in out.candidates] == [fresh(K)]
    assert math.isnan(out.candidates[0].welfare)
    np.testing.assert_array_equal(out.pi_g, direct.pi_g)
    np.testing.assert_array_equal(out.pi_l, direct.pi_l)


@pytest.mark.parametrize("rollouts", [1, 24, 25, 49, 50, 51, 100, 1000])
def test_selection_rollouts_run_in_seeds_of_about_25_on_the_documented_streams(rollouts):
    """docs/results.md: selection streams 7,919,000 + 2 seed, horizon 100; the rollouts are split
    into seeds of about 25 (exactly 25 when 25 divides them), all of them run up to rounding."""
    for seed in (0, 3):
        sizes, root = selection_streams(200, rollouts, seed)
        assert root == 7_919_000 + 2 * seed
        assert (sizes["n"], sizes["horizon"]) == (200, 100)
        seeds, each = sizes["seeds"], sizes["rollouts"]
        assert rollouts - seeds < seeds * each <= rollouts
        if rollouts < 25:
            assert (seeds, each) == (1, rollouts)
        else:
            assert 25 <= each < 50
        if rollouts % 25 == 0:
            assert (seeds, each) == (rollouts // 25, 25)
    assert selection_streams(200, 50, 0, horizon=30)[0]["horizon"] == 30


def test_seconds_are_the_wall_time_from_start_to_return(game, monkeypatch):
    readings = iter([100.0, 102.5])  # the module's clock, read when training starts and when it returns
    monkeypatch.setattr(observer_training, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    out = train_observed(game, K, "fresh", score=None, n_sl=game.n_sl, **ALTERNATING)
    assert out.seconds == 2.5


@pytest.mark.parametrize("changes, field", [
    ({"observer": "kalman"}, "observer"),
    ({"k": 0}, "k"),
    ({"gains": (0.5, 0.0)}, "observer.gain"),
    ({"gains": (1.5,)}, "observer.gain"),
    ({"max_columns": 0}, "max_columns"),
])
def test_bad_settings_are_named_before_any_training(game, changes, field):
    started = []
    args = dict(observer="filter", k=K, gains=GAINS, max_columns=1000) | changes
    with pytest.raises(ObserverError) as raised:
        train_observed(game, args.pop("k"), args.pop("observer"), score=None, n_sl=game.n_sl,
                       on_run=started.append, **args, **ALTERNATING)
    assert raised.value.field == field
    assert started == []
