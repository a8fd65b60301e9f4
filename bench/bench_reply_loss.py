"""What lost replies and early state requests cost the demo policy: welfare against reply loss p, on the
tabular model and in the continuous simulator, and against the state lead in the simulator (issue 22).

    .venv/bin/python bench/bench_reply_loss.py [--policy runs/warehouse_ring_hard/policy.npz [more ...]]
        [--n 200] [--horizon 60] [--rollouts 400] [--losses 0 0.1 0.3 0.5] [--leads 0 2] [--seed 0]

A coordinator that asks k robots for their states decides with the replies that arrive: each is lost
with probability p (core.evaluate's and altmarl_sim.rollout's `reply_loss`: the observer gets m < k
samples; fresh keeps its last a_g when none arrive). Its request goes out before the epoch's end, so
the zones it reads are `state_lead` control steps older than the decision (simulator only). For each
p: welfare mean +- 95% CI, the replies a decision used, and the paired difference (+- 95% CI) from
p = 0 on the same streams (same seed: same starts; in the simulator the same noise until decisions
differ). Model: the scenario's estimated model the policy was trained on (runs/<scenario>/model.npz),
--rollouts rollouts. Then at p = 0 each state lead against lead 0, paired. Run ./run.sh once first: it
trains the policy. Figures: docs/evaluation.md, "Reply loss and state lead".
"""
import argparse
import time

from altmarl_ros.core.evaluate import mean_ci95, policy_welfare
from altmarl_ros.core.policy import load_policy
from altmarl_sim.estimate import DEFAULT_RUNS_DIR, DEFAULT_SAMPLES_PER_PAIR, estimate_model
from altmarl_sim.rollout import policy_sim_welfare
from altmarl_sim.scenario import load_scenario


def row(label: str, found, base) -> str:
    """One table row: welfare +- CI, replies per decision, paired difference from `base` +- CI."""
    change, change_ci = mean_ci95(found.returns - base.returns)
    return (f"{label:<26} {found.mean:9.3f} +- {found.ci95:5.3f}   {found.replies:7.2f}   "
            f"{change:+8.3f} +- {change_ci:5.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="warehouse_ring_hard")
    parser.add_argument("--policy", nargs="+", default=["runs/warehouse_ring_hard/policy.npz"],
                        help="policies of the scenario, each measured in turn (default: the demo's)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--horizon", type=int, default=60)
    parser.add_argument("--rollouts", type=int, default=400)
    parser.add_argument("--losses", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5])
    parser.add_argument("--leads", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    for path in args.policy:
        measure(scenario, load_policy(path, scenario_hash=scenario.content_hash()), args)


def measure(scenario, policy, args):
    """The three tables of one policy."""
    game, _ = estimate_model(scenario, samples_per_pair=policy.meta["config"].get("samples_per_pair",
                                                                                  DEFAULT_SAMPLES_PER_PAIR),
                             runs_dir=DEFAULT_RUNS_DIR)
    rollout_args = dict(n=args.n, horizon=args.horizon, seeds=1, rollouts=args.rollouts, seed=args.seed)
    steps = scenario.timing.steps_per_epoch
    print(f"\nscenario {scenario.name}, policy {policy.policy_id}: {policy.observer.describe()}; n = {args.n}, "
          f"k = {policy.k}, {args.horizon} epochs of {steps} control steps ({scenario.timing.control_period:g} s), "
          f"{args.rollouts} rollouts (seed {args.seed})", flush=True)
    header = f"{'':<26} {'welfare +- 95% CI':>18}   {'replies':>7}   {'paired change +- CI':>19}"
    for where, evaluate in (("model", lambda **extra: policy_welfare(game, policy, **rollout_args, **extra)),
                            ("simulator", lambda **extra: policy_sim_welfare(scenario, policy, **rollout_args,
                                                                             **extra))):
        print(f"\n{where}: reply loss p (vs p = 0)\n{header}", flush=True)
        base = None
        for p in args.losses:
            started = time.perf_counter()
            found = evaluate(reply_loss=p)
            base = found if base is None else base
            print(f"{row(f'p = {p:g}', found, base)}   ({time.perf_counter() - started:.1f} s)", flush=True)
    print(f"\nsimulator: state lead (control steps before the epoch's end; vs lead {args.leads[0]}), p = 0\n"
          f"{header}", flush=True)
    base = None
    for lead in args.leads:
        found = policy_sim_welfare(scenario, policy, **rollout_args, state_lead=lead)
        base = found if base is None else base
        seconds = lead * scenario.timing.control_period
        print(row(f"lead {lead} ({seconds:g} s)", found, base), flush=True)


if __name__ == "__main__":
    main()
