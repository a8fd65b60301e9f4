"""Training that matches deployment: learn pi_g at the resolution the observer queries, then
choose the observer's parameters by n-agent rollouts on streams that training did not use.

What is trained is the registry entry's (core.observers): its `candidates` at k, and
whether it `selects` among them.

`fresh` (the paper): one ALTERNATING-MARL run at k; the observer has no parameters.

`filter`: the filter's steady estimate after gain alpha has the noise of about
K(alpha) = k (2 - alpha) / alpha fresh samples (observers.equivalent_samples), so
for every candidate gain ALTERNATING-MARL runs at that resolution (capped so
that pi_g has at most `max_columns` count vectors, which bounds G-LEARN's
table: K <= 50 at |S_l| = 5, K <= 17 at |S_l| = 8): G-LEARN then learns a depot
for an estimate as noisy as the filter's, and L-LEARN best-responds to a depot
that reads it. Every (resolution, gain, prior) candidate, and fresh at k, is
deployed with `select_n` robots on the selection streams; the best mean wins.
The prior is 0 (the estimate starts from the first sample) or the steady weight
W = k (1 - alpha) / alpha on the model's mu0_l (the filter starts in its steady
state at the model's initial distribution): which one is right depends on how
well mu0_l describes the fleet's start, so the selection runs from the starts
the deployment will see (mu0_l, or Dirichlet(alpha) starts as in
evaluate --dirichlet-alpha). With fresh among the candidates, a filter policy
is never selected below the paper's method beyond the selection's own noise.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from altmarl_ros.core._checks import integer
from altmarl_ros.core.alternating import alternating_marl
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.llearn import pair_chain_cost
from altmarl_ros.core.observers import DEFAULT_OBSERVER, OBSERVERS, ObserverError, ObserverSpec, check_gain

DEFAULT_GAINS = (0.5, 0.25, 0.1)
# count vectors of pi_g: K up to 53 at |S_l| = 5 (C(57, 4) = 395,010 columns; timings: docs/training.md)
DEFAULT_MAX_COLUMNS = 400_000
# Root of the selection rollouts' streams, offset from every seed evaluate/sweep use by default
# (they use 0, 1, ...), so the chosen parameters are not scored on the streams that picked them.
SELECTION_SEED = 7_919_000
SELECTION_HORIZON = 100
MEAN_FIELD_ITERATIONS = 10  # L-LEARN's mean field, counted per trained resolution (it stops at 500 at most)


@dataclass(frozen=True)
class Candidate:
    observer: ObserverSpec
    welfare: float
    ci95: float
    estimation_error: float
    seconds: float = float("nan")  # of its selection rollouts


@dataclass(frozen=True)
class ObservedTraining:
    """The chosen (pi_g at observer.resolution, pi_l, observer), the alternation that produced it,
    every candidate's selection score, and the alternation run at each resolution."""

    pi_g: object
    pi_l: object
    observer: ObserverSpec
    result: object  # AlternatingResult of the chosen resolution
    candidates: list = field(repr=False)
    runs: dict = field(repr=False)  # resolution -> AlternatingResult
    seconds: float = 0.0


def selection_streams(n: int, rollouts: int, seed: int, horizon: int = SELECTION_HORIZON) -> tuple:
    """(rollout sizes, stream root) of the selection: `rollouts` split into seeds of about 25,
    on streams SELECTION_SEED + 2 seed (the check after it uses + 1). train and sweep both use it."""
    split = max(1, rollouts // 25)
    sizes = dict(n=n, horizon=horizon, seeds=split, rollouts=max(1, rollouts // split))
    return sizes, SELECTION_SEED + 2 * seed


def max_resolution(n_sl: int, max_columns: int) -> int:
    """The largest K whose count vectors over n_sl states number at most max_columns (>= 1).

    With one local state every K has a single count vector: no K is too large (sys.maxsize).
    """
    if n_sl == 1:
        return sys.maxsize
    K = 1
    while n_count_vectors(K + 1, n_sl) <= max_columns:
        K += 1
    return K


def candidates_for(k: int, n_sl: int, observer: str, *, gains=DEFAULT_GAINS, max_columns=DEFAULT_MAX_COLUMNS) -> list:
    """The specs train_observed trains for `observer` (a registered name): its entry's candidates at k,
    with resolutions capped so that pi_g has at most max_columns count vectors (never below k)."""
    cap = max(k, max_resolution(n_sl, max_columns))
    return OBSERVERS[observer].candidates(k, cap, gains)


def training_work(sizes, gamma: float, k: int, observer: str, *, m: int, tol: float, max_columns: int,
                  select_n: int, select_rollouts: int, rollout_unit: str = "agent-steps",
                  steps_per_epoch: int = 1) -> dict:
    """The work train_observed and the check after it do, at least: one ALTERNATING-MARL round of
    G-LEARN (sweeps to `tol` at `gamma`) at each candidate resolution, the candidates' selection
    rollouts and the final check (the learned pair and each constant baseline), and L-LEARN's dense
    pair chain (MEAN_FIELD_ITERATIONS of it), in core.work units."""
    import math

    n_sg, n_ag, n_sl, _ = sizes
    specs = candidates_for(k, n_sl, observer, max_columns=max_columns)
    sweeps = min(10_000, max(1, math.ceil(math.log(tol) / math.log(gamma)))) if 0 < gamma < 1 else 1
    gathers = sum(n_sg * n_count_vectors(K, n_sl) * m * sweeps for K in {spec.resolution for spec in specs})
    scored = (len(specs) if OBSERVERS[observer].selects else 0) + 1 + n_ag + 1  # selection, learned pair, constants
    steps = float(scored) * select_n * SELECTION_HORIZON * select_rollouts * steps_per_epoch
    chain_flops = pair_chain_cost(sizes)[1] * MEAN_FIELD_ITERATIONS * len({spec.resolution for spec in specs})
    return {"G-LEARN gathers": float(gathers), rollout_unit: steps, "dense flops": chain_flops}


def train_observed(source, k, observer=DEFAULT_OBSERVER, *, score, n_sl, gains=DEFAULT_GAINS,
                   max_columns=DEFAULT_MAX_COLUMNS, on_stage=None, on_run=None, runs=None,
                   **alternating_args) -> ObservedTraining:
    """ALTERNATING-MARL for deployment under `observer` (a registered name; module docstring).

    `score(pi_g, pi_l, observer_spec) -> WelfareEstimate` deploys a candidate on the
    selection streams (the caller fixes n, horizon, starts and the simulator or model).
    `n_sl` = |S_l| (sizes the resolution cap). `on_stage(text)` is told what runs next,
    `on_run(K)` before the alternation at resolution K. `runs`: resolution ->
    AlternatingResult already computed on this source with these alternating_marl
    arguments, reused and filled in (the sweep shares one across its k; the alternation
    is deterministic, so a reused run is the run). Other arguments go to alternating_marl.
    """
    started = time.perf_counter()
    OBSERVERS.check([observer], ObserverError, "observer")
    selects = OBSERVERS[observer].selects
    k = integer(ObserverError, "k", k, 1)
    max_columns = integer(ObserverError, "max_columns", max_columns, 1)
    gains = tuple(check_gain(gain) for gain in gains)
    on_stage = on_stage or (lambda text: None)
    on_run = on_run or (lambda K: None)
    runs = {} if runs is None else runs

    def run_at(K):
        if K not in runs:
            on_stage(f"ALTERNATING-MARL at resolution {K}")
            on_run(K)
            runs[K] = alternating_marl(source, K, **alternating_args)
        return runs[K]

    specs = candidates_for(k, n_sl, observer, gains=gains, max_columns=max_columns)
    candidates = []
    for spec in specs:
        result = run_at(spec.resolution)
        if not selects:
            candidates.append(Candidate(spec, float("nan"), float("nan"), float("nan")))
            break
        on_stage(f"selecting: {spec.describe()}")
        estimate = score(result.pi_g, result.pi_l, spec)
        candidates.append(Candidate(spec, estimate.mean, estimate.ci95, estimate.estimation_error, estimate.seconds))
    best = max(candidates, key=lambda c: c.welfare) if selects else candidates[0]
    chosen = runs[best.observer.resolution]
    return ObservedTraining(pi_g=chosen.pi_g, pi_l=chosen.pi_l, observer=best.observer, result=chosen,
                            candidates=candidates, runs=runs, seconds=time.perf_counter() - started)
