"""How many robots' 20 Hz odometry the coordinator keeps up with on one core.

For each fleet size n, a second process (pinned to another core when there is
one) publishes robot_0..robot_<n-1>/odom and depot/odom at --rate Hz, as a
fleet would. This process (pinned to one core) runs the real CoordinatorNode
(raw subscriptions, EventsExecutor, k-subset decoding) deciding every
--decision-period seconds, and measures over --seconds of steady state:
  received msg/s vs offered (and vs what the publisher managed to send, which
  falls short when the machine is busy), decision-tick latency p50/p99 (wall time of CoordinatorNode.decide: sample,
  decode k, zones, rank, publish), decisions/s, and this process's CPU %
  (all its threads: rclpy, DDS, the node).
The policy is a random pi_g for warehouse_ring at k = --k (the lookup costs
the same as a trained one's).

    .venv/bin/python bench/bench_coordinator.py [--robots 100 200 500 1000] [--seconds 10]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

PIN_NODE, PIN_PUBLISHER = 0, 1


def _pin(cpu: int) -> str:
    if not hasattr(os, "sched_setaffinity") or cpu not in os.sched_getaffinity(0):
        return "unpinned"
    os.sched_setaffinity(0, {cpu})
    return f"cpu {cpu}"


def publish_fleet(n: int, rate: float) -> None:
    """Child process: n robots + the depot publishing odometry at `rate` Hz until stdin closes."""
    import threading

    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.serialization import serialize_message

    from altmarl_sim.ring import zone_centre
    from altmarl_ros.names import DEPOT_ODOM_TOPIC, base_frame, odom_topic
    from altmarl_ros.nodes._ros import ODOM_QOS, make_executor
    from altmarl_sim.scenario import load_scenario

    _pin(PIN_PUBLISHER)
    ring = load_scenario("warehouse_ring").ring
    rclpy.init()
    node = rclpy.create_node("bench_fleet")
    topics = [odom_topic(i) for i in range(n)] + [DEPOT_ODOM_TOPIC]
    publishers = [node.create_publisher(Odometry, topic, ODOM_QOS) for topic in topics]
    payloads = []  # pre-serialized: the publisher's own cost stays small next to the coordinator's
    for i in range(n + 1):
        msg = Odometry()
        msg.header.frame_id = "odom"
        msg.child_frame_id = base_frame(i)
        x, y = zone_centre(i % ring.n_zones, ring)
        msg.pose.pose.position.x, msg.pose.pose.position.y = float(x), float(y)
        msg.pose.pose.orientation.w = 1.0
        payloads.append(serialize_message(msg))

    sent = [0]

    def publish_all():
        for publisher, payload in zip(publishers, payloads):
            publisher.publish(payload)
        sent[0] += len(payloads)
    node.create_timer(1.0 / rate, publish_all)
    executor = make_executor()
    executor.add_node(node)
    parent_done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), parent_done.set()), daemon=True).start()
    started = time.monotonic()
    while not parent_done.is_set():
        executor.spin_once(timeout_sec=0.2)
    print(f"{sent[0]} {time.monotonic() - started}", flush=True)  # the parent compares with what it got
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


def measure(n: int, args, policy_path: str) -> dict:
    import rclpy
    from rclpy.context import Context

    from altmarl_ros.nodes._ros import make_executor
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    child = subprocess.Popen([sys.executable, __file__, "--publish", str(n), "--rate", str(args.rate)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    context = Context()
    rclpy.init(context=context)
    node = CoordinatorNode({"policy": policy_path, "n_robots": n, "k": args.k,
                            "decision_period": args.decision_period, "odom_timeout": 0.5},
                           context=context)
    node.get_logger().set_level(rclpy.logging.LoggingSeverity.ERROR)
    executor = make_executor(context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 60.0
        while (node.odom.received_count == 0).any() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        silent = int((node.odom.received_count == 0).sum())
        warm_until = time.monotonic() + 2.0
        while time.monotonic() < warm_until:
            executor.spin_once(timeout_sec=0.1)
        received0 = int(node.odom.received_count.sum()) + int(node.depot.received_count.sum())
        epochs0 = node.epoch
        node.tick_seconds.clear()
        cpu0, wall0 = time.process_time(), time.monotonic()
        end = wall0 + args.seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        wall = time.monotonic() - wall0
        cpu = time.process_time() - cpu0
        received = int(node.odom.received_count.sum()) + int(node.depot.received_count.sum()) - received0
        ticks = np.array(node.tick_seconds) * 1e3 if node.tick_seconds else np.array([np.nan])
        row = {"n": n, "offered": (n + 1) * args.rate, "received": received / wall, "silent": silent,
                "decisions": (node.epoch - epochs0) / wall, "p50": float(np.percentile(ticks, 50)),
                "p99": float(np.percentile(ticks, 99)), "cpu": 100.0 * cpu / wall}
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        child.stdin.close()
        report = child.stdout.read().split()
        child.wait(timeout=30)
    row["sent"] = float(report[0]) / float(report[1])  # over the publisher's whole life (incl. warm-up)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, nargs="+", default=[100, 200, 500, 1000])
    parser.add_argument("--rate", type=float, default=20.0, help="odometry Hz per robot")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured steady-state seconds per n")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--decision-period", type=float, default=0.05,
                        help="s between decisions (short, to collect many latency samples)")
    parser.add_argument("--publish", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish is not None:
        publish_fleet(args.publish, args.rate)
        return 0

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(np.random.default_rng().integers(1, 102)))
    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.policy import build_policy, save_policy
    from altmarl_sim.scenario import load_scenario

    pinned = _pin(PIN_NODE)
    scenario = load_scenario("warehouse_ring")
    z = scenario.ring.n_zones
    pi_g = np.random.default_rng(0).integers(0, z, size=(z, n_count_vectors(args.k, z)))
    artifact = build_policy(pi_g, np.full((z, z, 3), 1 / 3), args.k, n_ag=z,
                            scenario=(scenario.name, scenario.content_hash()))
    print(f"coordinator capacity: odometry at {args.rate:g} Hz from a second process, k = {args.k}, "
          f"decision every {args.decision_period:g} s, coordinator {pinned}, {os.cpu_count()} cores, "
          f"{args.seconds:g} s measured per row")
    print(f"{'robots':>7} {'offered/s':>10} {'sent/s':>8} {'received/s':>11} {'recv %':>7} {'decisions/s':>12} "
          f"{'tick p50 ms':>12} {'tick p99 ms':>12} {'CPU %':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        policy_path = str(save_policy(artifact, os.path.join(tmp, "policy.npz")))
        for n in args.robots:
            row = measure(n, args, policy_path)
            note = f"  ({row['silent']} robots never heard)" if row["silent"] else ""
            print(f"{row['n']:>7} {row['offered']:>10.0f} {row['sent']:>8.0f} {row['received']:>11.0f} "
                  f"{100 * row['received'] / row['offered']:>6.1f}% {row['decisions']:>12.1f} "
                  f"{row['p50']:>12.3f} {row['p99']:>12.3f} {row['cpu']:>6.1f}{note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
