"""`altmarl train`: ALTERNATING-MARL on a model; writes the policy file and its learning curve."""
import math
import sys
from pathlib import Path

from altmarl_ros.commands import comparison_lines, print_json
from altmarl_ros.commands._flags import INT64_MAX, count, real
from altmarl_ros.commands._world import add_world_arguments, open_world
from altmarl_ros.core.fa_observer import DEFAULT_POOL_WINDOW, MAX_WINDOW, PARTICLE_BUDGET
from altmarl_ros.core.observers import (DEFAULT_OBSERVER, OBSERVERS, PAPER_OBSERVER, TABULAR, ObserverKind,
                                        observer_on)
from altmarl_ros.core.training import START_POLICIES, TrainOptions, TrainProgress, check_training_work, train_policy
from altmarl_ros.errors import UsageError

HELP = "learn (pi_g, pi_l) with ALTERNATING-MARL; write the policy file and a learning-curve PNG"


def add_arguments(parser):
    add_world_arguments(parser, "model file (.npz or .yaml), or a built-in continuous model (setup_b: the authors' "
                                "continuous environment, learned by FA learners; docs/continuous.md)",
                        "simulator scenario (config/scenarios/NAME.yaml or a YAML path): learn from its estimated "
                        "model (cached in runs/NAME/model.npz) or, with --sampler sim, from the simulator itself")
    parser.add_argument("--k", type=count(1), required=True, help="locals the global agent samples each step")
    parser.add_argument("--out", type=Path, metavar="POLICY",
                        help="policy file to write (.npz); the learning curve goes next to it (.png). "
                             "Required with --model; default with --scenario: runs/NAME/policy.npz")
    parser.add_argument("--sampler", choices=("model", "sim"), default="model",
                        help="with --scenario: learn from the estimated model (default) or draw "
                             "G-LEARN's samples from the simulator's generative sampler")
    parser.add_argument("--samples", type=count(1), default=None, metavar="N",
                        help="with --scenario: simulator draws per state-action pair for the "
                             "estimated model (default 2000)")
    parser.add_argument("--m", type=count(1), default=30, help="samples per Bellman backup in G-LEARN (default 30)")
    parser.add_argument("--rounds", type=count(1), default=10, help="at most this many G-LEARN/L-LEARN rounds "
                                                                    "(default 10)")
    parser.add_argument("--eta", type=real(0), default=None,
                        help="accept a round only if it improves welfare by > 2*eta (default: from k, see "
                             "docs/training.md)")
    parser.add_argument("--seed", type=count(0, INT64_MAX), default=0, help="seed of G-LEARN's samples (default 0)")
    parser.add_argument("--start", choices=START_POLICIES, default="best_constant",
                        help="first local policy: the best response to the best constant global action "
                             "(default) or uniform (the paper's example); the game has several "
                             "equilibria and the start picks which one the alternation reaches")
    parser.add_argument("--tol", type=real(0, above=True), default=1e-4, help="G-LEARN sup-norm Bellman residual "
                                                                              "(default 1e-4)")
    parser.add_argument("--observer", choices=tuple(OBSERVERS), default=None,
                        help=f"what the coordinator makes of its k samples (docs/training.md; default "
                             f"{DEFAULT_OBSERVER}, on a continuous model {PAPER_OBSERVER}: docs/continuous.md, "
                             f"Observers). " + ". ".join(f"{name}: {kind.description}"
                                                         for name, kind in OBSERVERS.items()))
    parser.add_argument("--observer-window", type=count(1, MAX_WINDOW), default=None, metavar="W",
                        help="continuous model, an observer that keeps an estimate: the decisions whose k samples "
                             f"are kept (default: {DEFAULT_POOL_WINDOW} without prediction; with it (the particle "
                             f"filter) {PARTICLE_BUDGET} // k particles' worth, at most the evaluation horizon)")
    parser.add_argument("--observer-gain", type=real(0, 1, below=True), default=None, metavar="G",
                        help="continuous model, an observer that keeps an estimate: a kept sample of age j weighs "
                             "(1 - G)^j (default 0: equal weights)")
    parser.add_argument("--select-n", type=count(1), default=1000, metavar="N",
                        help="robots in the rollouts that choose the observer and check the result "
                             "against the best population-blind baseline (default 1000)")
    parser.add_argument("--select-rollouts", type=count(1), default=50, metavar="R",
                        help="rollouts per candidate observer, and for the final check (default 50)")
    parser.add_argument("--max-columns", type=count(1), default=None, metavar="C",
                        help="with an observer trained at several resolutions (filter): pi_g has at most C "
                             "count vectors, which caps the "
                             "resolution it is trained at (default 400000: 53 robots at |S_l| = 5, 17 at "
                             "|S_l| = 8) and so G-LEARN's time and memory; refused below pi_g's columns at k")
    parser.add_argument("--dirichlet-alpha", type=real(0, above=True), default=None, metavar="ALPHA",
                        help="with --model: choose the observer for fleets that start iid from p ~ "
                             "Dirichlet(ALPHA) (as evaluate --dirichlet-alpha) instead of the model's mu0_l")
    parser.add_argument("--train-seeds", type=count(1), default=3, metavar="S",
                        help="continuous model: train S runs (seeds --seed, --seed + 1, ...) and keep the best "
                             "by selection welfare, the authors' protocol (default 3)")
    parser.add_argument("--global-step", choices=("trpo", "supervised"), default="trpo",
                        help="continuous model: how the global agent learns: trpo (default; RL on its state and "
                             "the histogram of its k samples) or supervised (the authors' baseline: the "
                             "histogram alone, cross-entropy on the privileged initial-mode label)")
    parser.add_argument("--global-init", choices=("random", "best_feedback"), default="random",
                        help="continuous scenario: how the global network starts: random (default, the paper) or "
                             "best_feedback (not in the paper: fitted to the best s_g-feedback rule a_g = f(s_g) "
                             "of the scenario's estimated model, the locals' L-step against it accepted as the "
                             "start pair; docs/continuous.md)")
    parser.add_argument("--g-iters", type=count(1), default=None, metavar="I",
                        help="continuous model: TRPO steps per G-step (default 5)")
    parser.add_argument("--l-iters", type=count(1), default=None, metavar="I",
                        help="continuous model: TRPO steps per L-step (default 5; the authors take 1)")
    parser.add_argument("--tracked", type=count(1), default=None, metavar="M",
                        help="continuous model: locals of each rollout the L-step learns from (default 16; "
                             "the authors' 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the policy's metrics) on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _or_dash(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _format_table(rows) -> str:
    lines = [f"{'round':>5} {'welfare':>10} {'Nash gap':>10} {'G resid':>9} {'sweeps':>6} "
             f"{'L resid':>9} {'accepted':>8} {'seconds':>8}"]
    for row in rows:
        gap, l_residual = (_or_dash(row[key], spec) for key, spec in (("nash_gap", ".4g"), ("l_residual", ".2g")))
        lines.append(f"{row['round']:>5} {row['welfare_estimate']:>10.4f} {gap:>10} "
                     f"{row['g_residual']:>9.2g} {row['g_sweeps']:>6} {l_residual:>9} "
                     f"{'yes' if row['accepted'] else 'no':>8} {row['seconds']:>8.2f}")
    return "\n".join(lines)


def write_learning_curve(path: Path, rows, residuals, title: str) -> None:
    """PNG: surrogate welfare and Nash gap per round; G-LEARN residual per sweep (all rounds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from altmarl_ros.core.atomic import atomic_writer

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rounds = [row["round"] for row in rows]
    left.plot(rounds, [row["welfare_estimate"] for row in rows], "o-", color="C0", label="welfare (surrogate)")
    for row in rows:
        if not row["accepted"]:
            left.plot(row["round"], row["welfare_estimate"], "x", color="C3", markersize=10)
    left.set_xlabel("round")
    left.set_ylabel("surrogate welfare", color="C0")
    left.xaxis.get_major_locator().set_params(integer=True)
    gap_axis = left.twinx()
    gap_axis.plot(rounds, [math.nan if row["nash_gap"] is None else row["nash_gap"] for row in rows], "s--",
                  color="C1", label="Nash gap")
    gap_axis.set_ylabel("Nash gap (accepted rounds)", color="C1")
    left.set_title("per round (x: rejected by the 2*eta rule)")
    sweep = 0
    for index, history in enumerate(residuals):
        steps = range(sweep + 1, sweep + len(history) + 1)
        right.semilogy(steps, history, color=f"C{index % 10}", label=f"round {index}")
        sweep += len(history)
    right.set_xlabel("G-LEARN sweep (all rounds)")
    right.set_ylabel("sup-norm Bellman residual")
    right.set_title("G-LEARN convergence")
    if residuals:
        right.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_writer(path) as stream:
        fig.savefig(stream, format="png", dpi=100)
    plt.close(fig)


def _check_flags(args) -> None:
    """Flag combinations that cannot mean anything, refused before any work."""
    observer = _observer(args)
    continuous_only = (args.g_iters, args.l_iters, args.tracked, args.observer_window, args.observer_gain)
    if (args.train_seeds != 3 or args.global_step != "trpo" or args.global_init != "random"
            or continuous_only != (None,) * 5):
        raise UsageError("--train-seeds, --global-step, --global-init, --g-iters, --l-iters, --tracked, "
                         "--observer-window and --observer-gain apply to continuous models (docs/continuous.md)")
    if args.max_columns is not None and not observer.selects:
        raise UsageError(f"--max-columns caps the resolution of an observer chosen among candidates (filter); "
                         f"--observer {observer.name} trains pi_g at k")
    if args.select_n < args.k:
        raise UsageError(f"--select-n {args.select_n} is below --k {args.k}: the coordinator samples k of n")


def _check_max_columns(args, world) -> None:
    """--max-columns below pi_g's count vectors at k itself cannot hold."""
    from altmarl_ros.core.counts import n_count_vectors

    at_k = n_count_vectors(args.k, world.sizes[2])
    if args.max_columns is not None and at_k > args.max_columns:
        raise UsageError(f"--max-columns {args.max_columns}: pi_g at k = {args.k} itself has {at_k} count vectors "
                         f"over {world.sizes[2]} local states, so the cap cannot hold; raise it to at least {at_k}")


def _observer(args) -> ObserverKind:
    """--observer's entry on a tabular model (default DEFAULT_OBSERVER); one that runs on continuous models only
    is refused naming the flag and the choices."""
    return observer_on(args.observer or DEFAULT_OBSERVER, TABULAR, UsageError, "--observer")


def options_of(args) -> TrainOptions:
    """The typed options of `altmarl train`'s flags (recorded in the policy's metadata by train_policy)."""
    return TrainOptions(m=args.m, rounds=args.rounds, eta=args.eta, seed=args.seed, tol=args.tol, start=args.start,
                        observer=_observer(args).name, max_columns=args.max_columns, select_n=args.select_n,
                        select_rollouts=args.select_rollouts, max_memory=getattr(args, "max_memory", None))


def _policy_path(args, world) -> Path:
    """--out, or the world's default; checked as a new output that is none of the inputs."""
    from altmarl_ros.core.atomic import check_output

    out = args.out or world.default_policy_path
    if out is None:
        raise UsageError("--out POLICY is required with --model")
    if out.suffix.lower() != ".npz":
        raise UsageError(f"--out {out}: policy files end in .npz")
    check_output(out, world.inputs)
    check_output(out.with_suffix(".png"), world.inputs, flag="--out (its learning curve)")
    return out


class _Bar(TrainProgress):
    """train_policy's progress as one tqdm bar on stderr (none when quiet or not a terminal)."""

    def __init__(self, rounds: int, quiet: bool):
        from tqdm import tqdm

        show = not (quiet or not sys.stderr.isatty())
        self.bar = tqdm(total=rounds, desc="rounds", unit="round", file=sys.stderr, disable=not show)

    def stage(self, text):
        self.bar.set_description_str(text)

    def run(self, resolution):
        self.bar.reset()

    def sweep(self, sweep, residual):
        self.bar.set_postfix_str(f"G-LEARN sweep {sweep}, residual {residual:.2g}")

    def round(self, log):
        self.bar.update()
        self.bar.set_postfix_str(f"welfare {log.welfare_estimate:.3f}, gap {log.nash_gap:.3g}")


def train_and_save(world, k: int, options: TrainOptions, out: Path, quiet: bool = False) -> tuple:
    """(artifact, report, learning-curve path): train_policy in `world` after its work check, with a
    progress bar, then the policy file and its learning curve (`altmarl demo` trains through it too)."""
    from altmarl_ros.core.policy import save_policy

    check_training_work(world, k, options)
    if options.max_memory is not None:
        from altmarl_ros.core.glearn_memory import plan_memory

        plan = plan_memory(world.game, k, options.m, max_memory=options.max_memory, seed=options.seed,
                           alternating=True)
        print(f"G-LEARN memory plan (--max-memory {options.max_memory / 2**20:.0f} MiB): {plan.describe()}",
              file=sys.stderr)
    progress = _Bar(options.rounds, quiet)
    with progress.bar:
        artifact, report = train_policy(world, k, options, progress)
    save_policy(artifact, out)
    curve = out.with_suffix(".png")
    write_learning_curve(curve, artifact.meta["metrics"]["rounds"], report.residuals,
                         f"ALTERNATING-MARL on {world.label}, k = {k}, resolution "
                         f"{report.trained.observer.resolution}, m = {options.m}")
    return artifact, report, curve


def run(args) -> int:
    from altmarl_ros.commands import _continuous

    if _continuous.is_continuous(args):
        return _continuous.train(args)
    _check_flags(args)
    world = open_world(args, "training")
    _check_max_columns(args, world)
    out = _policy_path(args, world)
    artifact, report, curve = train_and_save(world, args.k, options_of(args), out, args.quiet)
    if args.json:
        print_json({"policy": str(out), "policy_id": artifact.policy_id, "learning_curve": str(curve),
                    "observer": report.trained.observer.to_meta(), **artifact.meta["metrics"]})
    else:
        print_result(artifact, report, out, curve)
    return 0


def print_result(artifact, report, out: Path, curve: Path) -> None:
    trained, result, sizes = report.trained, report.trained.result, report.selection
    rows = artifact.meta["metrics"]["rounds"]
    K = trained.observer.resolution
    print(_format_table(rows))
    print(f"stopped: {result.stop_reason} ({trained.seconds:.1f} s in all, eta = {result.eta:.4g})")
    print(f"returned pair (trained at resolution {K}): surrogate welfare {result.welfare_estimate:.4f}, "
          f"Nash gap {result.nash_gap:.4g} (global {result.global_gain:.4g}, local {result.local_gain:.4g})")
    if trained.observer.kind.selects:
        print("ALTERNATING-MARL per resolution: " + ", ".join(
            f"K = {K_run} {run.seconds:.0f} s ({len(run.rounds)} rounds)" for K_run, run in trained.runs.items()))
        print(f"observer candidates (n = {sizes['n']}, {sizes['seeds'] * sizes['rollouts']} rollouts on "
              f"selection streams {report.selection_seed}):")
        for c in trained.candidates:
            mark = "*" if c.observer == trained.observer else " "
            error = "n/a" if math.isnan(c.estimation_error) else f"{c.estimation_error:.3f}"
            print(f" {mark} {c.welfare:9.3f} +- {c.ci95:<6.3f} TV error {error:<5}  {c.seconds:5.0f} s  "
                  f"{c.observer.describe()}")
    print(f"observer: {trained.observer.describe()}")
    print(f"deployed check (n = {sizes['n']}, {sizes['seeds'] * sizes['rollouts']} rollouts, streams "
          f"{report.check_seed}, {report.check_seconds:.0f} s):")
    for line in comparison_lines(report.learned, report.baseline_name, report.baseline):
        print(line)
    print(f"wrote {out} (policy id {artifact.policy_id}) and {curve}")
