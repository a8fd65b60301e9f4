"""`altmarl evaluate`: welfare +- 95% CI of a trained policy, its Nash gap, and the baselines."""
import json
import sys
from pathlib import Path

HELP = "evaluate a trained policy: n-agent rollouts (welfare +- 95% CI), Nash gap, baselines"


def add_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, metavar="FILE",
                        help="model file (.npz or .yaml) the policy was trained on")
    # Other sources (e.g. --scenario NAME) join this group; see _load_game.
    parser.add_argument("--policy", type=Path, required=True, metavar="POLICY",
                        help="policy file written by `altmarl train`")
    parser.add_argument("--n", type=int, default=1000, help="local agents in each rollout (default 1000)")
    parser.add_argument("--horizon", type=int, default=100, help="decision epochs per rollout (default 100)")
    parser.add_argument("--seeds", type=int, default=15, help="independent seeds (default 15)")
    parser.add_argument("--rollouts", type=int, default=50, help="rollouts per seed (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="root seed of every random stream (default 0)")
    parser.add_argument("--dirichlet-alpha", type=float, default=None, metavar="ALPHA",
                        help="start each rollout's locals iid from p ~ Dirichlet(ALPHA) instead of "
                             "the model's mu0_l (the authors' evaluator uses 0.3)")
    parser.add_argument("--m", type=int, default=30,
                        help="samples per Bellman backup in the global best response (default 30)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _load_game(args):
    """(game, label) of the chosen source."""
    from altmarl_ros.core.model import load_model

    return load_model(args.model), str(args.model)


def run(args) -> int:
    from tqdm import tqdm

    from altmarl_ros.core.evaluate import BASELINES, baselines, nash_gap, rollout_welfare
    from altmarl_ros.core.policy import load_policy

    game, label = _load_game(args)
    policy = load_policy(args.policy, game=game)
    k = policy.k
    rollout_args = dict(n=args.n, horizon=args.horizon, seeds=args.seeds, rollouts=args.rollouts,
                        seed=args.seed, dirichlet_alpha=args.dirichlet_alpha)
    names = () if args.no_baselines else BASELINES
    with tqdm(total=2 + len(names), desc="evaluate", unit="step", file=sys.stderr,
              disable=args.quiet or not sys.stderr.isatty()) as bar:
        bar.set_postfix_str("rollouts")
        welfare = rollout_welfare(game, policy.pi_g, policy.pi_l, k, **rollout_args)
        bar.update()
        bar.set_postfix_str("Nash gap")
        gap = nash_gap(game, policy.pi_g, policy.pi_l, k, m=args.m, seed=args.seed)
        bar.update()
        found = {}
        for name in names:
            bar.set_postfix_str(name)
            found.update(baselines(game, k, names=(name,), **rollout_args))
            bar.update()
    if args.json:
        print(json.dumps({
            "welfare": welfare.mean, "welfare_ci": welfare.ci95,
            "nash_gap": gap.gap, "global_gain": gap.global_gain, "local_gain": gap.local_gain,
            "baselines": {name: est.mean for name, est in found.items()},
            "baselines_ci": {name: est.ci95 for name, est in found.items()},
            "baselines_detail": {name: est.detail for name, est in found.items()},
            "policy": str(args.policy), "policy_id": policy.policy_id, "k": k,
            "model": label, "model_hash": game.content_hash(), **rollout_args,
            "agent_steps": welfare.agent_steps, "agent_steps_per_second": welfare.agent_steps_per_second,
        }))
        return 0
    returns = welfare.returns.size
    print(f"policy {args.policy} (id {policy.policy_id}, k = {k}) on model {label} ({game.content_hash()})")
    init = "mu0" if args.dirichlet_alpha is None else f"Dirichlet({args.dirichlet_alpha:g}) locals"
    print(f"n = {args.n}, horizon {args.horizon}, {args.seeds} seeds x {args.rollouts} rollouts, "
          f"seed {args.seed}, start {init}: {welfare.agent_steps:.3g} agent-steps at "
          f"{welfare.agent_steps_per_second:.3g}/s")
    print()
    print(f"welfare    {welfare.mean:.3f} +- {welfare.ci95:.3f}  (95% CI, Student t over {returns} rollouts)")
    print(f"Nash gap   {gap.gap:.4g}  (global gain {gap.global_gain:.4g}, local gain {gap.local_gain:.4g})")
    if found:
        print()
        print(f"{'baseline':<22} {'welfare +- 95% CI':<18}  {'policy - baseline':>17}  chose")
        for name, est in found.items():
            print(f"{name:<22} {est.mean:>9.3f} +- {est.ci95:<5.3f}  {welfare.mean - est.mean:>+17.3f}  "
                  f"{est.detail}")
    return 0
