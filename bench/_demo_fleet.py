"""What the benches that run the demo's fleet in ROS share: their flags, their set-up and one run."""
import argparse
import os
import sys


def fleet_arguments(doc: str, seeds) -> argparse.ArgumentParser:
    """--seeds (fleet seeds), --n, --epochs and --policy (the policy ./run.sh trains)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--policy", default="runs/warehouse_ring_hard/policy.npz")
    return parser


def prepare_ros():
    """Localhost discovery, a ROS domain of this process's own and the nodes' kernels compiled."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from altmarl_ros import supervisor

    supervisor.claim_private_ros_domain()
    supervisor.warm_up_kernels()


def run_demo_fleet(args, label: str, **overrides) -> dict:
    """One real-time run of config/fleet.yaml with `args.n` robots (all nodes in this process); exits with
    a one-line message if fewer than `args.epochs` epochs ran."""
    from altmarl_ros import fleet_plan
    from altmarl_ros.commands.demo import run_fleet

    fleet = fleet_plan.load_fleet(None, {"n_robots": args.n, **overrides})
    result = run_fleet(fleet, args.epochs, processes=False, show=False)
    if result["monitor"].epochs != args.epochs:
        sys.exit(f"{label}: only {result['monitor'].epochs} epochs ran")
    return result
