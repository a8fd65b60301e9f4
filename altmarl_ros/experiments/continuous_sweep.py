"""The k-sweep of a built-in continuous model (docs/continuous.md, Sweep): `altmarl sweep --grid NAME` for a grid
under `continuous_grids` in the sweep config.

A point is one (k, observer): the authors' protocol (`protocol_point`): `train_seeds` runs of ALTERNATING-MARL
with FA learners, the observer in every rollout (core/fa_observer.py, its defaults at k), the best kept by
selection welfare; every run evaluated on `eval_seeds` x `rollouts` n-agent rollouts; mode accuracy as the
authors define it. Each point is written atomically to `<out>/points/<observer>_k<k>.json` with a fingerprint
of what determines it, so a rerun reuses it; `<out>/results.json` collects the kept runs' rows after each point.
The report draws welfare and mode accuracy against k per observer, as the authors plot them, and writes a
generated section of docs/results.md (experiments/report.py's markers). JAX is imported inside the run only.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from altmarl_ros import schema
from altmarl_ros.core._checks import integer
from altmarl_ros.core.atomic import atomic_writer, write_atomic
from altmarl_ros.core.observers import CONTINUOUS, observer_on, observers_on
from altmarl_ros.core.safe_files import load_yaml, parse_json, read_text
from altmarl_ros.errors import LearnError

RESULTS_FORMAT = 1
FIGURE = "welfare_mode_vs_k"
# grids' optional `training` block: these FAConfig settings (the tiny grid shrinks the runs)
TRAINING_KEYS = ("n", "hidden", "rounds", "eta", "g_iters", "l_iters", "episodes", "tracked", "horizon",
                 "critic_epochs", "select_rollouts")
GRID_SPEC = {"model": (schema.given, schema.REQUIRED), "k": (schema.given, schema.REQUIRED),
             "observers": (schema.given, schema.REQUIRED), "train_seeds": (schema.given, 3),
             "eval_seeds": (schema.given, 10), "rollouts": (schema.given, 30), "seed": (schema.given, 0),
             "training": (schema.given, None)}


@dataclass(frozen=True)
class ContinuousGrid:
    name: str
    model: str
    k: tuple
    observers: tuple
    train_seeds: int
    eval_seeds: int
    rollouts: int
    seed: int
    training: dict  # FAConfig settings (TRAINING_KEYS)


def _sweep_error():
    from altmarl_ros.experiments.sweep import SweepConfigError

    return SweepConfigError


def continuous_grids(config_path) -> dict:
    """The config's `continuous_grids` mapping (empty without one)."""
    error = _sweep_error()
    data = schema.mapping(load_yaml(Path(config_path), "sweep config", error), error, str(config_path))
    return schema.mapping(data.get("continuous_grids") or {}, error, f"{config_path}: continuous_grids")


def load_continuous_grid(config_path, name: str) -> ContinuousGrid:
    """Grid `name` of the config's continuous_grids, every field checked (SweepConfigError naming it)."""
    from altmarl_ros.core.continuous import CONTINUOUS_MODELS, continuous_model
    from altmarl_ros.core.fa_alternating import FAConfig, check_config

    error = _sweep_error()
    where = f"{config_path}: continuous_grids.{name}"
    spec = schema.fields(continuous_grids(config_path)[name], GRID_SPEC, error, where)
    if spec["model"] not in CONTINUOUS_MODELS:
        raise error(f"{where}.model", f"is {spec['model']!r}; use a built-in continuous model "
                                      f"({', '.join(CONTINUOUS_MODELS)})")
    game = continuous_model(spec["model"])
    for key in ("k", "observers"):
        if not isinstance(spec[key], list) or not spec[key]:
            raise error(f"{where}.{key}", f"must be a non-empty list, got {spec[key]!r}")
    ks = sorted({integer(error, f"{where}.k[{i}]", k, 1) for i, k in enumerate(spec["k"])})
    observers = [observer_on(name, CONTINUOUS, error, f"{where}.observers[{i}]").name
                 for i, name in enumerate(spec["observers"])]
    counts = {key: integer(error, f"{where}.{key}", spec[key], 1) for key in ("train_seeds", "eval_seeds", "rollouts")}
    training = schema.mapping(spec["training"] or {}, error, f"{where}.training", TRAINING_KEYS)
    training = {**training, **({"hidden": tuple(training["hidden"])} if isinstance(training.get("hidden"), list)
                               else {})}
    for k in ks:
        try:
            check_config(game, k, FAConfig(**training))
        except LearnError as exc:  # k too large for n, or a bad training setting
            raise error(f"{where}.k" if exc.field == "k" else f"{where}.training.{exc.field}", exc.detail) from None
    return ContinuousGrid(name=name, model=spec["model"], k=tuple(ks), observers=tuple(dict.fromkeys(observers)),
                          seed=integer(error, f"{where}.seed", spec["seed"], 0), training=training, **counts)


def protocol_point(game, k: int, config, *, train_seeds, eval_seeds: int, rollouts: int, policy_path=None) -> dict:
    """The authors' protocol at k with `config` (a checked FAConfig, its observer included): one training run per
    seed of `train_seeds`, the best by selection welfare kept (written to policy_path), every run evaluated on
    eval_seeds x rollouts rollouts at config.n and the model's evaluation horizon. Per run: its welfare (mean,
    95% CI, std of the seed means), the observer's estimation error, mode accuracy, Nash gap, seconds and the
    returns themselves (so ratios of points can be paired)."""
    from altmarl_ros.core.evaluate import mean_ci95
    from altmarl_ros.core.fa_alternating import mode_accuracy, protocol_returns, train_best_of
    from altmarl_ros.core.fa_policy import build_fa_policy, save_fa_policy

    (kept_seed, _), runs = train_best_of(game, k, config, list(train_seeds))
    rows = []
    for seed, result in runs:
        found = protocol_returns(game, k, result.global_params, result.local_params, n=config.n,
                                 horizon=game.horizon_eval, seeds=eval_seeds, rollouts_=rollouts,
                                 global_inputs=config.global_inputs, observer=config.observer, estimation_error=True)
        policy = build_fa_policy(game, k, result.global_params, result.local_params,
                                 global_inputs=config.global_inputs, hidden=config.hidden, observer=config.observer,
                                 config={**config.to_json(), "seed": seed},
                                 metrics={key: getattr(result, name) for key, name in _METRICS.items()
                                          if np.isfinite(getattr(result, name))})
        mean, ci = mean_ci95(found["welfare"])
        rows.append({"seed": seed, "selection_welfare": result.welfare, "welfare": mean, "welfare_ci": ci,
                     "seed_means_std": float(found["welfare"].mean(axis=1).std()),
                     "estimation_error": float(found["estimation_error"].mean()),
                     "mode_accuracy": mode_accuracy(game, k, policy), "nash_gap": result.nash_gap,
                     "rounds": len(result.rounds), "seconds": result.seconds,
                     "returns": found["welfare"].ravel().tolist()})
        if seed == kept_seed and policy_path is not None:
            save_fa_policy(policy, policy_path)
    return {"k": k, "observer": config.observer.to_meta(), "kept_seed": kept_seed, "runs": rows}


_METRICS = {"selection_welfare": "welfare", "nash_gap": "nash_gap", "global_gain": "global_gain",
            "local_gain": "local_gain"}  # policy metrics key -> FAResult field, as altmarl train records them


def kept_run(point: dict) -> dict:
    return next(run for run in point["runs"] if run["seed"] == point["kept_seed"])


def _config(game, grid: ContinuousGrid, k: int, name: str):
    from altmarl_ros.core.fa_alternating import FAConfig, check_config
    from altmarl_ros.core.fa_observer import default_observer

    observer = default_observer(name, k, game.horizon_eval)
    return check_config(game, k, replace(FAConfig(**grid.training), observer=observer))


def _fingerprint(game, grid: ContinuousGrid, config) -> str:
    settings = dict(format=RESULTS_FORMAT, model_hash=game.content_hash(), config=config.to_json(),
                    train_seeds=grid.train_seeds, eval_seeds=grid.eval_seeds, rollouts=grid.rollouts, seed=grid.seed)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_point(path: Path, fingerprint: str):
    try:
        stored = parse_json(read_text(path, "point file", _sweep_error()), str(path), _sweep_error())
    except _sweep_error():
        return None  # missing or damaged: computed again
    return stored if isinstance(stored, dict) and stored.get("fingerprint") == fingerprint else None


def units(grid: ContinuousGrid):
    return [(k, name) for k in grid.k for name in grid.observers]


def grid_work(grid: ContinuousGrid) -> dict:
    """FA agent-steps of the grid's training runs at most (every round taken) and evaluations (core.work)."""
    from altmarl_ros.core.continuous import continuous_model
    from altmarl_ros.core.fa_observer import particles

    game, steps = continuous_model(grid.model), 0.0
    for k, name in units(grid):
        config = _config(game, grid, k, name)
        agents = config.n + particles(config.observer, k)
        per_round = (config.g_iters + config.l_iters) * config.episodes * config.horizon * agents
        evaluation = grid.eval_seeds * grid.rollouts * game.horizon_eval * agents
        steps += grid.train_seeds * ((config.rounds + 1) * per_round + evaluation)
    return {"FA agent-steps": steps}


def run_continuous_sweep(grid: ContinuousGrid, out_dir, progress=None) -> dict:
    """Compute every point of `grid` not stored in out_dir (module docstring); returns {computed, skipped, seconds}."""
    from altmarl_ros.core.continuous import continuous_model

    out_dir, game = Path(out_dir), continuous_model(grid.model)
    started, computed, points = time.perf_counter(), 0, []
    for k, name in units(grid):
        config = _config(game, grid, k, name)
        fingerprint = _fingerprint(game, grid, config)
        path = out_dir / "points" / f"{name}_k{k}.json"
        if progress is not None:
            progress(f"k = {k}, {name}")
        stored = _read_point(path, fingerprint)
        if stored is None:
            unit_started = time.perf_counter()
            path.parent.mkdir(parents=True, exist_ok=True)
            stored = protocol_point(game, k, config, train_seeds=range(grid.seed, grid.seed + grid.train_seeds),
                                    eval_seeds=grid.eval_seeds, rollouts=grid.rollouts,
                                    policy_path=path.with_suffix(".npz"))
            stored.update(fingerprint=fingerprint, seconds=time.perf_counter() - unit_started)
            write_atomic(path, json.dumps(stored))
            computed += 1
        points.append(stored)
        _write_results(out_dir, grid, game, points)
    return {"computed": computed, "skipped": len(points) - computed, "seconds": time.perf_counter() - started}


def _write_results(out_dir: Path, grid: ContinuousGrid, game, points) -> None:
    write_atomic(out_dir / "results.json", json.dumps(results_document(asdict(grid), game.content_hash(), points),
                                                      indent=1))


def results_document(grid: dict, model_hash: str, points) -> dict:
    """What the report reads: the grid's settings and one row per point (its kept run, and every run's welfare)."""
    rows = []
    for point in points:
        kept = kept_run(point)
        rows.append({"k": point["k"], "observer": point["observer"], "kept_seed": point["kept_seed"],
                     **{key: kept[key] for key in ("welfare", "welfare_ci", "seed_means_std", "estimation_error",
                                                   "mode_accuracy", "nash_gap")},
                     "runs_welfare": [run["welfare"] for run in point["runs"]],
                     "train_seconds": [run["seconds"] for run in point["runs"]]})
    return {"kind": "continuous", "grid": grid, "model_hash": model_hash, "rows": rows}


def load_continuous_results(out_dir) -> dict:
    path = Path(out_dir) / "results.json"
    error = _sweep_error()
    if not path.is_file():
        raise error(f"no sweep results at {path}: run `altmarl sweep --grid GRID --out {out_dir}` first")
    document = parse_json(read_text(path, "sweep results file", error), str(path), error)
    if not isinstance(document, dict) or document.get("kind") != "continuous" or not isinstance(document.get("rows"),
                                                                                                   list):
        raise error(f"{path} is not a continuous sweep's results; rerun `altmarl sweep --grid GRID --out {out_dir}`")
    return document


def write_figure(results: dict, path: Path) -> Path:
    """Welfare (kept run, 95% CI) and mode accuracy against k, one line per observer, as the authors plot them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    drawn = {row["observer"]["name"] for row in results["rows"]}
    for name in (name for name in observers_on(CONTINUOUS) if name in drawn):
        rows = sorted((row for row in results["rows"] if row["observer"]["name"] == name), key=lambda r: r["k"])
        ks = [row["k"] for row in rows]
        left.errorbar(ks, [row["welfare"] for row in rows], yerr=[row["welfare_ci"] for row in rows], marker="o",
                      capsize=3, label=name)
        right.plot(ks, [100 * row["mode_accuracy"] for row in rows], marker="o", label=name)
    for ax, label in ((left, "welfare (discounted, kept run)"), (right, "mode accuracy (%), first decision")):
        ax.set_xscale("log")
        ax.set_xticks(sorted({row["k"] for row in results["rows"]}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("k (locals sampled per step)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    grid = results["grid"]
    fig.suptitle(f"{grid['model']} ({grid['name']}): {grid['train_seeds']} training seeds, "
                 f"{grid['eval_seeds']} x {grid['rollouts']} evaluation rollouts")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as stream:
        fig.savefig(stream, format="png", dpi=110)
    plt.close(fig)
    return path


def render_markdown(results: dict, figure: Path, doc_path: Path) -> str:
    import os

    grid = results["grid"]
    lines = [f"### Continuous sweep `{grid['name']}`: {grid['model']}", "",
             f"![welfare and mode accuracy against k]({os.path.relpath(figure, Path(doc_path).parent)})", "",
             "| k | observer | welfare ± 95% CI (kept run) | ± std of seed means | runs | TV error | mode accuracy |",
             "|---|---|---|---|---|---|---|"]
    for row in sorted(results["rows"], key=lambda r: (r["k"], observers_on(CONTINUOUS).index(r["observer"]["name"]))):
        runs = " / ".join(format(value, ".1f") for value in row["runs_welfare"])
        lines.append(f"| {row['k']} | {row['observer']['name']} | {row['welfare']:.1f} ± {row['welfare_ci']:.1f} "
                     f"| {row['seed_means_std']:.1f} | {runs} | {row['estimation_error']:.3f} "
                     f"| {100 * row['mode_accuracy']:.1f}% |")
    return "\n".join(lines) + "\n"


def write_report(results: dict, doc_path, figure_dir) -> dict:
    from altmarl_ros.experiments.report import figure_path, replace_generated

    doc_path = Path(doc_path)
    figure = write_figure(results, figure_path(figure_dir, results["grid"]["name"], FIGURE))
    text = read_text(doc_path, "report document") if doc_path.exists() else "# Results\n"
    write_atomic(doc_path, replace_generated(text, results["grid"]["name"], render_markdown(results, figure, doc_path)))
    return {FIGURE: figure}


def run(args, grid_name: str) -> int:
    """`altmarl sweep` for a continuous grid (commands/sweep.py hands it over)."""
    import sys

    from altmarl_ros.commands._continuous import _configure_jax
    from altmarl_ros.commands.sweep import finish
    from altmarl_ros.core import work
    from altmarl_ros.core.atomic import check_output, check_output_dir
    from altmarl_ros.experiments.report import figure_path

    out_dir = Path(args.out or Path("runs") / "sweep" / grid_name)
    figure_dir = Path(args.figures) if args.figures else Path(args.doc).parent / "figures"
    summary = {"grid": grid_name, "out": str(out_dir), "computed": 0, "skipped": 0, "seconds": 0.0}
    if not args.report_only:
        grid = load_continuous_grid(args.config, grid_name)
        check_output_dir(out_dir, [args.config], flag="--out")
        check_output(out_dir / "results.json", [args.config], flag="--out")
    if args.report or args.report_only:
        inputs = [args.config, out_dir / "results.json"]
        check_output(Path(args.doc), inputs, flag="--doc")
        check_output(figure_path(figure_dir, grid_name, FIGURE), inputs + [args.doc], flag="--figures")
    if not args.report_only:
        _configure_jax()
        work.require(f"the continuous sweep of grid {grid_name} ({len(units(grid))} points)", grid_work(grid),
                     "use a smaller grid")

        def progress(text):
            if not (args.quiet or args.json):
                print(f"sweep {grid_name}: {text}", file=sys.stderr, flush=True)

        summary.update(run_continuous_sweep(grid, out_dir, progress))
        if not args.json:
            print(f"sweep {grid_name}: {summary['computed']} points computed, {summary['skipped']} reused in "
                  f"{summary['seconds']:.1f} s -> {out_dir / 'results.json'}")
    return finish(args, summary, figure_dir,
                  lambda: write_report(load_continuous_results(out_dir), args.doc, figure_dir))
