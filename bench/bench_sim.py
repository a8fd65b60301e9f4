"""Robot-steps per second of the kinematic fleet simulator (one core).

A robot-step is one control period of one robot: the ring controller, actuation
faults and noise, limits, and the exact arc integration. Run with one numba thread:

    NUMBA_NUM_THREADS=1 .venv/bin/python bench/bench_sim.py [--scenario NAME] [--epochs E]

Prints, for n = 1000 and 2000 workers (+ the depot): offline `step_epoch` throughput
(the controller runs inside the kernel) and commanded `step_control` throughput
(the ROS fleet_sim path). Target >= 2e7 robot-steps/s for step_epoch.
"""
import argparse
import time

import numpy as np

from altmarl_sim.fleet import FleetSim
from altmarl_sim.scenario import load_scenario


def best_rate(run, robot_steps, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return robot_steps / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="warehouse_ring")
    parser.add_argument("--epochs", type=int, default=20, help="decision epochs per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings; the best is reported")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    rng = np.random.default_rng(0)
    steps = scenario.timing.steps_per_epoch
    print(f"scenario {scenario.name} ({scenario.content_hash()}): {scenario.ring.n_zones} zones, "
          f"{steps} control steps per epoch")
    for n in (1000, 2000):
        sim = FleetSim(scenario, n=n, seed=0)
        actions = rng.integers(0, 3, size=(args.epochs, n))
        targets = rng.integers(0, scenario.ring.n_zones, size=args.epochs)
        sim.step_epoch(actions[0], int(targets[0]))  # compile / load the cache

        def epochs():
            for e in range(args.epochs):
                sim.step_epoch(actions[e], int(targets[e]))

        rate = best_rate(epochs, args.epochs * steps * (n + 1), args.repeats)
        print(f"n={n:5d} step_epoch   {rate:10.3e} robot-steps/s")

        v = rng.uniform(-1, 1, n + 1)
        w = rng.uniform(-1, 1, n + 1)
        sim.set_commands(v, w)
        sim.step_control()

        def controls():
            for _ in range(args.epochs * steps):
                sim.step_control()

        rate = best_rate(controls, args.epochs * steps * (n + 1), args.repeats)
        print(f"n={n:5d} step_control {rate:10.3e} robot-steps/s "
              f"({1e6 * (n + 1) / rate:.0f} us per control period)")


if __name__ == "__main__":
    main()
