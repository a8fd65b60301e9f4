"""`altmarl render`: a PNG or animated GIF of a fleet rollout in the kinematic simulator."""
from pathlib import Path
from altmarl_ros.commands._flags import INT64_MAX, count
from altmarl_ros.errors import UsageError

HELP = "draw a fleet rollout in the simulator: zones, workers by zone, the k sampled, the depot (PNG/GIF)"


def add_arguments(parser):
    parser.add_argument("--scenario", default="warehouse_ring", metavar="NAME",
                        help="scenario name (config/scenarios/NAME.yaml) or YAML path "
                             "(default warehouse_ring)")
    parser.add_argument("--policy", type=Path, metavar="POLICY",
                        help="policy trained for this scenario (default: every agent acts "
                             "uniformly at random)")
    parser.add_argument("--n", type=count(1), default=200, help="worker robots (default 200)")
    parser.add_argument("--k", type=count(1), default=None,
                        help="workers the depot samples each epoch (default: the policy's k, or 10)")
    parser.add_argument("--epochs", type=count(1), default=20, help="decision epochs to run (default 20)")
    parser.add_argument("--seed", type=count(0, INT64_MAX), default=0, help="seed of the rollout (default 0)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE",
                        help="fleet.png (the last epoch) or fleet.gif (one frame per epoch)")


def run(args) -> int:
    import numpy as np

    from altmarl_ros.core import work
    from altmarl_ros.core.atomic import check_output
    from altmarl_ros.core.policy import load_policy
    from altmarl_sim.render import FORMATS, record_frames, render
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    check_output(args.out, [scenario.source, args.policy])
    if args.out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out {args.out}: picture files end in {' or '.join(FORMATS)}")
    steps = max(1, round(scenario.timing.decision_epoch / scenario.timing.control_period))
    frames = args.epochs if args.out.suffix.lower() == ".gif" else 1
    work.require(f"rendering n = {args.n} robots over {args.epochs} epochs ({frames} frames)",
                 {"robot control steps": float(args.n) * args.epochs * steps,
                  "frames drawn": frames, "robots drawn": float(args.n + 1) * frames}, "use a smaller --n or --epochs")
    if args.policy is None:
        n_sg, _, n_sl, n_al = scenario.sizes
        pi_g, pi_l = None, np.full((n_sl, n_sg, n_al), 1.0 / n_al)
        k = 10 if args.k is None else args.k
        label = "uniformly random agents"
    else:
        policy = load_policy(args.policy, k=args.k, scenario_hash=scenario.content_hash())
        pi_g, pi_l, k = policy.pi_g, policy.pi_l, policy.k
        label = f"policy {args.policy} (id {policy.policy_id}, observer {policy.observer.name})"
        observed = dict(observer=policy.observer, prediction=policy.prediction)
    import sys

    from tqdm import tqdm

    with tqdm(total=args.epochs, desc="render", unit="epoch", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        frames = record_frames(scenario, pi_g, pi_l, k, args.n, args.epochs, args.seed,
                               progress=lambda done, total: bar.update(1),
                               **(observed if args.policy is not None else {}))
    out = render(scenario, frames, args.out)
    print(f"{out}: {scenario.name}, n = {args.n}, k = {k}, {args.epochs} epochs, {label}")
    return 0
