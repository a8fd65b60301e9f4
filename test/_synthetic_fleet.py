"""Robots without a simulator, for bench/bench_coordinator.py and test/test_two_hosts_sampling.py.

    python test/_synthetic_fleet.py answer   --first F --count C [--depot] [--pin CPU] [--commands]
    python test/_synthetic_fleet.py odometry --first F --count C --rate HZ [--depot] [--pin CPU] [--commands]

answer: one node answering the coordinator's state requests (state_sampling request) for robots
F..F+C-1, as a fleet-hosted local_agents node does, with the real StateAnswers (nodes/_sampling.py)
over a pose source that is always fresh (robot i parked at the centre of zone i mod Z): what a
measurement sees is our answering code and the protocol, not a simulator.
odometry: robot_<i>/odom of the same robots at HZ, map frame, pre-serialised and reliable, as
fleet_sim publishes it (state_sampling subscribe_all).
--depot: also publish depot/odom at 20 Hz (the coordinator needs the depot's pose in both modes).
--commands: print `command <epoch> <robots sampled> <usable robots>` for each GlobalCommand heard.
Every second it prints `sent <robot messages so far> <time.monotonic()>` (the parent reads its rate).
Runs until SIGINT/SIGTERM; an answerer then leaves the fleet (an empty membership), as local_agents does.
"""
import argparse
import os
import sys
import time

import numpy as np

DEPOT_RATE_HZ = 20.0
SENT_EVERY_SEC = 1.0


def argv(kind: str, first: int, count: int, *, rate: float = 20.0, depot: bool = False, pin=None,
         commands: bool = False) -> list:
    """The command line of one synthetic fleet process (the parent wraps it in `ip netns exec`, or not)."""
    line = [sys.executable, os.path.abspath(__file__), kind, "--first", str(first), "--count", str(count),
            "--rate", str(rate)]
    return line + (["--depot"] if depot else []) + (["--pin", str(pin)] if pin is not None else []) + \
        (["--commands"] if commands else [])


def blocks(n: int, processes: int) -> list:
    """(first, count) of each process's block of robot ids 0..n-1, as even as can be."""
    edges = np.linspace(0, n, min(processes, n) + 1).round().astype(int)
    return [(int(a), int(b - a)) for a, b in zip(edges, edges[1:])]


def _parked_poses(node, robot_ids, ring):
    """A PoseSource whose every robot is fresh now, parked at its zone's centre (zone = id mod Z)."""
    from altmarl_ros.names import MAP_FRAME
    from altmarl_ros.nodes._poses import PoseSource
    from altmarl_sim.ring import zone_centre

    class ParkedPoses(PoseSource):
        KIND = "parked"

        def __init__(self):
            super().__init__(MAP_FRAME)
            xs, ys = zone_centre(np.asarray(robot_ids) % ring.n_zones, ring)
            self._poses = [(float(x), float(y), 0.0) for x, y in zip(xs, ys)]
            self._slots = np.arange(len(robot_ids))
            self._clock = node.get_clock()

        def fresh_slots(self, now_ns, max_age_ns):
            return self._slots

        def is_fresh(self, slot, now_ns, max_age_ns):
            return True

        def pose(self, slot):
            return self._poses[slot]

        def received_ns(self, slot):
            return self._clock.now().nanoseconds  # read just now: the state a reply carries is fresh

        def messages_received(self, n_slots):
            return 0

    return ParkedPoses()


def _odometry_payloads(names, ring, zones):
    """Pre-serialised map-frame odometry of robots parked at the centres of `zones`."""
    from altmarl_ros.names import MAP_FRAME, base_frame
    from altmarl_ros.nodes._cdr import odometry_cdr, odometry_frames
    from altmarl_sim.ring import zone_centre

    xs, ys = zone_centre(np.asarray(zones) % ring.n_zones, ring)
    return [odometry_cdr(odometry_frames(MAP_FRAME, base_frame(name)), 0, 0, float(x), float(y), 0.0, 1.0, 0.0, 0.0)
            for name, x, y in zip(names, xs, ys)]


def run(args) -> None:
    from altmarl_ros.nodes._stop import catch_stop_signals

    stop = catch_stop_signals()
    if args.pin is not None and hasattr(os, "sched_setaffinity") and args.pin in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {args.pin})
    import rclpy
    from altmarl_msgs.msg import GlobalCommand
    from nav_msgs.msg import Odometry
    from rclpy.signals import SignalHandlerOptions

    from altmarl_ros.names import DEPOT, DEPOT_ODOM_TOPIC, GLOBAL_COMMAND_TOPIC, odom_topic
    from altmarl_ros.nodes._ros import GLOBAL_COMMAND_QOS, ODOM_PUBLISH_QOS, make_executor
    from altmarl_ros.nodes._sampling import StateAnswers
    from altmarl_ros.nodes._validate import DroppedMessages
    from altmarl_sim.scenario import load_scenario

    ring = load_scenario("warehouse_ring").ring
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"synthetic_{args.kind}_{args.first}")
    ids = list(range(args.first, args.first + args.count))
    sent = [0]
    answers = None
    if args.kind == "answer":
        answers = StateAnswers(node, ids, _parked_poses(node, ids, ring), ring, odom_timeout_ns=int(0.5e9),
                               skew_ns=int(0.5e9), dropped=DroppedMessages(node))
        node.create_timer(0.05, lambda: answers.update_membership(node.get_clock().now().nanoseconds))
    else:
        publishers = [node.create_publisher(Odometry, odom_topic(i), ODOM_PUBLISH_QOS) for i in ids]
        payloads = _odometry_payloads(ids, ring, ids)

        def publish_robots():
            for publisher, payload in zip(publishers, payloads):
                publisher.publish(payload)
            sent[0] += len(payloads)
        node.create_timer(1.0 / args.rate, publish_robots)
    if args.depot:
        depot_pub = node.create_publisher(Odometry, DEPOT_ODOM_TOPIC, ODOM_PUBLISH_QOS)
        depot = _odometry_payloads([DEPOT], ring, [0])[0]
        node.create_timer(1.0 / DEPOT_RATE_HZ, lambda: depot_pub.publish(depot))
    if args.commands:
        def on_command(msg):
            print(f"command {msg.epoch} {len(msg.sampled_ids)} {msg.usable_robots}", flush=True)
        node.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, on_command, GLOBAL_COMMAND_QOS)
    executor = make_executor()
    executor.add_node(node)
    next_report = time.monotonic()
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
            if time.monotonic() >= next_report:
                count = answers.answered if answers is not None else sent[0]
                print(f"sent {count} {time.monotonic()}", flush=True)
                next_report += SENT_EVERY_SEC
    finally:
        if answers is not None:
            answers.leave()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("answer", "odometry"))
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=20.0, help="odometry Hz per robot")
    parser.add_argument("--depot", action="store_true")
    parser.add_argument("--pin", type=int)
    parser.add_argument("--commands", action="store_true")
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
