"""The coordinator's two state_sampling modes side by side: what it receives and spends as the fleet grows.

For each mode, fleet size n, k and decision rate, this process (pinned to one core)
runs the real CoordinatorNode; the fleet runs in --fleet-processes child processes
pinned to the other core (test/_synthetic_fleet.py), each for a block of robot ids:
  request: the real StateAnswers of local_agents answering the state requests over
           poses that are always fresh (no simulator);
  subscribe_all: robot_<i>/odom at --odom-rate Hz (20, as fleet_sim), pre-serialised.
The first also publishes depot/odom at 20 Hz (the depot's pose, in both modes). A
fleet is started once per (mode, n) and serves every (k, rate); each configuration
gets a new coordinator (its own Context and DDS participant). Measured over
--seconds of steady state, from just after one decision to just after another:
  in msg/s, in kB/s: robot-state messages the coordinator received and their raw
    sizes (request: replies and membership messages, RequestedStates.bytes_received;
    subscribe_all: odometry, each robot's count x its message size, fixed here);
  in/decision: the same messages per decision (request: about k);
  CPU %: this process's CPU time / wall (all threads: rclpy, DDS, the node);
  latency p50/p99 ms: request: from sending the request to its last reply
    (RequestedStates.replies_in_seconds) plus decide(); subscribe_all: decide();
  loss %: requested replies that had not come when the decision was made;
  recv %: odometry received / offered (n x --odom-rate); sent/s: what the fleet
    processes managed to publish (below offered: the fleet's core is the limit).
Subscribe-all fleets above --one-config-above robots are measured at one (k, rate),
the first k and the last rate: building the coordinator's n subscriptions and
discovering n publishers takes minutes there, and its inbound stream does not depend
on k or the decision rate. The policy is test/_herding_policy's at each k (the lookup
costs the same as a trained one's).

    .venv/bin/python bench/bench_coordinator.py [--modes request subscribe_all] [--robots 100 1000 10000]
        [--k 5 50] [--rates 1 10] [--seconds 8]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))
import _synthetic_fleet  # noqa: E402

PIN_NODE, PIN_FLEET = 0, 1
MODES = ("request", "subscribe_all")


def _pin(cpu: int) -> str:
    if not hasattr(os, "sched_setaffinity") or cpu not in os.sched_getaffinity(0):
        return "unpinned"
    os.sched_setaffinity(0, {cpu})
    return f"cpu {cpu}"


class Fleet:
    """The fleet's child processes for one (mode, n), with what each says it sent ((count, time) lines)."""

    def __init__(self, mode: str, n: int, args):
        kind = "answer" if mode == "request" else "odometry"
        self.processes, self.sent = [], []
        for first, count in _synthetic_fleet.blocks(n, args.fleet_processes):
            proc = subprocess.Popen(_synthetic_fleet.argv(kind, first, count, rate=args.odom_rate, depot=first == 0,
                                                          pin=PIN_FLEET), stdout=subprocess.PIPE, text=True)
            log = []
            threading.Thread(target=self._read, args=(proc, log), daemon=True).start()
            self.processes.append(proc)
            self.sent.append(log)

    def wait_started(self, timeout: float = 120.0) -> None:
        """Until every process has said what it sent once (it is up: imports, nodes, publishers)."""
        deadline = time.monotonic() + timeout
        while not all(self.sent) and time.monotonic() < deadline:
            time.sleep(0.1)

    @staticmethod
    def _read(proc, log):
        for line in proc.stdout:
            if line.startswith("sent "):
                _, count, at = line.split()
                log.append((int(count), float(at)))

    def sent_rate(self, start: float, end: float) -> float:
        """Robot messages/s the processes sent between monotonic times start and end (their nearest reports)."""
        total = 0.0
        for log in self.sent:
            points = np.array(log[:], dtype=np.float64).reshape(-1, 2)
            if len(points) < 2:
                return float("nan")
            a = points[np.argmin(np.abs(points[:, 1] - start))]
            b = points[np.argmin(np.abs(points[:, 1] - end))]
            total += (b[0] - a[0]) / (b[1] - a[1]) if b[1] > a[1] else float("nan")
        return total

    def close(self):
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            proc.wait(timeout=60)


def _odometry_bytes(node, n: int) -> int:
    """Robot odometry bytes received so far: per robot, messages x its (fixed) message size."""
    store = node.poses.messages
    sizes = np.array([len(store.raw(slot) or b"") for slot in range(n)], dtype=np.int64)
    return int((store.received_count[:n] * sizes).sum())


def _snapshot(node, mode: str, n: int) -> dict:
    states = node.states
    snap = {"t": time.monotonic(), "cpu": time.process_time(), "epoch": node.epoch,
            "msgs": states.messages_received, "skipped": node.skipped_decisions}
    if mode == "request":
        snap.update(bytes=states.bytes_received, replied=states.replied, missed=states.missed)
    else:
        snap.update(bytes=_odometry_bytes(node, n))
    return snap


def _spin_to_next_decision(executor, node, timeout: float) -> None:
    epoch, deadline = node.epoch, time.monotonic() + timeout
    while node.epoch == epoch and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)


def measure(mode: str, n: int, k: int, rate: float, fleet: Fleet, policy_path: str, args) -> dict:
    import rclpy
    from rclpy.context import Context

    from altmarl_ros.nodes._ros import make_executor
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    context = Context()
    rclpy.init(context=context)
    rclpy.logging.set_logger_level("coordinator", rclpy.logging.LoggingSeverity.ERROR)
    built = time.monotonic()
    node = CoordinatorNode({"policy": policy_path, "n_robots": n, "k": k, "decision_period": 1.0 / rate,
                            "state_sampling": mode, "odom_timeout": 0.5}, context=context)
    row = {"mode": mode, "n": n, "k": k, "rate": rate, "build_s": time.monotonic() - built}
    executor = make_executor(context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + args.discovery_timeout
        while node.states.present(node.get_clock().now().nanoseconds) < n and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        row["present"] = node.states.present(node.get_clock().now().nanoseconds)
        row["discovery_s"] = time.monotonic() - built - row["build_s"]
        warm_until = time.monotonic() + max(1.0, 2.0 / rate)
        while (node.epoch < 2 or time.monotonic() < warm_until) and time.monotonic() < deadline + 30:
            executor.spin_once(timeout_sec=0.01)
        _spin_to_next_decision(executor, node, 5.0 / rate)
        node.tick_seconds.clear()
        if mode == "request":
            node.states.replies_in_seconds.clear()
        before = _snapshot(node, mode, n)
        while time.monotonic() < before["t"] + args.seconds:
            executor.spin_once(timeout_sec=0.01)
        _spin_to_next_decision(executor, node, 5.0 / rate)
        after = _snapshot(node, mode, n)
        ticks = np.array(node.tick_seconds, dtype=np.float64)
        replies_in = np.array(node.states.replies_in_seconds if mode == "request" else [], dtype=np.float64)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    wall = after["t"] - before["t"]
    decisions = after["epoch"] - before["epoch"]
    row.update(wall=wall, decisions=decisions, skipped=after["skipped"] - before["skipped"],
               msgs=(after["msgs"] - before["msgs"]) / wall, bytes=(after["bytes"] - before["bytes"]) / wall,
               per_decision=(after["msgs"] - before["msgs"]) / decisions if decisions else float("nan"),
               cpu=100.0 * (after["cpu"] - before["cpu"]) / wall,
               sent=fleet.sent_rate(before["t"], after["t"]))
    if mode == "request":
        # A request without any reply was decided at its deadline: request_lead after it went out.
        replies_in = np.where(np.isnan(replies_in), node.request_lead, replies_in)
        paired = len(replies_in) == len(ticks)
        latency = replies_in + ticks if paired else replies_in
        asked = (after["replied"] - before["replied"]) + (after["missed"] - before["missed"])
        row.update(loss=100.0 * (after["missed"] - before["missed"]) / max(asked, 1), paired=paired)
    else:
        latency = ticks
        row.update(received=100.0 * row["msgs"] / (n * args.odom_rate))
    latency = latency * 1e3 if latency.size else np.array([np.nan])
    row.update(p50=float(np.percentile(latency, 50)), p99=float(np.percentile(latency, 99)))
    return row


HEADER = (f"{'mode':<13} {'robots':>7} {'k':>3} {'Hz':>3} {'decisions':>9} {'in msg/s':>9} {'in kB/s':>9} "
          f"{'in/decision':>11} {'CPU %':>6} {'p50 ms':>7} {'p99 ms':>7} {'loss %':>6} {'recv %':>6} {'sent/s':>8}")


def format_row(row: dict) -> str:
    request = row["mode"] == "request"
    loss = f"{row['loss']:>6.1f}" if request else f"{'-':>6}"
    received = f"{'-':>6}" if request else f"{row['received']:>6.1f}"
    sent = f"{'-':>8}" if request else f"{row['sent']:>8.0f}"
    per_decision = f"{row['per_decision']:>11.1f}" if row["decisions"] else f"{'-':>11}"
    notes = []
    if row["present"] < row["n"]:
        notes.append(f"{row['n'] - row['present']} robots never heard after {row['discovery_s']:.0f} s")
    if row["build_s"] > 5:
        notes.append(f"node built in {row['build_s']:.0f} s")
    if row["skipped"]:
        notes.append(f"{row['skipped']} skipped decisions")
    if request and not row["paired"]:
        notes.append("latency without decide(): unpaired")
    return (f"{row['mode']:<13} {row['n']:>7} {row['k']:>3} {row['rate']:>3g} {row['decisions']:>9} "
            f"{row['msgs']:>9.1f} {row['bytes'] / 1e3:>9.2f} {per_decision} {row['cpu']:>6.1f} "
            f"{row['p50']:>7.2f} {row['p99']:>7.2f} {loss} {received} {sent}" + (f"  ({'; '.join(notes)})"
                                                                                 if notes else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--robots", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--k", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 10.0], help="decisions per second")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured steady-state seconds per row")
    parser.add_argument("--odom-rate", type=float, default=20.0, help="subscribe_all: odometry Hz per robot")
    parser.add_argument("--fleet-processes", type=int, default=2, help="processes the fleet's robots are split over")
    parser.add_argument("--discovery-timeout", type=float, default=20.0,
                        help="s to wait for every robot to be present before measuring anyway")
    parser.add_argument("--one-config-above", type=int, default=1000,
                        help="subscribe_all fleets larger than this are measured at one (k, rate)")
    args = parser.parse_args()
    if min(args.robots) < max(args.k) or min(args.k) < 1 or min(args.rates) <= 0 or args.fleet_processes < 1:
        parser.error("--robots must be at least the largest --k; --k >= 1, --rates > 0, --fleet-processes >= 1")

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(np.random.default_rng().integers(1, 102)))
    from _herding_policy import herding_policy

    from altmarl_ros.core.policy import save_policy
    from altmarl_sim.scenario import load_scenario

    pinned = _pin(PIN_NODE)
    scenario = load_scenario("warehouse_ring")
    print(f"coordinator: both state_sampling modes; fleet in {args.fleet_processes} processes (cpu {PIN_FLEET}), "
          f"coordinator {pinned}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"{args.seconds:g} s measured per row; subscribe_all odometry {args.odom_rate:g} Hz", flush=True)
    print(HEADER, flush=True)
    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        policies = {k: str(save_policy(herding_policy(scenario, k), os.path.join(tmp, f"k{k}.npz"))) for k in args.k}
        for mode in args.modes:
            for n in args.robots:
                configs = [(k, rate) for k in args.k for rate in args.rates]
                if mode == "subscribe_all" and n > args.one_config_above:
                    configs = configs[len(args.rates) - 1:len(args.rates)]
                fleet = Fleet(mode, n, args)
                try:
                    fleet.wait_started()
                    for k, rate in configs:
                        row = measure(mode, n, k, rate, fleet, policies[k], args)
                        rows.append(row)
                        print(format_row(row), flush=True)
                finally:
                    fleet.close()
    print(f"\nside by side ({time.monotonic() - started:.0f} s in all; load average now "
          f"{os.getloadavg()[0]:.1f}):")
    print(HEADER)
    for row in sorted(rows, key=lambda r: (r["n"], r["k"], r["rate"], r["mode"])):
        print(format_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
