"""The k-sweep: ALTERNATING-MARL and its baselines for every (model, k) of a grid.

Work is split into units (one model's k-independent baselines, one (model, k) point, one
model's full-observation stand-in, one (model, k) point for each further observer of the
grid, and last one (model, k) G-LEARN cost probe). The points of the paper's `fresh`
observer are the grid's plain points; a point of any other registered observer (core.observers;
`filter`) trains as `altmarl train --observer <name>` does (core.observer_training.train_observed)
in its own unit, with its own file and fingerprint. Each finished unit is written atomically to
`<out>/points/<model>/<unit>.json` together with a fingerprint of everything that
determines it (model content hash, grid settings); a rerun skips every unit whose file
holds the same fingerprint, so an interrupted sweep resumes where it stopped and a
changed grid recomputes only what changed. After each unit the collected rows are
rewritten as `<out>/results.csv` and `<out>/results.json` (long format: one row per
model x method x k, in the grid's unit order). Units run in this process or, given a
dask.distributed client, on a cluster's workers (experiments/cluster.py), which return
each unit's record for this process to write: the files are the same either way.
"""
import csv
import datetime
import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np

from altmarl_ros import schema
from altmarl_ros.core.atomic import write_atomic
from altmarl_ros.core.observers import OBSERVERS, PAPER_OBSERVER, TABULAR, observers_on
from altmarl_ros.core.safe_files import load_yaml, parse_json, read_text
from altmarl_ros.errors import ConfigError

GRID_KEYS = ("models", "k", "n", "m", "rounds", "horizon", "seeds", "rollouts",
             "full_observation_k", "cost_k", "seed", "observers")
# grids.<name>.observers: the core.observers.OBSERVERS the sweep has units for (fresh: the plain points);
# grids.<name>.<observer>, required for each other observer named: train_observed's settings.
OBSERVER_KEYS = ("gains", "max_columns", "select_rollouts")
ROW_FIELDS = (
    "model", "method", "k", "welfare", "welfare_ci95", "nash_gap", "global_gain",
    "local_gain", "informed_gain", "informed_gain_ci95", "reference_k", "rounds", "converged", "eta", "train_seconds",
    "glearn_seconds",
    "glearn_sweeps", "glearn_peak_mb", "n_count_vectors", "observer", "estimation_error",
    "fresh_estimation_error", "gain_over_fresh", "gain_over_fresh_ci95", "selection_seconds", "note",
)
# What measures the machine, not the method: the fields, and the methods whose note does (the probe's
# RSS). They differ between any two runs of a unit; every other cell of a row is reproduced exactly.
MEASURED_FIELDS = ("train_seconds", "selection_seconds", "glearn_seconds", "glearn_peak_mb")
MEASURED_NOTES = ("glearn_cost",)
REQUIRED = schema.REQUIRED
# Bumped when a unit's computation changes meaning, so old result files are recomputed.
RESULTS_FORMAT = 4


class SweepConfigError(ConfigError):
    """config/sweep.yaml (or the file given with --config) is malformed."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str | None  # a model file (.npz/.yaml)
    scenario: str | None  # or a simulator scenario whose model is estimated
    # Optional second evaluation matching the authors' evaluator: {horizon, dirichlet_alpha}.
    authors_protocol: dict | None = None


@dataclass(frozen=True)
class Grid:
    name: str
    models: tuple
    k: tuple
    n: int
    m: int
    rounds: int
    horizon: int
    seeds: int
    rollouts: int
    full_observation_k: int | None
    cost_k: tuple  # k values whose G-LEARN time and memory are probed in a fresh process
    seed: int
    observers: tuple = (PAPER_OBSERVER,)  # core.observers.OBSERVERS names; fresh (the plain points) always
    observer_settings: dict = field(default_factory=dict)  # name -> OBSERVER_KEYS, each observer but fresh


@dataclass(frozen=True)
class SweepSummary:
    computed: int
    skipped: int
    seconds: float
    out_dir: str


def _positive_int(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepConfigError(f"{where} must be a positive integer, got {value!r}")
    return value


def load_grid(config_path, grid_name):
    """Read one named grid of a sweep config; every malformed field is named."""
    path = Path(config_path)
    data = load_yaml(path, "sweep config", SweepConfigError)
    with schema.in_file(str(path), SweepConfigError):
        data = schema.fields(data, {"models": (schema.given, REQUIRED), "grids": (schema.given, REQUIRED),
                                    "continuous_grids": (schema.given, None)},  # experiments/continuous_sweep.py
                             SweepConfigError)
    grids, models = data["grids"], data["models"]
    if not isinstance(grids, dict) or grid_name not in grids:
        known = ", ".join(grids) if isinstance(grids, dict) else "none"
        raise SweepConfigError(f"{path}: no grid 'grids.{grid_name}' (grids defined: {known})")
    spec = grids[grid_name]
    where = f"{path}: grids.{grid_name}"
    spec = schema.fields(spec, {**{key: (schema.given, REQUIRED) for key in GRID_KEYS},
                                **{name: (schema.given, None) for name in observers_on(TABULAR)
                                   if name != PAPER_OBSERVER}},
                         SweepConfigError, where)
    if not isinstance(spec["k"], list) or not spec["k"]:
        raise SweepConfigError(f"{where}.k must be a non-empty list of positive integers")
    ks = sorted({_positive_int(k, f"{where}.k[{i}]") for i, k in enumerate(spec["k"])})
    n = _positive_int(spec["n"], f"{where}.n")
    full_k = spec["full_observation_k"]
    if full_k is not None:
        full_k = _positive_int(full_k, f"{where}.full_observation_k")
    for k in ks + ([full_k] if full_k else []):
        if k > n:
            raise SweepConfigError(f"{where}: k = {k} exceeds n = {n}; the global agent samples k of the n locals")
    if not isinstance(spec["cost_k"], list):
        raise SweepConfigError(f"{where}.cost_k must be a list of k values from {where}.k (may be empty)")
    cost_k = sorted({_positive_int(k, f"{where}.cost_k[{i}]") for i, k in enumerate(spec["cost_k"])})
    if set(cost_k) - set(ks):
        raise SweepConfigError(f"{where}.cost_k: {sorted(set(cost_k) - set(ks))} not in {where}.k")
    if not isinstance(spec["models"], list) or not spec["models"]:
        raise SweepConfigError(f"{where}.models must be a non-empty list of names under 'models'")
    specs = []
    for i, name in enumerate(spec["models"]):
        if not isinstance(models, dict) or name not in models:
            raise SweepConfigError(f"{where}.models[{i}] = {name!r} is not defined under 'models'")
        specs.append(_model_spec(path, name, models[name]))
    seed = spec["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepConfigError(f"{where}.seed must be a non-negative integer, got {seed!r}")
    return Grid(
        name=grid_name, models=tuple(specs), k=tuple(ks), n=n,
        m=_positive_int(spec["m"], f"{where}.m"),
        rounds=_positive_int(spec["rounds"], f"{where}.rounds"),
        horizon=_positive_int(spec["horizon"], f"{where}.horizon"),
        seeds=_positive_int(spec["seeds"], f"{where}.seeds"),
        rollouts=_positive_int(spec["rollouts"], f"{where}.rollouts"),
        full_observation_k=full_k, cost_k=tuple(cost_k), seed=seed,
        **_observer_settings(spec, where),
    )


def _observer_settings(spec, where):
    """observers (a list of registered names with fresh, the paper's, among them) and the block of
    each other observer (its keys exactly when that observer is swept)."""
    names = spec["observers"]
    if not isinstance(names, list) or PAPER_OBSERVER not in names:
        raise SweepConfigError(f"{where}.observers must be a list of observers that includes {PAPER_OBSERVER} "
                               f"(the paper's method, the grid's plain points), got {names!r}")
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in observers_on(TABULAR):
            raise SweepConfigError(f"{where}.observers[{i}] = {name!r} is not an observer the sweep runs on a "
                                   f"tabular model (known: {', '.join(observers_on(TABULAR))})")
    settings = {}
    for name in observers_on(TABULAR):
        if name == PAPER_OBSERVER:
            continue
        block, at = spec[name], f"{where}.{name}"
        if name not in names:
            if block is not None:
                raise SweepConfigError(f"{at} is given but observers does not name {name}: "
                                       f"add {name} to observers or remove the block")
            continue
        if block is None:
            raise SweepConfigError(f"{at}: missing (required when observers names {name}): "
                                   "{gains: [..], max_columns: C, select_rollouts: R}")
        block = schema.fields(block, {key: (schema.given, REQUIRED) for key in OBSERVER_KEYS}, SweepConfigError, at)
        gains = block["gains"]
        if not isinstance(gains, list) or not gains:
            raise SweepConfigError(f"{at}.gains must be a non-empty list of numbers in (0, 1]")
        for i, gain in enumerate(gains):
            if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 < gain <= 1:
                raise SweepConfigError(f"{at}.gains[{i}] must be a number in (0, 1], got {gain!r}")
        settings[name] = dict(gains=[float(gain) for gain in gains],
                              max_columns=_positive_int(block["max_columns"], f"{at}.max_columns"),
                              select_rollouts=_positive_int(block["select_rollouts"], f"{at}.select_rollouts"))
    return dict(observers=tuple(dict.fromkeys(names)), observer_settings=settings)


def _model_spec(config_path, name, entry):
    where = f"{config_path}: models.{name}"
    entry = schema.mapping(entry, SweepConfigError, where, ("model", "scenario", "authors_protocol"))
    if sum(key in entry for key in ("model", "scenario")) != 1:
        raise SweepConfigError(f"{where} must be {{model: FILE}} or {{scenario: NAME}}, "
                               "optionally with authors_protocol: {horizon: H, dirichlet_alpha: A}")
    protocol = entry.get("authors_protocol")
    if protocol is not None:
        protocol = schema.fields(protocol, {"horizon": (schema.given, REQUIRED),
                                            "dirichlet_alpha": (schema.given, REQUIRED)},
                                 SweepConfigError, f"{where}.authors_protocol")
        _positive_int(protocol["horizon"], f"{where}.authors_protocol.horizon")
        alpha = protocol["dirichlet_alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise SweepConfigError(f"{where}.authors_protocol.dirichlet_alpha must be a number > 0, got {alpha!r}")
    if "model" in entry:
        model_path = (config_path.parent / str(entry["model"])).resolve()
        return ModelSpec(name=name, path=str(model_path), scenario=None, authors_protocol=protocol)
    return ModelSpec(name=name, path=None, scenario=str(entry["scenario"]), authors_protocol=protocol)


# ---------------------------------------------------------------- units of work

def _load_game(spec):
    if spec.path is not None:
        from altmarl_ros.core.model import load_model

        return load_model(spec.path)
    from altmarl_sim.estimate import estimate_model
    from altmarl_sim.scenario import load_scenario

    game, _counts = estimate_model(load_scenario(spec.scenario))
    return game


def _row(model, method, k, **fields):
    row = {name: None for name in ROW_FIELDS}
    row.update(model=model, method=method, k=k, **fields)
    return row


def _rollouts(game, pi_g, pi_l, k, grid, protocol=None, observer=None):
    """WelfareEstimate with the grid's rollouts; `protocol` swaps in the authors' horizon and start,
    `observer` (core.observer; default fresh) is what pi_g reads."""
    from altmarl_ros.core.evaluate import rollout_welfare

    horizon = protocol["horizon"] if protocol else grid.horizon
    alpha = protocol["dirichlet_alpha"] if protocol else None
    return rollout_welfare(game, pi_g, pi_l, k, n=grid.n, horizon=horizon, seeds=grid.seeds,
                           rollouts=grid.rollouts, seed=grid.seed, dirichlet_alpha=alpha, observer=observer)


def _welfare(game, pi_g, pi_l, k, grid, protocol=None):
    estimate = _rollouts(game, pi_g, pi_l, k, grid, protocol)
    return float(estimate.mean), float(estimate.ci95)


class _ReferenceResponses:
    """G-LEARN best responses at the reference k, cached by local policy.

    The alternation often returns the same pi_l at several k; one G-LEARN at the
    (large, costly) reference k then serves them all within a run.
    """

    def __init__(self):
        self._cache = {}

    def pi_g(self, game, pi_l, k_ref, grid):
        from altmarl_ros.core.glearn import g_learn

        key = (game.content_hash(), k_ref, grid.m, grid.seed, np.ascontiguousarray(pi_l).tobytes())
        if key not in self._cache:
            self._cache[key] = g_learn(game, pi_l, k_ref, m=grid.m, seed=grid.seed).pi_g
        return self._cache[key]


REFERENCE_RESPONSES = _ReferenceResponses()


def _informed_gain(game, pi_l, deployed, k, grid):
    """What the global agent gains by deviating to a better-informed policy, in rollouts.

    W(G-LEARN best response to pi_l at k_ref, deployed with k_ref samples) - W(pi_g at k),
    both with the same locals pi_l, n agents and rollout streams (paired per rollout, so
    the CI is of the paired differences). k_ref = the grid's full_observation_k: the
    paper's deviation observes all n, which no table can hold (see the stand-in note).
    """
    from altmarl_ros.core.evaluate import mean_ci95

    k_ref = grid.full_observation_k
    reference = _rollouts(game, REFERENCE_RESPONSES.pi_g(game, pi_l, k_ref, grid), pi_l, k_ref, grid)
    mean, ci95 = mean_ci95((reference.returns - deployed.returns).ravel())
    return dict(informed_gain=mean, informed_gain_ci95=ci95, reference_k=k_ref)


# alternating_marl's `start` -> method name. The default starts from the best-constant pair;
# the paper's example (and the authors' code) starts from uniform locals.
STARTS = {"best_constant": "alternating", "uniform": "alternating_uniform_start"}


def _alternating_rows(spec, game, k, grid, start="best_constant"):
    """ALTERNATING-MARL at k: its welfare, the Nash gap of the returned pair, its cost.

    The gains are the ones alternating_marl computed for the returned pair (the same
    definitions as evaluate.nash_gap), so they are not recomputed. The informed gain
    (costly: a G-LEARN at the reference k) is measured for the default start only.
    """
    from altmarl_ros.core.alternating import alternating_marl
    from altmarl_ros.core.counts import n_count_vectors

    method = STARTS[start]
    started = time.perf_counter()
    result = alternating_marl(game, k, m=grid.m, rounds=grid.rounds, seed=grid.seed, start=start)
    train_seconds = time.perf_counter() - started
    deployed = _rollouts(game, result.pi_g, result.pi_l, k, grid)
    informed = {}
    if method == "alternating" and grid.full_observation_k is not None and k < grid.full_observation_k:
        informed = _informed_gain(game, result.pi_l, deployed, k, grid)
    row = _row(
        spec.name, method, k, welfare=float(deployed.mean), welfare_ci95=float(deployed.ci95),
        **informed,
        nash_gap=float(result.nash_gap), global_gain=float(result.global_gain),
        local_gain=float(result.local_gain), rounds=len(result.rounds),
        converged=bool(result.converged), eta=float(result.eta),
        train_seconds=train_seconds, n_count_vectors=n_count_vectors(k, game.n_sl),
        note=result.stop_reason,
    )
    rows = [row]
    if spec.authors_protocol:
        welfare, ci95 = _welfare(game, result.pi_g, result.pi_l, k, grid, spec.authors_protocol)
        rows.append(dict(row, method=method + "@authors", welfare=welfare, welfare_ci95=ci95,
                         note=_protocol_note(spec.authors_protocol)))
    return rows


class _ObservedRuns:
    """The alternations train_observed ran (and the plain point's at k), by resolution, for the model
    and grid in hand.

    Filter candidates at different k often share a resolution (the cap, K = 53 on the
    warehouse, at every k >= 3); the alternation there is deterministic, so one run serves
    every k of a sweep. Only the latest (model, settings) is kept: the tables are large.
    """

    def __init__(self):
        self._key, self._runs = None, {}

    def runs(self, game, grid):
        key = (game.content_hash(), grid.m, grid.rounds, grid.seed)
        if key != self._key:
            self._key, self._runs = key, {}
        return self._runs


OBSERVED_RUNS = _ObservedRuns()


def cache_group(spec, unit):
    """The units that reuse what one process caches (OBSERVED_RUNS): a model's observer units, which
    a cluster sends to one worker as a local run computes them in one process; None for the others."""
    return spec.name if unit.kind in OBSERVERS else None


def _selection(grid, observer):
    """(rollout sizes, stream root) on which an observer's candidates are chosen: train's protocol
    with the grid's n and horizon and the observer block's rollouts."""
    from altmarl_ros.core.observer_training import selection_streams

    return selection_streams(grid.n, grid.observer_settings[observer]["select_rollouts"], grid.seed, grid.horizon)


def observer_method(observer: str) -> str:
    """The rows' method of ALTERNATING-MARL deployed under `observer` (fresh: the plain points')."""
    return "alternating" if observer == PAPER_OBSERVER else f"alternating_{observer}"


def _observer_rows(spec, game, k, grid, observer):
    """ALTERNATING-MARL for `observer` at k, trained and selected as `altmarl train --observer
    <observer>` does (train_observed: an alternation at each candidate resolution, the observer
    chosen by n-agent rollouts on the selection streams; the filter has fresh among its
    candidates), then scored on the grid's evaluation streams next to the fresh pair at k on the
    same streams (gain_over_fresh: paired per rollout).

    train_seconds is what this unit costs on its own: the alternations its candidates need
    (each timed when first run; a sweep runs each resolution once per model) plus the
    selection rollouts (selection_seconds).
    """
    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.alternating import alternating_marl
    from altmarl_ros.core.evaluate import mean_ci95, rollout_welfare
    from altmarl_ros.core.observer_training import train_observed

    sizes, stream = _selection(grid, observer)
    settings, runs = grid.observer_settings[observer], OBSERVED_RUNS.runs(game, grid)
    selecting = []

    def score(pi_g, pi_l, candidate):
        started = time.perf_counter()
        estimate = rollout_welfare(game, pi_g, pi_l, k, observer=candidate, seed=stream, **sizes)
        selecting.append(time.perf_counter() - started)
        return estimate

    alternating_args = dict(m=grid.m, rounds=grid.rounds, seed=grid.seed)
    trained = train_observed(game, k, observer, score=score, n_sl=game.n_sl, gains=settings["gains"],
                             max_columns=settings["max_columns"], runs=runs, **alternating_args)
    deployed = _rollouts(game, trained.pi_g, trained.pi_l, k, grid, observer=trained.observer)
    if k not in runs:  # fresh(k) was not a candidate: the plain point's alternation
        runs[k] = alternating_marl(game, k, **alternating_args)
    fresh_pair = runs[k]
    fresh = _rollouts(game, fresh_pair.pi_g, fresh_pair.pi_l, k, grid)
    gain, gain_ci95 = mean_ci95((deployed.returns - fresh.returns).ravel())
    resolutions = sorted({candidate.observer.resolution for candidate in trained.candidates})
    chosen = next(c for c in trained.candidates if c.observer == trained.observer)
    result = trained.result
    return [_row(
        spec.name, observer_method(observer), k, welfare=float(deployed.mean), welfare_ci95=float(deployed.ci95),
        observer=trained.observer.to_meta(), estimation_error=float(deployed.estimation_error),
        fresh_estimation_error=float(fresh.estimation_error), gain_over_fresh=gain,
        gain_over_fresh_ci95=gain_ci95, nash_gap=float(result.nash_gap), global_gain=float(result.global_gain),
        local_gain=float(result.local_gain), rounds=len(result.rounds), converged=bool(result.converged),
        eta=float(result.eta), selection_seconds=sum(selecting),
        train_seconds=sum(trained.runs[K].seconds for K in resolutions) + sum(selecting),
        n_count_vectors=n_count_vectors(trained.observer.resolution, game.n_sl),
        note=(f"alternations at resolutions {resolutions}; {len(trained.candidates)} candidates scored with "
              f"n = {sizes['n']}, {sizes['seeds'] * sizes['rollouts']} rollouts on streams {stream}; "
              f"the winner scored {chosen.welfare:.2f} ± {chosen.ci95:.2f} there"),
    )]


def _protocol_note(protocol):
    return (f"authors' evaluation: horizon {protocol['horizon']}, locals from "
            f"Dirichlet({protocol['dirichlet_alpha']}) per rollout")


def _subsample_mfq_row(spec, game, k, grid):
    """SUBSAMPLE-MFQ style: G-LEARN against uniform locals, locals stay uniform."""
    from altmarl_ros.core.glearn import g_learn

    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    learned = g_learn(game, uniform, k, m=grid.m, seed=grid.seed)
    welfare, ci95 = _welfare(game, learned.pi_g, uniform, k, grid)
    return _row(spec.name, "subsample_mfq", k, welfare=welfare, welfare_ci95=ci95,
                converged=bool(learned.converged))


def _glearn_cost_row(spec, game, k, grid):
    """Seconds and peak memory of one cold-start G-LEARN at k, measured in a fresh process.

    See glearn_probe.py for why a fresh process; the model travels as a temporary .npz.
    """
    import subprocess
    import sys
    import tempfile

    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.model import save_model

    with tempfile.TemporaryDirectory() as scratch:
        path = save_model(game, Path(scratch) / "model.npz")
        command = [sys.executable, "-m", "altmarl_ros.experiments.glearn_probe", str(path),
                   str(k), str(grid.m), str(grid.seed)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"G-LEARN probe failed for {spec.name} k={k}:\n{done.stderr}")
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    return [_row(spec.name, "glearn_cost", k, glearn_seconds=probe["seconds"],
                 glearn_sweeps=probe["sweeps"], converged=probe["converged"],
                 glearn_peak_mb=probe["peak_growth_mb"], n_count_vectors=n_count_vectors(k, game.n_sl),
                 note=f"fresh process, uniform locals; process peak RSS {probe['peak_rss_mb']:.0f} MB")]


def _baseline_rows(spec, game, grid):
    """Every registered baseline (core.baselines; the blind ones are independent of k)."""
    from altmarl_ros.core.evaluate import baselines

    protocols = [("", grid.horizon, None)]
    if spec.authors_protocol:
        protocols.append(("@authors", spec.authors_protocol["horizon"],
                          spec.authors_protocol["dirichlet_alpha"]))
    rows = []
    for suffix, horizon, alpha in protocols:
        found = baselines(game, grid.k[0], n=grid.n, horizon=horizon, seeds=grid.seeds,
                          rollouts=grid.rollouts, seed=grid.seed, dirichlet_alpha=alpha)
        for name in found:
            note = found[name].detail or None
            if suffix:
                note = "; ".join(filter(None, [note, _protocol_note(spec.authors_protocol)]))
            rows.append(_row(spec.name, name + suffix, None, welfare=float(found[name].mean),
                             welfare_ci95=float(found[name].ci95), note=note))
    return rows


@dataclass(frozen=True)
class Unit:
    """One resumable piece of a sweep for one model: `kind` says what it computes (UNIT_ROWS)."""

    kind: str  # "baselines", "point" (one k, fresh), "full_observation" (its k only), "cost" (G-LEARN
    # probe) or a registered observer's name (one k under that observer)
    k: Optional[int] = None

    @property
    def id(self) -> str:
        """Its name in points/<model>/<id>.json (and in its fingerprint)."""
        prefix = {"point": "", "full_observation": "full_", "cost": "cost_"}.get(self.kind, f"{self.kind}_")
        return "baselines" if self.kind == "baselines" else f"{prefix}k{self.k:04d}"


def _units(grid):
    """(model spec, Unit) in the order they run: results first, then costs."""
    for spec in grid.models:
        yield spec, Unit("baselines")
        for k in grid.k:
            yield spec, Unit("point", k)
        if grid.full_observation_k is not None and grid.full_observation_k not in grid.k:
            yield spec, Unit("full_observation", grid.full_observation_k)
    for spec in grid.models:
        for observer in grid.observers:
            if observer != PAPER_OBSERVER:
                for k in grid.k:
                    yield spec, Unit(observer, k)
    for spec in grid.models:
        for k in grid.cost_k:
            yield spec, Unit("cost", k)


def _point_rows(spec, game, k, grid):
    rows = (_alternating_rows(spec, game, k, grid) + _alternating_rows(spec, game, k, grid, "uniform")
            + [_subsample_mfq_row(spec, game, k, grid)])
    if k == grid.full_observation_k:
        rows.append(_full_observation_row(spec, game, k, grid, rows[0]))
    return rows


def _full_observation_rows(spec, game, k, grid):
    return [_full_observation_row(spec, game, k, grid, _alternating_rows(spec, game, k, grid)[0])]


class _UnitRows(dict):
    """Unit kind -> rows(spec, game, k, grid); a registered observer's name is a kind of its own."""

    def __missing__(self, kind):
        OBSERVERS.check([kind], SweepConfigError, "unit")
        return partial(_observer_rows, observer=kind)


UNIT_ROWS = _UnitRows({
    "baselines": lambda spec, game, k, grid: _baseline_rows(spec, game, grid),
    "point": _point_rows,
    "full_observation": _full_observation_rows,
    "cost": _glearn_cost_row,
})


def _full_observation_row(spec, game, k, grid, alternating_row):
    from math import comb

    note = (f"stand-in: ALTERNATING-MARL at k = {k}; k = n = {grid.n} would need "
            f"{comb(grid.n + game.n_sl - 1, game.n_sl - 1):.3g} count vectors")
    return dict(alternating_row, method="full_observation", note=note)


def _fingerprint(spec, model_hash, unit, grid):
    """Hash of everything a unit's rows depend on; a stored unit is reused only on a match.

    An observer's unit adds its name, its block (under its name) and the selection streams; the
    other units hash exactly what they did before observers were swept, so their files stay valid.
    """
    settings = {key: getattr(grid, key) for key in
                ("n", "m", "rounds", "horizon", "seeds", "rollouts", "seed", "full_observation_k")}
    settings.update(format=RESULTS_FORMAT, model_hash=model_hash, unit=unit.id,
                    authors_protocol=spec.authors_protocol,
                    with_full_observation=unit.k is not None and unit.k == grid.full_observation_k)
    if unit.kind in OBSERVERS:
        sizes, stream = _selection(grid, unit.kind)
        settings.update({"observer": unit.kind, unit.kind: grid.observer_settings[unit.kind],
                         "selection": dict(sizes, seed=stream)})
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _read_unit(path, fingerprint):
    try:
        stored = parse_json(read_text(path, "unit file", SweepConfigError), str(path), SweepConfigError)
    except SweepConfigError:
        return None  # missing or damaged: computed again
    fits = isinstance(stored, dict) and stored.get("fingerprint") == fingerprint
    return stored if fits and isinstance(stored.get("rows"), list) else None


def _cpu_seconds():
    """CPU time of this process (all threads) and of its finished children (the probes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def compute_unit(spec, game, unit, grid):
    """A unit's rows and what they cost: the record a local run computes here and a cluster
    worker (experiments/cluster.py) returns; run_sweep stores it either way."""
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    rows = UNIT_ROWS[unit.kind](spec, game, unit.k, grid)
    return {
        "seconds": time.perf_counter() - started,
        # all threads of this process: on a shared machine, wall time overstates the work
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    }


def _compute_here(pending, grid, progress):
    """The units in grid order, in this process: (index, record) as cluster.compute_units yields them."""
    for index, spec, game, unit in pending:
        if progress is not None:
            progress.set_postfix_str(f"{spec.name} {unit.id}")
        yield index, compute_unit(spec, game, unit, grid)


def run_sweep(grid, out_dir, progress=None, client=None):
    """Compute every unit of `grid` not already stored in `out_dir`; write results files.

    progress: tqdm-like object with update()/set_postfix_str(), or None. client: a
    dask.distributed Client (experiments/cluster.py) whose workers compute the units; the
    unit files and results are written here all the same, so the two runs' files agree.
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    games, hashes, plan = {}, {}, []
    for spec, unit in _units(grid):
        if spec.name not in games:
            games[spec.name] = _load_game(spec)
            hashes[spec.name] = games[spec.name].content_hash()
        fingerprint = _fingerprint(spec, hashes[spec.name], unit, grid)
        plan.append((spec, unit, fingerprint, out_dir / "points" / spec.name / f"{unit.id}.json"))
    stored_units = []
    for spec, unit, fingerprint, path in plan:
        stored_units.append(_read_unit(path, fingerprint))
        if stored_units[-1] is not None and progress is not None:
            progress.set_postfix_str(f"{spec.name} {unit.id}")
            progress.update(1)
    skipped = sum(stored is not None for stored in stored_units)
    if skipped:
        _write_results(out_dir, grid, [stored for stored in stored_units if stored is not None], hashes)
    pending = [(index, spec, games[spec.name], unit)
               for index, ((spec, unit, _, _), stored) in enumerate(zip(plan, stored_units)) if stored is None]
    if client is None:
        finished = _compute_here(pending, grid, progress)
    else:
        from altmarl_ros.experiments.cluster import compute_units

        finished = compute_units(client, pending, grid, progress)
    for index, record in finished:
        spec, unit, fingerprint, path = plan[index]
        stored_units[index] = {"fingerprint": fingerprint, "model": spec.name, "unit": unit.id,
                               "model_hash": hashes[spec.name], **record}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(stored_units[index], indent=1))
        _write_results(out_dir, grid, [stored for stored in stored_units if stored is not None], hashes)
        if progress is not None:
            progress.update(1)
    return SweepSummary(computed=len(pending), skipped=skipped,
                        seconds=time.perf_counter() - started, out_dir=str(out_dir))


def grid_work(grid) -> dict:
    """The work of `grid`'s units, at least, in core.work units: per model, k and observer, the first
    ALTERNATING-MARL round at each trained resolution and the rollouts that score it and the baselines
    (a scenario's model is priced by its sizes, before it is estimated)."""
    from altmarl_ros.core.observer_training import DEFAULT_MAX_COLUMNS, training_work

    amounts = {}
    for spec in grid.models:
        if spec.path is not None:
            from altmarl_ros.core.model import load_model

            game = load_model(spec.path)
            sizes, gamma, unit, steps = game.sizes, game.gamma, "agent-steps", 1
        else:
            from altmarl_sim.scenario import load_scenario

            scenario = load_scenario(spec.scenario)
            sizes, gamma, unit = scenario.sizes, scenario.gamma, "robot control steps"
            steps = max(1, round(scenario.timing.decision_epoch / scenario.timing.control_period))
        for k in grid.k:
            for observer in grid.observers:
                selection = grid.observer_settings.get(observer, {})
                priced = training_work(sizes, gamma, k, observer, m=grid.m, tol=1e-4,
                                       max_columns=selection.get("max_columns", DEFAULT_MAX_COLUMNS),
                                       select_n=grid.n, select_rollouts=grid.seeds * grid.rollouts,
                                       rollout_unit=unit, steps_per_epoch=steps)
                for key, value in priced.items():
                    amounts[key] = amounts.get(key, 0.0) + value
    return amounts


def count_units(grid):
    return sum(1 for _ in _units(grid))


def _write_results(out_dir, grid, units, hashes):
    rows = [row for unit in units for row in unit["rows"]]
    grid_dict = asdict(grid)
    grid_dict["models"] = [asdict(spec) for spec in grid.models]
    grid_dict.update(grid_dict.pop("observer_settings"))  # each observer's block under its name, as in the config
    document = {
        "grid": grid_dict,
        "model_hashes": hashes,
        "compute_seconds": sum(unit["seconds"] for unit in units),
        "cpu_seconds": sum(unit.get("cpu_seconds", 0.0) for unit in units),
        "units_without_cpu_seconds": sum("cpu_seconds" not in unit for unit in units),
        "units": [{key: unit.get(key) for key in ("model", "unit", "seconds", "cpu_seconds", "finished_at")}
                  for unit in units],
        "rows": rows,
    }
    write_atomic(out_dir / "results.json", json.dumps(document, indent=1))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: json.dumps(value) if isinstance(value, dict) else value for key, value in row.items()}
                     for row in rows)
    write_atomic(out_dir / "results.csv", buffer.getvalue())


RESULT_FILES = ("results.json", "results.csv")


def result_cells(rows):
    """The rows less their measurements (MEASURED_FIELDS, MEASURED_NOTES): what two runs of a grid,
    in one process or on a cluster, must agree on to the last bit."""
    return [{key: value for key, value in row.items()
             if key not in MEASURED_FIELDS and not (key == "note" and row["method"] in MEASURED_NOTES)}
            for row in rows]


def load_results(out_dir):
    """The results.json document a sweep wrote in out_dir, checked to be one before a report reads it."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise SweepConfigError(f"no sweep results at {path}: run `altmarl sweep --out {out_dir}` first")
    document = parse_json(read_text(path, "sweep results file", SweepConfigError), str(path), SweepConfigError)
    fix = f"rerun `altmarl sweep --out {out_dir}`"
    with schema.in_file(str(path), SweepConfigError):
        top = schema.mapping(document, SweepConfigError, "")
        for key, kind in (("grid", dict), ("rows", list), ("units", list), ("model_hashes", dict),
                          ("compute_seconds", (int, float))):
            if not isinstance(top.get(key), kind):
                raise SweepConfigError(key, f"is missing or not a {getattr(kind, '__name__', 'number')}: "
                                            f"this is not a results file a sweep wrote; {fix}")
        grid = top["grid"]
        if not isinstance(grid.get("name"), str) or not isinstance(grid.get("k"), list) or not isinstance(
                grid.get("models"), list) or not all(isinstance(m, dict) and "name" in m for m in grid["models"]):
            raise SweepConfigError("grid", f"needs name, k and models as a sweep writes them; {fix}")
        for i, row in enumerate(top["rows"]):
            if not isinstance(row, dict) or set(ROW_FIELDS) - set(row):
                raise SweepConfigError(f"rows[{i}]", f"needs the fields {', '.join(ROW_FIELDS)}; {fix}")
        for i, unit in enumerate(top["units"]):
            if not isinstance(unit, dict) or not isinstance(unit.get("finished_at"), str):
                raise SweepConfigError(f"units[{i}]", f"needs finished_at as a sweep writes it; {fix}")
    return document
