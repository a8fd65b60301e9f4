"""Two hosts, as a real fleet runs: the coordinator on one, the fleet on the other.

The hosts are network namespaces joined by a veth pair (test/_netns.py, needs
root; CI is root). Nothing here sets ROS_AUTOMATIC_DISCOVERY_RANGE: DDS finds
the other host with its default range (SUBNET), over the link, which is what
docs/operations.md tells a multi-host fleet to use. Host "coordinator" runs
the coordinator; host "fleet" runs fleet_sim and local_agents (the robots) and
an observer. The observer (test/_fleet_observer.py) must receive the
GlobalCommands, made from odometry that crossed the link, and see the robots
move; the veth counters show the traffic went over the link both ways.
"""
import sys
from pathlib import Path

import pytest

import _netns
from _herding_policy import herding_policy

pytestmark = [pytest.mark.ros,
              pytest.mark.skipif(_netns.unavailable() is not None, reason=str(_netns.unavailable()))]

N_ROBOTS, K = 12, 3
OBSERVER = Path(__file__).resolve().parent / "_fleet_observer.py"


def _node(kind: str, *params: str) -> list:
    argv = [sys.executable, "-c", f"import sys; from altmarl_ros.nodes.{kind} import main; sys.exit(main())",
            "--ros-args"]
    for param in params:
        argv += ["-p", param]
    return argv


def test_coordinator_and_fleet_on_two_hosts(tmp_path):
    from altmarl_ros.core.policy import save_policy
    from altmarl_ros.supervisor import warm_up_kernels
    from altmarl_sim.scenario import load_scenario

    warm_up_kernels()  # numba's cache is written once here, before three processes need it
    policy = save_policy(herding_policy(load_scenario("warehouse_ring"), K), tmp_path / "policy.npz")
    fleet = [f"n_robots:={N_ROBOTS}", f"policy:={policy}", f"k:={K}"]
    with _netns.two_hosts() as (coordinator_host, fleet_host):
        sent_before = fleet_host.packets()
        fleet_host.popen(_node("fleet_sim", f"n_robots:={N_ROBOTS}"), env=fleet_host.ros_env())
        fleet_host.popen(_node("local_agents", *fleet, "use_sim_time:=true"), env=fleet_host.ros_env())
        coordinator = coordinator_host.popen(_node("coordinator", *fleet, "use_sim_time:=true"),
                                             env=coordinator_host.ros_env())
        watched = fleet_host.run([sys.executable, str(OBSERVER), str(N_ROBOTS), str(K), "90"],
                                 env=fleet_host.ros_env(), timeout=150)
        assert watched.returncode == 0, f"observer saw {watched.stdout} {watched.stderr[-2000:]}"
        assert coordinator.poll() is None, "the coordinator exited"
        sent = {way: fleet_host.packets()[way] - sent_before[way] for way in ("rx", "tx")}
        # Odometry of 12 robots at 20 Hz goes out; GlobalCommands and their acks come in.
        assert sent["tx"] > 100 and sent["rx"] > 10, f"veth packets on the fleet host: {sent}"
        coordinator.terminate()
        assert coordinator.wait(timeout=20) == 0
