"""sim/rollout.py's memory estimates, defaults and reports, each against a reference of its own: the arrays the
rollouts keep (itemsize x count), what a rollout allocates (tracemalloc), the settings docs/evaluation.md
documents, steps counted by a fleet that counts them, and the clock around the call."""
import re
import time
from pathlib import Path

import numpy as np
import pytest

from _fa_ring import parked_depot_fa
from _traced import traced_peak
from altmarl_ros.core import budget
from altmarl_sim.continuous_ring import ContinuousRing
from altmarl_sim.fleet import FleetSim
from altmarl_sim.rollout import RolloutError, decider_of, fa_sim_rollout_welfare, same_noise_as, sim_rollout_welfare
from altmarl_sim.scenario import load_scenario

SCENARIO = load_scenario("warehouse_ring")
CONTINUOUS = load_scenario("warehouse_ring_continuous")
FLOAT64, INT64, BOOL = (np.dtype(t).itemsize for t in (np.float64, np.int64, np.bool_))
FA_K = 5


def uniform_pi_l(scenario):
    n_sg, _, n_sl, n_al = scenario.sizes
    return np.full((n_sl, n_sg, n_al), 1.0 / n_al)


def tabular(scenario=SCENARIO, **sizes):
    """sim_rollout_welfare of the random dispatcher (pi_g None) with uniform locals, k = 1."""
    return sim_rollout_welfare(scenario, None, uniform_pi_l(scenario), 1, **sizes)


def fa_decider():
    fa, _ = parked_depot_fa(ContinuousRing(CONTINUOUS), FA_K)
    return decider_of(fa, CONTINUOUS)


@pytest.fixture
def required(monkeypatch):
    """what -> nbytes of every budget.require made (each still checked against the budget)."""
    seen = {}
    check = budget.require

    def record(what, nbytes, fix=""):
        seen[what.split(" of n = ")[0]] = nbytes
        return check(what, nbytes, fix)
    monkeypatch.setattr(budget, "require", record)
    return seen


def episode_bytes_per_robot(n_al: int) -> int:
    """sim/rollout.py's account of run_episode's arrays per robot: its uniform (float64), its action (int64) and
    a threshold (float64) per local action, n_al + 2 entries of 8 bytes, and a flag (bool) per local action; 16
    bytes an entry, twice the 8, as fleet.BYTES_PER_ROBOT doubles the fleet's arrays, covers the flags and
    numpy's temporaries."""
    entries = FLOAT64 + INT64 + n_al * FLOAT64
    assert entries + n_al * BOOL <= 2 * entries
    return 2 * entries


def activation_bytes(meta) -> int:
    """The local network's activations, float64, for every robot at once: its inputs, every hidden unit and
    its n_al logits."""
    return FLOAT64 * (meta["inputs"]["local"] + sum(meta["hidden"]) + meta["n_al"])


def test_the_rollouts_budget_the_fleet_their_arrays_per_robot_and_what_each_rollout_keeps(required):
    """The estimate = the fleet's own budget (FleetSim's require: n workers + the depot) + the rollout's arrays
    for each of those n + 1 robots + the float64s kept per rollout until the end: returns, errors and replies
    (tabular), returns (FA)."""
    n_al = SCENARIO.sizes[3]
    for n, seeds, rollouts in ((1, 1, 1), (7, 2, 3), (40, 3, 2)):
        tabular(n=n, horizon=1, seeds=seeds, rollouts=rollouts)
        fleet = required["a simulated fleet"]
        assert required["simulator rollouts"] == fleet + (n + 1) * episode_bytes_per_robot(n_al) + \
            3 * FLOAT64 * seeds * rollouts
    decider = fa_decider()
    meta = decider.policy.meta
    assert (meta["inputs"]["local"], meta["hidden"], meta["n_al"]) == (16, [5], 3)  # every term of its own size
    for n, seeds, rollouts in ((FA_K, 1, 1), (7, 2, 3), (40, 3, 2)):
        fa_sim_rollout_welfare(CONTINUOUS, decider, n=n, horizon=1, seeds=seeds, rollouts=rollouts)
        fleet = required["a simulated fleet"]
        assert required["simulator rollouts"] == fleet + (n + 1) * activation_bytes(meta) + \
            FLOAT64 * seeds * rollouts


@pytest.mark.parametrize("kind", ["tabular", "fa"])
def test_the_estimate_bounds_what_a_rollout_allocates_and_grows_with_n_as_it_does(kind, required):
    """At n = 2000 and 4000 robots (one rollout of 2 epochs) the estimate is at least the traced peak, and per
    robot added it is at least, and at most 2x, what the traced peak grew by (measured: 336 B estimated for 192
    traced, tabular; 448 for 268, FA: the fleet's and the episode's doubled arrays)."""
    decider = fa_decider() if kind == "fa" else None

    def rollout(n):
        if kind == "fa":
            return fa_sim_rollout_welfare(CONTINUOUS, decider, n=n, horizon=2, seeds=1, rollouts=1)
        return tabular(n=n, horizon=2, seeds=1, rollouts=1)
    rollout(200)  # compiled and cached before anything is traced
    peaks, estimates = [], []
    for n in (2000, 4000):
        peaks.append(traced_peak(lambda n=n: rollout(n)))
        estimates.append(required["simulator rollouts"])
        assert estimates[-1] >= peaks[-1], (n, estimates[-1], peaks[-1])
    grown, estimated = (peaks[1] - peaks[0]) / 2000, (estimates[1] - estimates[0]) / 2000
    assert grown <= estimated <= 2 * grown, (grown, estimated)


def _documented_defaults() -> dict:
    """flag -> default of `altmarl evaluate`'s usage in docs/evaluation.md (the settings a rollout defaults to)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    usage = text[text.index("altmarl evaluate --model FILE --policy"):]
    usage = usage[:usage.index("\n\n")]
    return {flag: int(value) for flag, value in re.findall(r"\[--(n|seeds|rollouts) (\d+)\]", usage)}


def test_the_rollouts_default_to_the_documented_evaluate_settings():
    """docs/evaluation.md: `altmarl evaluate [--n 1000] ... [--seeds 15] [--rollouts 50]`. A rollout without the
    argument is the rollout with the documented value."""
    documented = _documented_defaults()
    assert documented == {"n": 1000, "seeds": 15, "rollouts": 50}
    without_n = tabular(horizon=1, seeds=1, rollouts=1)
    with_n = tabular(n=documented["n"], horizon=1, seeds=1, rollouts=1)
    assert without_n.agent_steps == documented["n"] and np.array_equal(without_n.returns, with_n.returns)
    without_seeds = tabular(n=1, horizon=1, rollouts=1)
    assert without_seeds.returns.shape == (documented["seeds"], 1)
    np.testing.assert_array_equal(without_seeds.returns, tabular(n=1, horizon=1, rollouts=1,
                                                                 seeds=documented["seeds"]).returns)
    decider = fa_decider()
    without_rollouts = fa_sim_rollout_welfare(CONTINUOUS, decider, n=FA_K, horizon=1, seeds=1)
    assert without_rollouts.returns.shape == (1, documented["rollouts"])
    np.testing.assert_array_equal(without_rollouts.returns, fa_sim_rollout_welfare(
        CONTINUOUS, decider, n=FA_K, horizon=1, seeds=1, rollouts=documented["rollouts"]).returns)


def test_the_fa_estimate_reports_the_robot_epochs_it_ran_and_its_own_duration():
    """agent_steps = the workers stepped, counted by the fleet as each epoch runs; seconds: at least from the
    first fleet built to the last epoch run, at most the call's own time."""
    stepped, marks = [], []

    class CountingFleet(FleetSim):
        def __init__(self, *args, **kwargs):
            marks.append(time.perf_counter())
            super().__init__(*args, **kwargs)

        def step_epoch(self, *args, **kwargs):
            stepped.append(self.n)
            out = super().step_epoch(*args, **kwargs)
            marks.append(time.perf_counter())
            return out

    decider = fa_decider()
    started = time.perf_counter()
    estimate = fa_sim_rollout_welfare(CONTINUOUS, decider, n=6, horizon=2, seeds=2, rollouts=3, fleet=CountingFleet)
    took = time.perf_counter() - started
    assert len(stepped) == 2 * 3 * 2 and estimate.agent_steps == sum(stepped) == 72
    assert marks[-1] - marks[0] <= estimate.seconds <= took


def test_a_twin_of_fleet_seed_0_is_that_fleet_and_a_negative_seed_is_refused():
    """same_noise_as(0) builds FleetSim(seed=0) for every rollout, as any other seed builds its own; seeds are
    integers >= 0 (FleetSim's own rule), so -1 is refused in one line naming the field."""
    for fleet_seed in (0, 3):
        build = same_noise_as(fleet_seed)
        for rollout_seed in (0, 11):
            sim = build(SCENARIO, n=4, seed=rollout_seed)
            assert sim.seed == fleet_seed
            np.testing.assert_array_equal(sim.poses, FleetSim(SCENARIO, n=4, seed=fleet_seed).poses)
    assert not np.array_equal(FleetSim(SCENARIO, n=4, seed=0).poses, FleetSim(SCENARIO, n=4, seed=3).poses)
    with pytest.raises(RolloutError, match=r"^fleet_seed: must be an integer >= 0, got -1$"):
        same_noise_as(-1)


def test_rollout_r_of_seed_s_runs_on_its_spawned_stream_and_the_streams_take_no_memory_per_rollout():
    """Rollout r of seed s starts from SeedSequence(seed).spawn(seeds)[s].spawn(rollouts)[r] (the module's
    documented tree, built here the long way), progress counts the rollouts done of seeds x rollouts, and going
    through 10x the rollouts holds no more memory: the budget counts 24 bytes a rollout, not the ~470 of a
    SeedSequence kept for each."""
    from altmarl_sim.rollout import _episodes

    class Seeds:  # a fleet that only records the seed it is built with
        def __init__(self, scenario, n, seed):
            self.seed = seed

    tree = [(s, r, stream) for s, seed_seq in enumerate(np.random.SeedSequence(5).spawn(3))
            for r, stream in enumerate(seed_seq.spawn(4))]
    reported = []  # progress(done, total), once the caller is done with each rollout
    episodes = _episodes(SCENARIO, 2, 3, 4, 5, Seeds, lambda done, total: reported.append((done, total)))
    for before, ((s, r, sim, rng), (ref_s, ref_r, stream)) in enumerate(zip(episodes, tree, strict=True)):
        assert (s, r) == (ref_s, ref_r) and len(reported) == before
        assert sim.seed == int(stream.generate_state(1, np.uint64)[0] >> np.uint64(1))
        np.testing.assert_array_equal(rng.random(4), np.random.default_rng(stream).random(4))
    assert reported == [(done, 12) for done in range(1, 13)]

    def peak(rollouts):
        return traced_peak(lambda: sum(1 for _ in _episodes(SCENARIO, 2, 1, rollouts, 0, Seeds, None)))
    peak(10)
    small, large = peak(2_000), peak(20_000)
    assert large - small < 18_000 * 24, (small, large)
