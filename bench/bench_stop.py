"""How fast the operator's fleet-wide stop reaches every robot.

    .venv/bin/python bench/bench_stop.py [--n 200] [--trials 5]

fleet_sim runs in this process (so the commands every robot last received can
be read directly); the coordinator and the local agents run as their own
processes, as under `altmarl launch --processes`. Each trial waits until the
robots drive, calls altmarl/stop (std_srvs/Trigger) and measures the wall time
from the call until fleet_sim holds a zero command for every robot and the
depot, and how many simulator steps ran in between; then altmarl/resume.
The target: within one control period (50 ms at the shipped scenario's rate).
Figures: docs/operations.md, "Operator controls".
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
from _herding_policy import herding_policy  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()

    import rclpy
    from rclpy.context import Context
    from std_srvs.srv import Trigger

    from altmarl_ros.core.policy import save_policy
    from altmarl_ros.names import RESUME_SERVICE, STOP_SERVICE
    from altmarl_ros.nodes._ros import make_executor
    from altmarl_ros.nodes.fleet_sim import FleetSimNode
    from altmarl_ros.supervisor import warm_up_kernels
    from altmarl_sim.scenario import load_scenario

    warm_up_kernels()
    scenario = load_scenario("warehouse_ring")
    policy = Path(tempfile.mkdtemp()) / "policy.npz"
    save_policy(herding_policy(scenario, args.k), policy)
    context = Context()
    rclpy.init(context=context)
    executor = make_executor(context)
    sim = FleetSimNode({"n_robots": args.n, "cmd_vel_timeout": 60.0}, context=context)
    operator = rclpy.create_node("operator", context=context)
    for node in (sim, operator):
        executor.add_node(node)
    params = ["-p", f"n_robots:={args.n}", "-p", f"k:={args.k}", "-p", f"policy:={policy}", "-p", "use_sim_time:=true"]
    children = [subprocess.Popen([sys.executable, "-c", f"import sys; from altmarl_ros.nodes.{kind} import main; "
                                  "sys.exit(main())", "--ros-args"] + params)
                for kind in ("local_agents", "coordinator")]

    def spin_until(done, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            executor.spin_once(timeout_sec=0.001)
        return done()

    clients = {service: operator.create_client(Trigger, service) for service in (STOP_SERVICE, RESUME_SERVICE)}

    def call(service):
        return clients[service].call_async(Trigger.Request())

    try:
        for service, client in clients.items():  # discovered before any timing starts
            assert spin_until(client.service_is_ready, 60.0), f"{service} not found"
        period = sim.sim.control_period
        print(f"n = {args.n} robots + depot, control period {period * 1000:g} ms, "
              f"coordinator and local agents in their own processes; {time.strftime('%Y-%m-%d')}")
        print(f"{'trial':>5} {'stop -> all zero (ms)':>22} {'sim steps between':>18} {'answer (ms)':>12}")
        latencies = []
        for trial in range(args.trials):
            assert spin_until(lambda: np.abs(sim.commands[:args.n, 0]).max() > 0.05, 120.0), "robots never drove"
            steps, started = sim.steps, time.perf_counter()
            future = call(STOP_SERVICE)
            assert spin_until(lambda: np.abs(sim.commands).max() == 0.0, 10.0), "not every robot got zero"
            latency = time.perf_counter() - started
            between = sim.steps - steps
            spin_until(future.done, 10.0)
            answered = time.perf_counter() - started
            latencies.append(latency)
            print(f"{trial:>5} {latency * 1000:>22.1f} {between:>18} {answered * 1000:>12.1f}", flush=True)
            resumed = call(RESUME_SERVICE)
            spin_until(resumed.done, 10.0)
        print(f"median {np.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
              f"(control period {period * 1000:g} ms)")
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=20)
        executor.shutdown()
        sim.destroy_node()
        operator.destroy_node()
        rclpy.try_shutdown(context=context)


if __name__ == "__main__":
    main()
