"""The rates behind the work ceiling (core/work.py RATES): each unit of work timed on this machine.

    .venv/bin/python bench/bench_work_rates.py [--ros]

Prints, per unit, the count a small representative run did, its wall seconds and the rate,
next to the rate core/work.py assumes (the estimate of a command is count / rate). The runs:
tabular rollouts (agent-steps), one G-LEARN call at k = 20 on the warehouse model (gathers:
S_g x N_F x m per sweep, as many sweeps as plain value iteration needs, which is what the
estimate counts), continuous-simulator rollouts (robot control steps), a rendered GIF
(frames and robots drawn) and, with --ros, building the sim fleet's nodes in one process (robots
started; ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST on a random domain).
"""
import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def rollouts():
    from altmarl_ros.core.evaluate import rollout_welfare
    from altmarl_ros.core.model import load_model
    from altmarl_ros.core.counts import n_count_vectors

    game = load_model(ROOT / "config" / "models" / "warehouse.yaml")
    k, n, horizon, seeds, count = 10, 20000, 100, 2, 20
    pi_g = np.zeros((game.n_sg, n_count_vectors(k, game.n_sl)), np.int32)
    pi_l = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    run = dict(n=n, horizon=horizon, seeds=seeds, rollouts=count)
    rollout_welfare(game, pi_g, pi_l, k, n=10, horizon=5, seeds=1, rollouts=1)  # compiled before timing
    return "agent-steps", float(n) * horizon * seeds * count, timed(lambda: rollout_welfare(game, pi_g, pi_l, k, **run))


def glearn():
    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.glearn import g_learn
    from altmarl_ros.core.model import load_model

    game = load_model(ROOT / "config" / "models" / "warehouse.yaml")
    k, m, tol = 20, 30, 1e-4
    pi_l = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    g_learn(game, pi_l, 2, m=m, tol=tol)  # compiled before timing
    sweeps = math.ceil(math.log(tol) / math.log(game.gamma))
    gathers = float(game.n_sg) * n_count_vectors(k, game.n_sl) * m * sweeps
    return "G-LEARN gathers", gathers, timed(lambda: g_learn(game, pi_l, k, m=m, tol=tol))


def simulator():
    from altmarl_sim.rollout import sim_rollout_welfare
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario("warehouse_ring")
    n_sg, _, n_sl, n_al = scenario.sizes
    pi_l = np.full((n_sl, n_sg, n_al), 1.0 / n_al)
    steps = max(1, round(scenario.timing.decision_epoch / scenario.timing.control_period))
    n, horizon, count = 1000, 20, 4
    sim_rollout_welfare(scenario, None, pi_l, 5, n=10, horizon=2, seeds=1, rollouts=1)
    seconds = timed(lambda: sim_rollout_welfare(scenario, None, pi_l, 5, n=n, horizon=horizon, seeds=1,
                                                rollouts=count))
    return "robot control steps", float(n) * horizon * count * steps, seconds


def drawing():
    """Frames cost a fixed amount each (the ring, the axes, the GIF frame) plus a little per robot:
    both rates from two fleet sizes."""
    from altmarl_sim.render import record_frames, render
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario("warehouse_ring")
    n_sg, _, n_sl, n_al = scenario.sizes
    pi_l = np.full((n_sl, n_sg, n_al), 1.0 / n_al)
    epochs, sizes = 6, (100, 200000)
    seconds = []
    for n in sizes:
        frames = record_frames(scenario, None, pi_l, 5, n, epochs)
        with tempfile.TemporaryDirectory() as tmp:
            seconds.append(timed(lambda frames=frames: render(scenario, frames, Path(tmp) / "f.gif")))
    per_robot = (seconds[1] - seconds[0]) / ((sizes[1] - sizes[0]) * epochs)
    per_frame = seconds[0] / epochs - per_robot * (sizes[0] + 1)
    return [("frames drawn", float(epochs), per_frame * epochs),
            ("robots drawn", float(sizes[1] + 1) * epochs, per_robot * (sizes[1] + 1) * epochs)]


def ros_start():
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(random.randint(110, 200))
    from altmarl_ros import fleet_plan
    from altmarl_ros.supervisor import FleetRun, warm_up_kernels
    from altmarl_ros.core.policy import save_policy

    sys.path.insert(0, str(ROOT / "test"))
    from _herding_policy import herding_policy  # noqa: E402

    warm_up_kernels()
    n = 200
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "p.npz"
        from altmarl_sim.scenario import load_scenario

        save_policy(herding_policy(load_scenario("warehouse_ring"), k=5), policy)
        fleet = fleet_plan.load_fleet(None, {"n_robots": n, "policy": str(policy), "scenario": "warehouse_ring"})
        specs = fleet_plan.plan_nodes(fleet, "sim")

        def build():
            with FleetRun(specs):
                pass
        return "robots started", float(n), timed(build)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ros", action="store_true", help="also time building the ROS nodes of a 200-robot fleet")
    args = parser.parse_args()
    from altmarl_ros.core.work import RATES

    runs = [rollouts, glearn, simulator, drawing] + ([ros_start] if args.ros else [])
    print(f"{'unit':<22} {'count':>10} {'seconds':>8} {'rate/s':>10} {'assumed':>10}")
    for run in runs:
        measured = run()
        for unit, count, seconds in measured if isinstance(measured, list) else [measured]:
            print(f"{unit:<22} {count:>10.3g} {seconds:>8.2f} {count / seconds:>10.3g} {RATES[unit]:>10.3g}")


if __name__ == "__main__":
    main()
