"""`altmarl evaluate`: welfare +- 95% CI of a trained policy, its Nash gap, and the baselines."""
import sys
from pathlib import Path

from altmarl_ros.commands import comparison_lines, print_json
from altmarl_ros.commands._flags import INT64_MAX, count, real
from altmarl_ros.commands._world import add_world_arguments, open_world, print_baselines

GAP_TOL = 1e-6  # core.evaluate.nash_gap's default tolerance
HELP = "evaluate a trained policy: n-agent rollouts (welfare +- 95% CI), Nash gap, baselines"


def add_arguments(parser):
    add_world_arguments(parser, "model file (.npz or .yaml) the policy was trained on, or the built-in continuous "
                                "model (setup_b)",
                        "run the policy in the continuous simulator of this scenario (n robots, fresh k-subsets "
                        "each epoch), baselines likewise; Nash gap on the scenario's estimated model")
    parser.add_argument("--policy", type=Path, required=True, metavar="POLICY",
                        help="policy file written by `altmarl train`")
    parser.add_argument("--n", type=count(1), default=None,
                        help="local agents in each rollout (default 1000; a continuous model's own, 500 for setup_b)")
    parser.add_argument("--horizon", type=count(1), default=None,
                        help="decision epochs per rollout (default 100; a continuous model's evaluation horizon, 50)")
    parser.add_argument("--seeds", type=count(1), default=None, help="independent seeds (default 15; continuous: 10)")
    parser.add_argument("--rollouts", type=count(1), default=None, help="rollouts per seed (default 50; continuous: "
                                                                        "30)")
    parser.add_argument("--seed", type=count(0, INT64_MAX), default=0, help="root seed of every random stream "
                                                                            "(default 0)")
    parser.add_argument("--dirichlet-alpha", type=real(0, above=True), default=None, metavar="ALPHA",
                        help="start each rollout's locals iid from p ~ Dirichlet(ALPHA) instead of "
                             "the model's mu0_l (the authors' evaluator uses 0.3)")
    parser.add_argument("--reply-loss", type=real(0, 1, below=True), default=0.0, metavar="P",
                        help="probability that a sampled robot's reply to the coordinator's state request is "
                             "lost (default 0); each decision uses the replies that arrive (the baselines "
                             "read none)")
    parser.add_argument("--m", type=count(1), default=None,
                        help="samples per Bellman backup of the surrogate in which the global gain is "
                             "measured (default: the policy's training m, else 30)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _gap_surrogate(args, policy):
    """(m, seed) of the m-sample surrogate that measures the global gain: the policy's own
    training surrogate, since the gain is relative to that operator's draws."""
    trained = policy.meta["config"]
    return (args.m if args.m is not None else trained.get("m", 30)), trained.get("seed", args.seed)


def _check_work(args, world, policy, m: int, names) -> None:
    """Refuse, before any rollout, an evaluation beyond the work ceiling (core.work): the policy's and
    every baseline candidate's rollouts, and the Nash gap's G-LEARN sweeps to its tolerance."""
    import math

    from altmarl_ros.core import work
    from altmarl_ros.core.baselines import BASELINES, scoring_runs
    from altmarl_ros.core.counts import n_count_vectors

    game = world.game
    runs = 1 + sum(scoring_runs(BASELINES[name].candidates(game, policy.k)) for name in names)
    steps = float(args.n) * args.horizon * args.seeds * args.rollouts * runs * world.steps_per_epoch
    sweeps = min(10_000, math.ceil(math.log(GAP_TOL) / math.log(game.gamma))) if game.gamma > 0 else 1
    gathers = float(game.n_sg) * n_count_vectors(policy.resolution, game.n_sl) * m * sweeps
    work.require(f"evaluating n = {args.n} x horizon {args.horizon} x {args.seeds} seeds x {args.rollouts} "
                 f"rollouts ({runs} policies with the baselines) and the Nash gap (m = {m})",
                 {world.rollout_unit: steps, "G-LEARN gathers": gathers},
                 "use a smaller --n, --horizon, --seeds or --rollouts (or --no-baselines)")


def evaluate_policy(args, world, policy, names):
    """(welfare, Nash gap, baselines) of `policy` in `world` with the flags' rollout sizes, under a progress bar."""
    from tqdm import tqdm

    from altmarl_ros.core.evaluate import nash_gap
    from altmarl_ros.core.world import policy_welfare

    m, gap_seed = _gap_surrogate(args, policy)
    _check_work(args, world, policy, m, names)
    sizes = dict(n=args.n, horizon=args.horizon, seeds=args.seeds, rollouts=args.rollouts, seed=args.seed)
    with tqdm(total=world.progress_total(policy.k, names, **sizes), desc="evaluate", unit="step", file=sys.stderr,
              disable=args.quiet or not sys.stderr.isatty()) as bar:
        def advance(done, total):
            bar.update(1)

        bar.set_postfix_str("policy")
        welfare = policy_welfare(world, policy, progress=advance, reply_loss=args.reply_loss, **sizes)
        bar.set_postfix_str("Nash gap")
        gap = nash_gap(world.game, policy.pi_g, policy.pi_l, policy.resolution, m=m, seed=gap_seed)
        found = world.baselines(policy.k, names, progress=advance, announce=bar.set_postfix_str, **sizes)
    return welfare, gap, found


def run(args) -> int:
    from altmarl_ros.commands import _continuous
    from altmarl_ros.core.baselines import BASELINES
    from altmarl_ros.core.world import best_blind

    if _continuous.is_continuous(args):
        return _continuous.evaluate(args)
    for name, default in (("n", 1000), ("horizon", 100), ("seeds", 15), ("rollouts", 50)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    world = open_world(args, "evaluation")
    policy = world.load_policy(args.policy)
    world = world.of_policy(policy)
    welfare, gap, found = evaluate_policy(args, world, policy, () if args.no_baselines else tuple(BASELINES))
    blind = best_blind(found)
    if args.json:
        print_json(_report_json(args, world, policy, welfare, gap, found, blind))
    else:
        _print_report(args, world, policy, welfare, gap, found, blind)
    return 0


def _report_json(args, world, policy, welfare, gap, found, blind) -> dict:
    from altmarl_ros.core.world import comparison

    m, gap_seed = _gap_surrogate(args, policy)
    return {
        "welfare": welfare.mean, "welfare_ci": welfare.ci95,
        "nash_gap": gap.gap, "global_gain": gap.global_gain, "local_gain": gap.local_gain,
        "gap_m": m, "gap_seed": gap_seed,
        "baselines": {name: est.mean for name, est in found.items()},
        "baselines_ci": {name: est.ci95 for name, est in found.items()},
        "baselines_detail": {name: est.detail for name, est in found.items()},
        "policy": str(args.policy), "policy_id": policy.policy_id, "k": policy.k,
        "observer": policy.meta["observer"], "estimation_error": welfare.estimation_error,
        "reply_loss": args.reply_loss, "replies_per_decision": welfare.replies,
        **(comparison(welfare, *blind) if blind else {}),
        "model": world.evaluation_label, "model_hash": world.game.content_hash(),
        "n": args.n, "horizon": args.horizon, "seeds": args.seeds, "rollouts": args.rollouts, "seed": args.seed,
        "dirichlet_alpha": args.dirichlet_alpha,
        "agent_steps": welfare.agent_steps, "agent_steps_per_second": welfare.agent_steps_per_second,
    }


def _print_report(args, world, policy, welfare, gap, found, blind) -> None:
    m, gap_seed = _gap_surrogate(args, policy)
    k = policy.k
    print(f"policy {args.policy} (id {policy.policy_id}, k = {k}) on model {world.evaluation_label} "
          f"({world.game.content_hash()})")
    print(f"observer: {policy.observer.describe()}")
    print(f"n = {args.n}, horizon {args.horizon}, {args.seeds} seeds x {args.rollouts} rollouts, "
          f"seed {args.seed}, start {world.start}: {welfare.agent_steps:.3g} agent-steps at "
          f"{welfare.agent_steps_per_second:.3g}/s")
    print()
    print(f"welfare    {welfare.mean:.3f} +- {welfare.ci95:.3f}  (95% CI, Student t over {welfare.returns.size} "
          f"rollouts; observer's mean TV error {welfare.estimation_error:.3f})")
    if args.reply_loss:
        print(f"reply loss {args.reply_loss:g}: each sampled robot's reply is lost with that probability; decisions "
              f"used {welfare.replies:.2f} of k = {k} replies on average (the baselines read none)")
    print(f"Nash gap   {gap.gap:.4g}  (global gain {gap.global_gain:.4g} in the m = {m}, seed {gap_seed} "
          f"surrogate; local gain {gap.local_gain:.4g})")
    print_baselines(welfare.mean, [(name, est.mean, est.ci95, est.detail) for name, est in found.items()], "chose")
    if found:
        print()
        for line in comparison_lines(welfare, *blind):
            print(line)
