"""train_policy: ALTERNATING-MARL in a world (core.world), for deployment under an observer, checked
against the strongest population-blind baseline, as one policy artifact.

`TrainOptions` are the typed arguments of a training run; they are recorded in the policy's
metadata (its "config") as they were given, with what the run derived from them (eta, the
world's identity, the selection streams), so a policy file says how to reproduce it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

from altmarl_ros.core.observers import DEFAULT_OBSERVER, OBSERVERS, ObserverError
from altmarl_ros.errors import LearnError

START_POLICIES = ("best_constant", "uniform")  # the first local policy (core.alternating)


@dataclass(frozen=True)
class TrainOptions:
    """One training run's settings (the `altmarl train` flags of the same names)."""

    m: int = 30  # samples per Bellman backup in G-LEARN
    rounds: int = 10  # at most this many G-LEARN/L-LEARN rounds
    eta: float | None = None  # acceptance margin; None: from k (docs/training.md)
    seed: int = 0  # G-LEARN's samples; the selection and check streams follow from it
    tol: float = 1e-4  # G-LEARN's sup-norm Bellman residual
    start: str = "best_constant"  # first local policy, START_POLICIES
    observer: str = DEFAULT_OBSERVER  # a name in core.observers.OBSERVERS
    max_columns: int | None = None  # cap on pi_g's count vectors (filter); None: the default cap
    select_n: int = 1000  # robots in the selection and check rollouts
    select_rollouts: int = 50  # rollouts per candidate observer and for the check
    max_memory: int | None = None  # G-LEARN's memory budget in bytes (None: the machine's share)

    def __post_init__(self):
        OBSERVERS.check([self.observer], ObserverError, "observer")
        if self.start not in START_POLICIES:
            raise LearnError("start", f"must be one of {list(START_POLICIES)}, got {self.start!r}")


@dataclass
class TrainingReport:
    """What a run did: the chosen observer's training (core.observer_training.ObservedTraining), the
    deployed check of the learned pair against the best blind baseline, and G-LEARN's residuals per sweep
    of every round at the chosen resolution (the learning curve)."""

    trained: object
    learned: object  # WelfareEstimate of the pair on the check streams
    baseline_name: str
    baseline: object  # WelfareEstimate of the best blind baseline on the same streams
    selection: dict  # rollout sizes of the selection and check
    selection_seed: int
    check_seconds: float
    residuals: list = field(default_factory=list)

    @property
    def check_seed(self) -> int:
        return self.selection_seed + 1


class TrainProgress:
    """What train_policy reports as it goes; override what you show (the default shows nothing)."""

    def stage(self, text: str) -> None:
        """The next stage, e.g. "ALTERNATING-MARL at resolution 11"."""

    def run(self, resolution: int) -> None:
        """An alternation starts at this resolution."""

    def sweep(self, sweep: int, residual: float) -> None:
        """A G-LEARN sweep finished."""

    def round(self, log) -> None:
        """An ALTERNATING-MARL round finished (core.alternating.RoundLog)."""


def max_columns_of(options: TrainOptions) -> int:
    from altmarl_ros.core.observer_training import DEFAULT_MAX_COLUMNS

    return DEFAULT_MAX_COLUMNS if options.max_columns is None else options.max_columns


def check_training_work(world, k: int, options: TrainOptions) -> None:
    """Refuse, before any work, training beyond the work ceiling (core.work) or memory."""
    from altmarl_ros.core import work
    from altmarl_ros.core.glearn import check_learning_size
    from altmarl_ros.core.llearn import check_pair_chain
    from altmarl_ros.core.observer_training import candidates_for, training_work

    sizes = world.sizes
    max_columns = max_columns_of(options)
    amounts = dict(world.preparation_work())
    check_learning_size(sizes, max(spec.resolution for spec in candidates_for(k, sizes[2], options.observer,
                                                                             max_columns=max_columns)), options.m)
    check_pair_chain(sizes)
    trained = training_work(sizes, world.gamma, k, options.observer, m=options.m, tol=options.tol,
                            max_columns=max_columns, select_n=options.select_n,
                            select_rollouts=options.select_rollouts, rollout_unit=world.rollout_unit,
                            steps_per_epoch=world.steps_per_epoch)
    for key, value in trained.items():
        amounts[key] = amounts.get(key, 0.0) + value
    work.require(f"training at k = {k}, m = {options.m}, --select-n {options.select_n} x --select-rollouts "
                 f"{options.select_rollouts}", amounts, "use a smaller --k, --m, --select-n or --select-rollouts")


def train_policy(world, k: int, options: TrainOptions = TrainOptions(), progress: TrainProgress | None = None):
    """(PolicyArtifact, TrainingReport): ALTERNATING-MARL on world.game for deployment under
    options.observer (core.observer_training.train_observed, candidates scored by world.welfare on the
    selection streams), then the chosen pair and the best blind baseline on the check streams."""
    from altmarl_ros.core.fused import fold_local_policy
    from altmarl_ros.core.observer_training import selection_streams, train_observed
    from altmarl_ros.core.policy import build_policy
    from altmarl_ros.core.world import best_blind_baseline

    progress = progress or TrainProgress()
    game = world.game
    sizes, selection_seed = selection_streams(options.select_n, options.select_rollouts, options.seed)
    residuals_at = {}  # resolution -> one list of G-LEARN residuals per round

    def on_run(resolution):
        residuals_at[resolution] = []
        progress.run(resolution)

    def on_sweep(sweep, residual):
        residuals = residuals_at[next(reversed(residuals_at))]
        if sweep == 1:
            residuals.append([])
        residuals[-1].append(float(residual))
        progress.sweep(sweep, residual)

    trained = train_observed(
        game, k, options.observer, n_sl=game.n_sl,
        max_columns=max_columns_of(options), on_stage=progress.stage, on_run=on_run,
        score=lambda pi_g, pi_l, spec: world.welfare(pi_g, pi_l, k, spec, seed=selection_seed, **sizes),
        m=options.m, rounds=options.rounds, eta=options.eta, seed=options.seed, tol=options.tol,
        progress=progress.round, sweep_progress=on_sweep, start=options.start, max_memory=options.max_memory)
    progress.stage("checking against the baselines")
    started = time.perf_counter()  # the chosen pair and the baselines on streams the selection did not see
    learned = world.welfare(trained.pi_g, trained.pi_l, k, trained.observer, seed=selection_seed + 1, **sizes)
    baseline_name, baseline = best_blind_baseline(world, k, seed=selection_seed + 1, **sizes)
    report = TrainingReport(trained, learned, baseline_name, baseline, sizes, selection_seed,
                            time.perf_counter() - started, residuals_at[trained.observer.resolution])
    artifact = build_policy(trained.pi_g, trained.pi_l, k, config=_config(world, k, options, report),
                            metrics=_metrics(report), observer=trained.observer,
                            prediction=(fold_local_policy(game, trained.pi_l)[0], game.mu0_l),
                            **world.policy_identity(game))
    return artifact, report


def _config(world, k: int, options: TrainOptions, report: TrainingReport) -> dict:
    """The policy's "config": the options as given, what the run derived, and the world it ran in."""
    recorded = {name: value for name, value in dataclasses.asdict(options).items() if name != "max_memory"}
    recorded.update(eta=report.trained.result.eta, max_columns=max_columns_of(options))
    del recorded["select_n"], recorded["select_rollouts"]
    return {"source": world.label, "k": k, **recorded,
            "selection": {**report.selection, "seed": report.selection_seed,
                          "dirichlet_alpha": getattr(world, "dirichlet_alpha", None)},
            **world.config}


def round_row(log) -> dict:
    """A RoundLog as a JSON-safe dict (NaN, logged for rejected rounds, becomes None)."""
    return {name: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for name, value in dataclasses.asdict(log).items()}


def _metrics(report: TrainingReport) -> dict:
    from altmarl_ros.core.world import comparison

    result, trained = report.trained.result, report.trained
    candidates = [{"observer": c.observer.to_meta(), "welfare": c.welfare, "welfare_ci": c.ci95,
                   "estimation_error": c.estimation_error, "seconds": c.seconds} for c in trained.candidates]
    return {"welfare_estimate": result.welfare_estimate, "nash_gap": result.nash_gap,
            "global_gain": result.global_gain, "local_gain": result.local_gain,
            "converged": result.converged, "stop_reason": result.stop_reason,
            "seconds": trained.seconds, "rounds": [round_row(log) for log in result.rounds],
            "observer_candidates": candidates,
            "deployed_check": {**comparison(report.learned, report.baseline_name, report.baseline),
                               "seconds": report.check_seconds}}
