"""`altmarl train|evaluate --model NAME` for a built-in continuous model (core/continuous.py, docs/continuous.md),
and `--scenario NAME` for a continuous scenario (one with a `continuous:` section: altmarl_sim.continuous_ring).

The authors' protocol: train one run per --train-seeds seed (ALTERNATING-MARL with FA learners,
core/fa_alternating.py), keep the best by selection welfare; evaluate over --seeds x --rollouts
n-agent rollouts. JAX is imported here, inside run(), never by the other commands.
"""
import math
import sys
import time
from pathlib import Path

from altmarl_ros.commands import finite_or_none, print_json
from altmarl_ros.commands._world import print_baselines
from altmarl_ros.core.observers import CONTINUOUS, PAPER_OBSERVER, observer_on
from altmarl_ros.errors import UsageError

# The tabular-only flags and their defaults: a continuous model refuses any other value.
TABULAR_TRAIN_FLAGS = {"sampler": "model", "samples": None, "m": 30, "start": "best_constant", "tol": 1e-4,
                       "select_n": 1000, "select_rollouts": 50, "max_columns": None, "dirichlet_alpha": None}
TABULAR_EVALUATE_FLAGS = {"m": None, "dirichlet_alpha": None}


def is_continuous(args) -> bool:
    """--model names a built-in continuous model (and no such file exists), or --scenario a continuous scenario."""
    from altmarl_ros.core.continuous import CONTINUOUS_MODELS

    model, scenario = getattr(args, "model", None), getattr(args, "scenario", None)
    if scenario is not None:
        from altmarl_sim.scenario import load_scenario

        return load_scenario(scenario).continuous is not None
    return model is not None and str(model) in CONTINUOUS_MODELS and not model.exists()


def _refuse_tabular_flags(args, flags: dict, game) -> None:
    for name, default in flags.items():
        if getattr(args, name) != default:
            raise UsageError(f"--{name.replace('_', '-')} applies to tabular models; {game.name} is a continuous "
                             "model (docs/continuous.md lists its flags)")


def _game(args):
    """The continuous game of --scenario (a continuous scenario) or --model (a built-in model)."""
    if getattr(args, "scenario", None) is not None:
        from altmarl_sim.continuous_ring import ContinuousRing
        from altmarl_sim.scenario import load_scenario

        return ContinuousRing(load_scenario(args.scenario))
    from altmarl_ros.core.continuous import continuous_model

    return continuous_model(str(args.model))


def _or_dash(value) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, ".4g")


def _configure_jax():
    """One thread for XLA unless the user chose (the 2-core machines this runs on share their cores); a missing
    JAX (./run.sh's set-up does not install it) is one line saying how to get it."""
    import importlib.util
    import os

    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("optax") is None:
        raise UsageError("continuous models train and evaluate with JAX and optax, which are not installed: run "
                         "`ALTMARL_FA=1 bash scripts/bootstrap.sh` (./test.sh does it) or "
                         "`pip install -r requirements-fa.txt`")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def train(args) -> int:
    from tqdm import tqdm

    from altmarl_ros.core.atomic import check_output

    game = _game(args)
    _configure_jax()
    _refuse_tabular_flags(args, TABULAR_TRAIN_FLAGS, game)
    out = Path("runs") / game.name / f"policy_k{args.k}.npz" if args.out is None else args.out
    check_output(out)
    from altmarl_ros.core import work
    from altmarl_ros.core.fa_alternating import FAConfig, check_config, train_best_of
    from altmarl_ros.core.fa_observer import default_observer, particles
    from altmarl_ros.core.fa_policy import build_fa_policy, save_fa_policy

    inputs = "summary" if args.global_step == "supervised" else "state+summary"
    steps = {name: getattr(args, name) for name in ("g_iters", "l_iters", "tracked") if getattr(args, name) is not None}
    name = observer_on(args.observer or PAPER_OBSERVER, CONTINUOUS, UsageError, "--observer").name
    observer = default_observer(name, args.k, game.horizon_eval, args.observer_window, args.observer_gain)
    config = check_config(game, args.k, FAConfig(rounds=args.rounds, eta=args.eta, global_rule=args.global_step,
                                                 global_inputs=inputs, observer=observer,
                                                 global_init=args.global_init, **steps))
    seeds = [args.seed + index for index in range(args.train_seeds)]
    per_round = ((config.g_iters + config.l_iters) * config.episodes * config.horizon
                 * (config.n + particles(observer, args.k)))
    work.require(f"training {len(seeds)} runs of at most {config.rounds} rounds on {game.name} (n = {config.n})",
                 {"FA agent-steps": float(len(seeds)) * (config.rounds + 1 + 2 * (config.global_init != "random"))
                                    * per_round},
                 "use fewer --train-seeds or --rounds")
    with tqdm(total=len(seeds) * config.rounds, desc="train", unit="round", file=sys.stderr,
              disable=args.quiet or not sys.stderr.isatty()) as bar:
        def on_round(log):
            bar.update()
            bar.set_postfix_str(f"welfare {log.welfare:.1f}")

        def on_run(seed, result):
            bar.update(config.rounds - len(result.rounds))

        (kept_seed, result), runs = train_best_of(game, args.k, config, seeds, progress=on_round, on_run=on_run)
    rows = [finite_or_none({"seed": seed, "welfare": run.welfare, "welfare_ci": run.welfare_ci,
                            "nash_gap": run.nash_gap, "global_gain": run.global_gain, "local_gain": run.local_gain,
                            "rounds": len(run.rounds), "stop_reason": run.stop_reason, "seconds": run.seconds,
                            "start_welfare": None if run.start is None else run.start["welfare"]})
            for seed, run in runs]
    rounds = [finite_or_none({"round": log.round, "welfare": log.welfare, "welfare_ci": log.welfare_ci,
                              "local_gain": log.local_gain, "accepted": log.accepted, "seconds": log.seconds,
                              "global_step": log.g_info, "local_step": log.l_info}) for log in result.rounds]
    metrics = {"selection_welfare": result.welfare, "selection_welfare_ci": result.welfare_ci,
               "nash_gap": result.nash_gap, "global_gain": result.global_gain, "local_gain": result.local_gain,
               "converged": result.converged, "stop_reason": result.stop_reason, "kept_seed": kept_seed,
               "runs": rows, "rounds": rounds, "seconds_per_run": [run.seconds for _, run in runs],
               "start": result.start}
    policy = build_fa_policy(game, args.k, result.global_params, result.local_params, global_inputs=inputs,
                             hidden=config.hidden, observer=observer,
                             config={**config.to_json(), "seeds": seeds, "eta": result.eta},
                             metrics=finite_or_none(metrics))
    save_fa_policy(policy, out)
    if args.json:
        print_json({"policy": str(out), "policy_id": policy.policy_id, "k": args.k, "model": game.name,
                    "global_step": args.global_step, **policy.meta["metrics"]})
        return 0
    print(f"{'seed':>4} {'rounds':>6} {'selection welfare':>20} {'Nash gap':>9} {'global':>8} {'local':>8} "
          f"{'seconds':>8}  stop")
    for row in rows:
        gap = [_or_dash(row[key]) for key in ("nash_gap", "global_gain", "local_gain")]
        print(f"{row['seed']:>4} {row['rounds']:>6} {row['welfare']:>11.3f} +- {row['welfare_ci']:<5.2f} "
              f"{gap[0]:>9} {gap[1]:>8} {gap[2]:>8} {row['seconds']:>8.1f}  {row['stop_reason']}")
    print(f"kept seed {kept_seed} (best selection welfare, the authors' rule); eta = {result.eta:.4g}; "
          f"global step: {args.global_step}; observer: {observer.describe()}")
    if result.start is not None:
        print(f"start ({result.start['global_init']}): {result.start['detail']}; selection welfare "
              f"{result.start['welfare']:.3f} +- {result.start['welfare_ci']:.2f}")
    print(f"wrote {out} (policy id {policy.policy_id})")
    return 0


def evaluate(args) -> int:
    from tqdm import tqdm

    from altmarl_ros.core.fa_policy import load_fa_policy

    game = _game(args)
    _configure_jax()
    _refuse_tabular_flags(args, TABULAR_EVALUATE_FLAGS, game)
    policy = load_fa_policy(args.policy, game=game)
    n = game.default_n if args.n is None else args.n
    horizon = game.horizon_eval if args.horizon is None else args.horizon
    seeds = 10 if args.seeds is None else args.seeds
    rollouts = 30 if args.rollouts is None else args.rollouts
    if policy.k > n:
        raise UsageError(f"--n {n} is below the policy's k = {policy.k}")
    from altmarl_ros.core import work
    from altmarl_ros.core.fa_observer import FRESH, particles

    runs = n + particles(policy.observer, policy.k) + (0 if args.no_baselines else 2 * n)
    work.require(f"evaluating n = {n} x horizon {horizon} x {seeds} seeds x {rollouts} rollouts "
                 f"({1 if args.no_baselines else 3} pairs)",
                 {"FA agent-steps": float(runs) * horizon * seeds * rollouts},
                 "use a smaller --n, --horizon, --seeds or --rollouts (or --no-baselines)")
    from altmarl_ros.core.evaluate import mean_ci95
    from altmarl_ros.core.fa_alternating import mode_accuracy, protocol_returns

    pairs = {"policy": ("greedy", "greedy")}
    if not args.no_baselines:
        pairs.update(uniform_random=("uniform", "uniform"), random_dispatcher=("uniform", "greedy"))
    found = {}
    started = time.perf_counter()
    with tqdm(total=len(pairs), desc="evaluate", unit="pair", file=sys.stderr,
              disable=args.quiet or not sys.stderr.isatty()) as bar:
        for name, (global_mode, local_mode) in pairs.items():
            bar.set_postfix_str(name)
            mine = name == "policy"  # the baselines' dispatcher is uniform: no observer to run
            arrays = protocol_returns(game, policy.k, policy.global_params, policy.local_params, n=n,
                                      horizon=horizon, seeds=seeds, rollouts_=rollouts, seed=args.seed,
                                      global_inputs=policy.meta["global_inputs"], global_mode=global_mode,
                                      local_mode=local_mode, observer=policy.observer if mine else FRESH,
                                      estimation_error=mine)
            returns = arrays["welfare"]
            mean, ci = mean_ci95(returns)
            found[name] = {"welfare": mean, "welfare_ci": ci, "seed_means_std": float(returns.mean(axis=1).std()),
                           "rollouts_std": float(returns.std())}
            if mine:
                found[name]["estimation_error"] = float(arrays["estimation_error"].mean())
            bar.update()
    # the authors' privileged label exists on their model only (a continuous ring has no "mode" to name)
    accuracy = mode_accuracy(game, policy.k, policy) if hasattr(game, "mode_bin") else None
    seconds = time.perf_counter() - started
    training = policy.meta["metrics"]
    if args.json:
        print_json({"policy": str(args.policy), "policy_id": policy.policy_id, "k": policy.k, "model": game.name,
                    "model_hash": game.content_hash(), "n": n, "horizon": horizon, "seeds": seeds,
                    "rollouts": rollouts, "seed": args.seed, "observer": policy.meta["observer"],
                    **found.pop("policy"), "mode_accuracy": accuracy,
                    "nash_gap_training": training.get("nash_gap"), "baselines": found, "seconds": seconds})
        return 0
    print(f"policy {args.policy} (id {policy.policy_id}, k = {policy.k}, global step "
          f"{policy.meta['config'].get('global_rule')}) on continuous model {game.name} ({game.content_hash()})")
    print(f"n = {n}, horizon {horizon}, {seeds} seeds x {rollouts} rollouts from seed {args.seed}, {seconds:.0f} s")
    print()
    mine = found.pop("policy")
    print(f"welfare        {mine['welfare']:.3f} +- {mine['welfare_ci']:.3f}  (95% CI, Student t over "
          f"{seeds * rollouts} rollouts)")
    print(f"               {mine['welfare']:.3f} +- {mine['seed_means_std']:.3f}  (std of the {seeds} per-seed "
          "means: the authors' statistic)")
    print(f"observer       {policy.observer.describe()}: its estimate is {mine['estimation_error']:.3f} from the "
          "fleet's histogram (total variation, mean over steps)")
    if accuracy is not None:
        print(f"mode accuracy  {100 * accuracy:.1f}%  (greedy global action = the start's most populated bin, "
              "1000 fresh starts: the first decision, one k-sample whatever the observer)")
    gap, global_gain, local_gain = (_or_dash(training.get(key)) for key in ("nash_gap", "global_gain", "local_gain"))
    print(f"Nash gap       {gap}  (training's estimate: global gain {global_gain}, local gain {local_gain}; "
          "approximate best responses, so lower bounds)")
    print_baselines(mine["welfare"], [(name, est["welfare"], est["welfare_ci"], f"{est['rollouts_std']:.3f}")
                                      for name, est in found.items()], "std of the rollouts")
    if found:
        print("(uniform_random: both sides uniform; random_dispatcher: a uniform global action with the "
              "policy's locals)")
    return 0
