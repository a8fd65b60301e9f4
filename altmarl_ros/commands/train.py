"""`altmarl train`: ALTERNATING-MARL on a model; writes the policy file and its learning curve."""
import math
import sys
import time
from pathlib import Path

from altmarl_ros.commands import comparison_json, comparison_lines, finite_or_none, print_json
from altmarl_ros.errors import UsageError
from altmarl_ros.commands._flags import INT64_MAX, count, real

HELP = "learn (pi_g, pi_l) with ALTERNATING-MARL; write the policy file and a learning-curve PNG"


def add_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, metavar="FILE",
                        help="model file (.npz or .yaml), or a built-in continuous model (setup_b: the authors' "
                             "continuous environment, learned by FA learners; docs/continuous.md)")
    source.add_argument("--scenario", metavar="NAME",
                        help="simulator scenario (config/scenarios/NAME.yaml or a YAML path): learn "
                             "from its estimated model (cached in runs/NAME/model.npz) or, with "
                             "--sampler sim, from the simulator itself")
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
    parser.add_argument("--rounds", type=count(1), default=10, help="at most this many G-LEARN/L-LEARN rounds (default 10)")
    parser.add_argument("--eta", type=real(0), default=None,
                        help="accept a round only if it improves welfare by > 2*eta (default: from k, see docs/training.md)")
    parser.add_argument("--seed", type=count(0, INT64_MAX), default=0, help="seed of G-LEARN's samples (default 0)")
    parser.add_argument("--start", choices=("best_constant", "uniform"), default="best_constant",
                        help="first local policy: the best response to the best constant global action "
                             "(default) or uniform (the paper's example); the game has several "
                             "equilibria and the start picks which one the alternation reaches")
    parser.add_argument("--tol", type=real(0, above=True), default=1e-4, help="G-LEARN sup-norm Bellman residual (default 1e-4)")
    parser.add_argument("--observer", choices=("fresh", "pool", "filter"), default=None,  # OBSERVERS, FA_OBSERVERS
                        help="what the coordinator makes of its k samples (docs/training.md). filter "
                             "(default): keeps an estimate of the fleet, predicted through the model and "
                             "corrected by each k-sample; its gain and pi_g's resolution are chosen by "
                             "n-agent rollouts with the paper's fresh sampling among the candidates, so it "
                             "is never selected below fresh, and at small k it decides like a much larger "
                             "sample (costs several ALTERNATING-MARL runs). fresh: the paper's method, one "
                             "sample per decision read as the whole fleet. A continuous model's default is "
                             "fresh; its filter moves particles (the kept samples) through the model, and pool "
                             "(continuous models only) averages the last k-samples without prediction "
                             "(docs/continuous.md, Observers)")
    parser.add_argument("--observer-window", type=count(1, 10_000), default=None, metavar="W",  # fa_observer.MAX_WINDOW
                        help="continuous model, pool or filter: the decisions whose k samples are kept (default: "
                             "pool 4; filter 500 // k particles' worth, at most the evaluation horizon)")
    parser.add_argument("--observer-gain", type=real(0, 1, below=True), default=None, metavar="G",
                        help="continuous model, pool or filter: a kept sample of age j weighs (1 - G)^j "
                             "(default 0: equal weights)")
    parser.add_argument("--select-n", type=count(1), default=1000, metavar="N",
                        help="robots in the rollouts that choose the observer and check the result "
                             "against the best population-blind baseline (default 1000)")
    parser.add_argument("--select-rollouts", type=count(1), default=50, metavar="R",
                        help="rollouts per candidate observer, and for the final check (default 50)")
    parser.add_argument("--max-columns", type=count(1), default=None, metavar="C",
                        help="with --observer filter: pi_g has at most C count vectors, which caps the "
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
    parser.add_argument("--g-iters", type=count(1), default=None, metavar="I",
                        help="continuous model: TRPO steps per G-step (default 5)")
    parser.add_argument("--l-iters", type=count(1), default=None, metavar="I",
                        help="continuous model: TRPO steps per L-step (default 5; the authors take 1)")
    parser.add_argument("--tracked", type=count(1), default=None, metavar="M",
                        help="continuous model: locals of each rollout the L-step learns from (default 16; "
                             "the authors' 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the policy's metrics) on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _training_source(args, scenario, game=None):
    """(source for alternating_marl, build_policy keyword arguments, label, config entries);
    `game`: the --model, loaded."""
    if scenario is None:
        return game, {"game": game}, str(args.model), {}
    from altmarl_sim.estimate import DEFAULT_SAMPLES_PER_PAIR, estimate_model
    from altmarl_sim.sampler import SimSampler

    identity = {"scenario": (scenario.name, scenario.content_hash())}
    samples = DEFAULT_SAMPLES_PER_PAIR if args.samples is None else args.samples
    config = {"scenario": scenario.name, "sampler": args.sampler, "samples_per_pair": samples}
    if args.sampler == "sim":
        label = f"scenario {scenario.name} (simulator sampler)"
        return SimSampler(scenario, seed=args.seed), {"n_ag": scenario.sizes[1], **identity}, label, config
    game, _ = estimate_model(scenario, samples_per_pair=samples)
    return game, {"game": game, **identity}, f"scenario {scenario.name} (estimated model)", config


def _round_row(log) -> dict:
    """A RoundLog as a JSON-safe dict (NaN, logged for rejected rounds, becomes None)."""
    return finite_or_none({name: getattr(log, name) for name in log.__dataclass_fields__})


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


def _memory_budget(args, source) -> int:
    """The global --max-memory (bytes) as G-LEARN's budget, after printing (stderr) the plan it picks and its time cost."""
    from altmarl_ros.core.glearn_memory import plan_memory

    plan = plan_memory(source, args.k, args.m, max_memory=args.max_memory, seed=args.seed, alternating=True)
    print(f"G-LEARN memory plan (--max-memory {args.max_memory / 2**20:.0f} MiB): {plan.describe()}", file=sys.stderr)
    return args.max_memory


def _deployment_scorer(args, scenario, game):
    """(score, sizes, selection seed): score(pi_g, pi_l, observer, seed) -> WelfareEstimate of
    n-agent rollouts as deployed: the tabular model, or the continuous simulator for --scenario
    (where the filter predicts with the estimated model: a model that is not exactly the fleet)."""
    from altmarl_ros.core.observer_training import selection_streams

    sizes, selection_seed = selection_streams(args.select_n, args.select_rollouts, args.seed)
    if scenario is None:
        from altmarl_ros.core.evaluate import rollout_welfare

        def score(pi_g, pi_l, k, observer, seed):
            return rollout_welfare(game, pi_g, pi_l, k, observer=observer, seed=seed,
                                   dirichlet_alpha=args.dirichlet_alpha, **sizes)
        return score, sizes, selection_seed
    from altmarl_sim.rollout import sim_rollout_welfare

    from altmarl_ros.core.fused import fold_local_policy

    def score(pi_g, pi_l, k, observer, seed):
        prediction = (fold_local_policy(game, pi_l)[0], game.mu0_l)
        return sim_rollout_welfare(scenario, pi_g, pi_l, k, observer=observer, prediction=prediction, seed=seed,
                                   **sizes)
    return score, sizes, selection_seed


def best_blind_baseline(args, scenario, game, k, seed, sizes) -> tuple:
    """(name, WelfareEstimate) of the best population-blind baseline (core.baselines, blind) on the
    given streams."""
    from altmarl_ros.core.baselines import BASELINES

    names = [name for name, baseline in BASELINES.items() if baseline.blind]
    if scenario is None:
        from altmarl_ros.core.evaluate import baselines

        found = baselines(game, k, seed=seed, dirichlet_alpha=args.dirichlet_alpha, names=names, **sizes)
    else:
        from altmarl_sim.rollout import sim_baselines

        found = sim_baselines(scenario, game, k, seed=seed, names=names, **sizes)
    return max(found.items(), key=lambda item: item[1].mean)


def check_training_work(args, scenario, game) -> None:
    """Refuse, before any work, training beyond the work ceiling (core.work) or a --max-columns
    that cannot be honoured (pi_g at k itself has more count vectors)."""
    from altmarl_ros.core import work
    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.observer_training import DEFAULT_MAX_COLUMNS, training_work

    sizes, gamma = (game.sizes, game.gamma) if scenario is None else (scenario.sizes, scenario.gamma)
    if args.max_columns is not None and args.observer == "fresh":
        raise UsageError("--max-columns caps the filter observer's resolution; --observer fresh trains pi_g at k")
    max_columns = DEFAULT_MAX_COLUMNS if args.max_columns is None else args.max_columns
    at_k = n_count_vectors(args.k, sizes[2])
    if at_k > max_columns and args.max_columns is not None:
        raise UsageError(f"--max-columns {max_columns}: pi_g at k = {args.k} itself has {at_k} count vectors "
                         f"over {sizes[2]} local states, so the cap cannot hold; raise it to at least {at_k}")
    steps, unit = 1, "agent-steps"
    amounts = {}
    if scenario is not None:
        from altmarl_sim.estimate import DEFAULT_SAMPLES_PER_PAIR
        from altmarl_sim.sampler import check_tabulation

        steps = max(1, round(scenario.timing.decision_epoch / scenario.timing.control_period))
        unit = "robot control steps"
        n_sg, n_ag, n_sl, n_al = sizes
        samples = DEFAULT_SAMPLES_PER_PAIR if args.samples is None else args.samples
        check_tabulation(sizes, samples)  # memory before work: the budget names the exact array
        amounts[unit] = float(samples) * (n_sg * n_ag + n_sl * n_sg * n_al) * steps  # the estimated model
    from altmarl_ros.core.glearn import check_learning_size
    from altmarl_ros.core.observer_training import candidates_for

    check_learning_size(sizes, max(spec.resolution for spec in candidates_for(args.k, sizes[2], args.observer,
                                                                             max_columns)), args.m)
    from altmarl_ros.core.llearn import check_pair_chain

    check_pair_chain(sizes)
    trained = training_work(sizes, gamma, args.k, args.observer, m=args.m, tol=args.tol, max_columns=max_columns,
                            select_n=args.select_n, select_rollouts=args.select_rollouts, rollout_unit=unit,
                            steps_per_epoch=steps)
    for key, value in trained.items():
        amounts[key] = amounts.get(key, 0.0) + value
    args.max_columns = max_columns
    work.require(f"training at k = {args.k}, m = {args.m}, --select-n {args.select_n} x --select-rollouts "
                 f"{args.select_rollouts}", amounts, "use a smaller --k, --m, --select-n or --select-rollouts")


def run(args) -> int:
    from altmarl_ros.commands import _continuous

    if _continuous.is_continuous(args.model):
        return _continuous.train(args)
    if (args.train_seeds != 3 or args.global_step != "trpo" or args.observer == "pool"
            or (args.g_iters, args.l_iters, args.tracked, args.observer_window, args.observer_gain) != (None,) * 5):
        raise UsageError("--train-seeds, --global-step, --g-iters, --l-iters, --tracked, --observer pool, "
                         "--observer-window and --observer-gain apply to continuous models (docs/continuous.md)")
    if args.observer is None:
        args.observer = "filter"
    from tqdm import tqdm

    from altmarl_ros.core.atomic import check_output
    from altmarl_ros.core.observer_training import train_observed
    from altmarl_ros.core.policy import build_policy, save_policy

    if args.scenario is None and (args.sampler != "model" or args.samples is not None):
        raise UsageError("--sampler and --samples apply to --scenario training only")
    if args.scenario is not None and args.dirichlet_alpha is not None:
        raise UsageError("--dirichlet-alpha applies to --model training; a scenario starts its robots "
                          "from fleet.start_zone_weights")
    for name in ("select_n", "select_rollouts", "max_columns"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} is {getattr(args, name)}; it must be >= 1")
    if args.select_n < args.k:
        raise UsageError(f"--select-n {args.select_n} is below --k {args.k}: the coordinator samples k of n")
    scenario = None
    if args.scenario is not None:
        from altmarl_sim.estimate import run_dir
        from altmarl_sim.scenario import load_scenario

        scenario = load_scenario(args.scenario)
        if args.out is None:
            args.out = run_dir(scenario) / "policy.npz"
    if args.out is None:
        raise UsageError("--out POLICY is required with --model")
    if args.out.suffix.lower() != ".npz":
        raise UsageError(f"--out {args.out}: policy files end in .npz")
    inputs = [args.model, None if scenario is None else scenario.source]
    check_output(args.out, inputs)
    check_output(args.out.with_suffix(".png"), inputs, flag="--out (its learning curve)")
    model = None
    if scenario is None:
        from altmarl_ros.core.model import load_model

        model = load_model(args.model)
    check_training_work(args, scenario, model)
    source, policy_kwargs, label, source_config = _training_source(args, scenario, model)
    game = policy_kwargs.get("game")
    if game is None:  # the simulator sampler: pool it once; the filter predicts with the pooled model
        from altmarl_ros.core.sampler import as_game

        source = game = as_game(source, seed=args.seed)
    max_memory = None if getattr(args, "max_memory", None) is None else _memory_budget(args, source)
    score, sizes, selection_seed = _deployment_scorer(args, scenario, game)
    residuals_at = {}  # resolution -> one list of G-LEARN residuals per round
    show = not (args.quiet or not sys.stderr.isatty())
    with tqdm(total=args.rounds, desc="rounds", unit="round", file=sys.stderr, disable=not show) as bar:
        def on_run(K):
            bar.reset()
            residuals_at[K] = []

        def on_sweep(sweep, residual):
            residuals = residuals_at[next(reversed(residuals_at))]
            if sweep == 1:
                residuals.append([])
            residuals[-1].append(float(residual))
            bar.set_postfix_str(f"G-LEARN sweep {sweep}, residual {residual:.2g}")

        def on_round(log):
            bar.update()
            bar.set_postfix_str(f"welfare {log.welfare_estimate:.3f}, gap {log.nash_gap:.3g}")

        def on_stage(text):
            bar.set_description_str(text)

        trained = train_observed(
            source, args.k, args.observer, n_sl=game.n_sl, max_columns=args.max_columns, on_stage=on_stage,
            on_run=on_run,
            score=lambda pi_g, pi_l, spec: score(pi_g, pi_l, args.k, spec, selection_seed),
            m=args.m, rounds=args.rounds, eta=args.eta, seed=args.seed, tol=args.tol, progress=on_round,
            sweep_progress=on_sweep, start=args.start, max_memory=max_memory)
        bar.set_description_str("checking against the baselines")
        # the chosen pair and the baselines on streams the selection did not see
        check_seed = selection_seed + 1
        check_started = time.perf_counter()
        learned = score(trained.pi_g, trained.pi_l, args.k, trained.observer, check_seed)
        baseline_name, baseline = best_blind_baseline(args, scenario, game, args.k, check_seed, sizes)
        check_seconds = time.perf_counter() - check_started
    result = trained.result
    rows = [_round_row(log) for log in result.rounds]
    observer_meta = trained.observer.to_meta()
    config = {"source": label, "k": args.k, "m": args.m, "rounds": args.rounds, "eta": result.eta,
              "seed": args.seed, "tol": args.tol, "start": args.start, "observer": args.observer,
              "max_columns": args.max_columns,
              "selection": {**sizes, "seed": selection_seed, "dirichlet_alpha": args.dirichlet_alpha},
              **source_config}
    candidates = [{"observer": c.observer.to_meta(), "welfare": c.welfare, "welfare_ci": c.ci95,
                   "estimation_error": c.estimation_error, "seconds": c.seconds} for c in trained.candidates]
    metrics = {"welfare_estimate": result.welfare_estimate, "nash_gap": result.nash_gap,
               "global_gain": result.global_gain, "local_gain": result.local_gain,
               "converged": result.converged, "stop_reason": result.stop_reason,
               "seconds": trained.seconds, "rounds": rows, "observer_candidates": candidates,
               "deployed_check": {**comparison_json(learned, baseline_name, baseline), "seconds": check_seconds}}
    from altmarl_ros.core.fused import fold_local_policy

    prediction = (fold_local_policy(game, trained.pi_l)[0], game.mu0_l)  # what the filter predicts with
    artifact = build_policy(trained.pi_g, trained.pi_l, args.k, config=config, metrics=metrics,
                            observer=trained.observer, prediction=prediction, **policy_kwargs)
    save_policy(artifact, args.out)
    curve = args.out.with_suffix(".png")
    K = trained.observer.resolution
    write_learning_curve(curve, rows, residuals_at[K], f"ALTERNATING-MARL on {label}, k = {args.k}, "
                                                 f"resolution {K}, m = {args.m}")
    if args.json:
        print_json({"policy": str(args.out), "policy_id": artifact.policy_id, "learning_curve": str(curve),
                    "observer": observer_meta, **artifact.meta["metrics"]})
        return 0
    print(_format_table(rows))
    print(f"stopped: {result.stop_reason} ({trained.seconds:.1f} s in all, eta = {result.eta:.4g})")
    print(f"returned pair (trained at resolution {K}): surrogate welfare {result.welfare_estimate:.4f}, "
          f"Nash gap {result.nash_gap:.4g} (global {result.global_gain:.4g}, local {result.local_gain:.4g})")
    if args.observer == "filter":
        print("ALTERNATING-MARL per resolution: " + ", ".join(
            f"K = {K_run} {run.seconds:.0f} s ({len(run.rounds)} rounds)" for K_run, run in trained.runs.items()))
        print(f"observer candidates (n = {sizes['n']}, {sizes['seeds'] * sizes['rollouts']} rollouts on "
              f"selection streams {selection_seed}):")
        for c in trained.candidates:
            mark = "*" if c.observer == trained.observer else " "
            error = "n/a" if math.isnan(c.estimation_error) else f"{c.estimation_error:.3f}"
            print(f" {mark} {c.welfare:9.3f} +- {c.ci95:<6.3f} TV error {error:<5}  {c.seconds:5.0f} s  "
                  f"{c.observer.describe()}")
    print(f"observer: {trained.observer.describe()}")
    print(f"deployed check (n = {sizes['n']}, {sizes['seeds'] * sizes['rollouts']} rollouts, streams {check_seed}, "
          f"{check_seconds:.0f} s):")
    for line in comparison_lines(learned, baseline_name, baseline):
        print(line)
    print(f"wrote {args.out} (policy id {artifact.policy_id}) and {curve}")
    return 0
