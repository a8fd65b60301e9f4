"""Robot-steps per second of the kinematic fleet simulator (one core).

A robot-step is one control period of one robot: the ring controller, actuation
faults and noise, limits, and the exact arc integration. Run with one numba thread:

    NUMBA_NUM_THREADS=1 .venv/bin/python bench/bench_sim.py [--scenario NAME] [--epochs E]

Prints, for n = 1000 and 2000 workers (+ the depot): offline `step_epoch` throughput
(the controller runs inside the kernel) and commanded `step_control` throughput
(the ROS fleet_sim path), as wall-clock and CPU-time rates. Target >= 2e7
robot-steps/s for step_epoch. Then the time to estimate the scenario's tabular model
(altmarl_sim.estimate, default draws per pair, no cache).
"""
import argparse
import time

import numpy as np

from altmarl_sim.estimate import DEFAULT_SAMPLES_PER_PAIR, estimate_model
from altmarl_sim.fleet import FleetSim
from altmarl_sim.scenario import load_scenario


def best_rates(run, robot_steps, repeats):
    """(wall-clock rate, CPU-time rate), best of `repeats`: on a shared machine the
    CPU-time rate is what one core delivers; the wall-clock one includes waiting."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall = min(wall, time.perf_counter() - start_wall)
        cpu = min(cpu, time.process_time() - start_cpu)
    return robot_steps / wall, robot_steps / cpu


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

        def epochs(sim=sim, actions=actions, targets=targets):
            for e in range(args.epochs):
                sim.step_epoch(actions[e], int(targets[e]))

        wall, cpu = best_rates(epochs, args.epochs * steps * (n + 1), args.repeats)
        print(f"n={n:5d} step_epoch   {wall:10.3e} robot-steps/s wall, {cpu:10.3e} per CPU-second")

        v = rng.uniform(-1, 1, n + 1)
        w = rng.uniform(-1, 1, n + 1)
        sim.set_commands(v, w)
        sim.step_control()

        def controls(sim=sim):
            for _ in range(args.epochs * steps):
                sim.step_control()

        wall, cpu = best_rates(controls, args.epochs * steps * (n + 1), args.repeats)
        print(f"n={n:5d} step_control {wall:10.3e} robot-steps/s wall, {cpu:10.3e} per CPU-second "
              f"({1e6 * (n + 1) / wall:.0f} us per control period)")

    estimate_model(scenario, samples_per_pair=10, runs_dir=None)  # compile / load the cache
    pairs = scenario.sizes[2] * scenario.sizes[0] * scenario.sizes[3] + scenario.sizes[0] * scenario.sizes[1]
    draws = pairs * DEFAULT_SAMPLES_PER_PAIR
    wall, cpu = best_rates(lambda: estimate_model(scenario, runs_dir=None), draws, min(args.repeats, 3))
    print(f"estimate_model: {DEFAULT_SAMPLES_PER_PAIR} draws x {pairs} pairs in {draws / wall:.2f} s wall, "
          f"{draws / cpu:.2f} s CPU ({wall:.3g} one-epoch draws/s wall)")


if __name__ == "__main__":
    main()
