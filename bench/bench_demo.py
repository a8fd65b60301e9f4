"""The whole demo's real-time factor: `altmarl demo` with n robots, in one process and one process per node.

Runs the real command (fleet_sim, coordinator, local_agents, markers, welfare
monitor on a private ROS domain, localhost only) and prints, per mode: the
real-time factor (simulated seconds per wall second while the fleet ran), the
wall time of the whole command, the CPU it used (all its processes), the
odometry rate the monitor received, and the welfare next to the offline
evaluation. fleet_sim is paced at real time (real_time_factor 1 in
config/fleet.yaml), so 1.0 means "keeps up"; --unpaced also runs it as fast
as it can (real_time_factor 0) to show the headroom.

    .venv/bin/python bench/bench_demo.py [--n 200] [--duration 60] [--unpaced]
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run_demo(n: int, duration: float, processes: bool, fleet_file: Path) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.SystemRandom().randint(101, 200)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    argv = [sys.executable, "-m", "altmarl_ros.cli", "demo", "--n", str(n), "--duration", str(duration),
            "--fleet", str(fleet_file), "--json", "--quiet"] + (["--processes"] if processes else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"altmarl demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    report["command_wall"] = wall
    report["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds per run")
    parser.add_argument("--unpaced", action="store_true", help="also run fleet_sim as fast as possible")
    args = parser.parse_args()
    fleet = yaml.safe_load((ROOT / "config" / "fleet.yaml").read_text())
    paces = [1.0] + ([0.0] if args.unpaced else [])
    print(f"altmarl demo, n = {args.n}, {args.duration:g} simulated s, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'mode':<22} {'pace':>5} {'RTF':>6} {'wall s':>7} {'CPU s':>7} {'CPU %':>6} {'odom msg/s':>10} "
          f"{'welfare':>9} {'offline':>17} {'dev sd':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for pace in paces:
            fleet.setdefault("fleet_sim", {"ros__parameters": {}})["ros__parameters"]["real_time_factor"] = pace
            fleet_file = Path(tmp) / f"fleet_{pace:g}.yaml"
            fleet_file.write_text(yaml.safe_dump(fleet))
            for processes in (False, True):
                r = run_demo(args.n, args.duration, processes, fleet_file)
                mode = "one process per node" if processes else "one process"
                off = r["offline"]
                print(f"{mode:<22} {pace:>5g} {r['real_time_factor']:>6.2f} {r['command_wall']:>7.1f} "
                      f"{r['cpu_seconds']:>7.1f} {100 * r['cpu_seconds'] / r['command_wall']:>6.0f} "
                      f"{r['odom_msgs_per_s']:>10.0f} {r['welfare']:>9.3f} "
                      f"{off['mean']:>9.3f} +- {off['ci95']:<5.3f} {r['deviation_sd']:>+7.2f}", flush=True)
    print("RTF: simulated / wall seconds while the fleet ran; wall and CPU: the whole command (start-up, "
          "the run, the offline evaluation); CPU % of one core; dev sd: (welfare - offline mean) / "
          "single-run sd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
