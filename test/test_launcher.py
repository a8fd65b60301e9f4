"""The in-package launcher's mechanics: start a node set in one process or several, stop it on a signal.

The launcher runs in a child process (as `altmarl launch` does) with stand-in
nodes (test/_launch_dummy_nodes.py); SIGTERM/SIGINT must stop every node
cleanly (each node's destroy_node ran), exit 0, and leave no process behind.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

TEST_DIR = Path(__file__).resolve().parent
NAMES = ("alpha", "beta", "gamma")


def _start_launcher(marks: Path, processes: bool) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import sys
        from altmarl_ros import fleet_plan, supervisor
        greeter = ("_launch_dummy_nodes", "Greeter")
        fleet_plan.NODE_CLASSES = {{"greeter": greeter, "coordinator": greeter}}
        # gamma stands in for the coordinator, which starts once the others are on the graph
        specs = [fleet_plan.NodeSpec(kind="coordinator" if name == "gamma" else "greeter", name=name,
                                   parameters={{"peers": {len(NAMES) - 1}}}) for name in {NAMES!r}]
        sys.exit(supervisor.run(specs, processes={processes}))
    """)
    env = dict(os.environ, ALTMARL_TEST_MARKS=str(marks),
               PYTHONPATH=os.pathsep.join([str(TEST_DIR), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", script], env=env)


def _wait_for(marks: Path, suffix: str, proc: subprocess.Popen, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((marks / f"{name}.{suffix}").exists() for name in NAMES):
            return
        assert proc.poll() is None, f"launcher exited early with {proc.returncode}"
        time.sleep(0.1)
    pytest.fail(f"nodes not {suffix} after {timeout} s: {sorted(p.name for p in marks.iterdir())}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.ros
@pytest.mark.parametrize("processes, signum", [(False, signal.SIGTERM), (False, signal.SIGINT),
                                               (True, signal.SIGTERM)])
def test_signal_stops_every_node_cleanly(tmp_path, processes, signum):
    proc = _start_launcher(tmp_path, processes)
    try:
        _wait_for(tmp_path, "ready", proc)
        pids = {int((tmp_path / f"{name}.pid").read_text()) for name in NAMES}
        assert (len(pids) == len(NAMES)) == processes  # one process per node, or all in the launcher
        started = {name: (tmp_path / f"{name}.pid").stat().st_mtime for name in NAMES}
        assert started["gamma"] >= max(started["alpha"], started["beta"])
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all((tmp_path / f"{name}.stopped").exists() for name in NAMES)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "a node process outlived the launcher"


@pytest.mark.ros
def test_children_die_with_a_killed_launcher(tmp_path):
    proc = _start_launcher(tmp_path, processes=True)
    try:
        _wait_for(tmp_path, "ready", proc)
        pids = {int((tmp_path / f"{name}.pid").read_text()) for name in NAMES}
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "a node process was orphaned"


@pytest.mark.ros
def test_a_node_that_fails_stops_the_run_with_its_name(tmp_path, monkeypatch):
    from altmarl_ros import fleet_plan, supervisor

    monkeypatch.setenv("ALTMARL_TEST_MARKS", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(TEST_DIR))
    monkeypatch.setattr(fleet_plan, "NODE_CLASSES", {"greeter": ("_launch_dummy_nodes", "Greeter")})
    specs = [fleet_plan.NodeSpec(kind="greeter", name="good", parameters={"peers": 1}),
             fleet_plan.NodeSpec(kind="greeter", name="bad", parameters={"peers": "many"})]
    with pytest.raises(fleet_plan.LaunchError, match=r"node /bad \(altmarl_greeter\) exited with code 2"):
        supervisor.run(specs, processes=True, duration=60)
    assert (tmp_path / "good.stopped").exists()


@pytest.mark.ros
def test_real_fleet_plan_drives_robots_through_namespaced_local_agents(tmp_path):
    """mode 'real' (one local agent per robot in namespace robot_<i>, topics remapped to the
    fleet-wide names) in one process, with a simulated fleet standing in for the robots."""
    from _herding_policy import herding_policy
    from altmarl_ros import fleet_plan, supervisor
    from altmarl_ros.core.policy import save_policy
    from altmarl_sim.scenario import load_scenario

    policy = tmp_path / "policy.npz"
    save_policy(herding_policy(load_scenario("warehouse_ring"), 2), policy)
    fleet = fleet_plan.load_fleet(None, {"scenario": "warehouse_ring", "n_robots": 3, "k": 2, "policy": str(policy)})
    specs = fleet_plan.plan_nodes(fleet, "real")
    robots = fleet_plan.NodeSpec(kind="fleet_sim", name="fleet_sim", parameters=fleet.parameters_for("fleet_sim"))
    with supervisor.FleetRun([robots] + specs) as run:
        sim_node = run.nodes[0]
        start = sim_node.sim.poses.copy()
        away = np.flatnonzero(sim_node.sim.zones() != sim_node.sim.depot_zone())
        assert away.size, "every robot starts in the depot's zone: pick another seed"
        agents = [node for node in run.nodes if node.get_name() == "local_agent"]
        assert sorted(a.get_namespace() for a in agents) == ["/robot_0", "/robot_1", "/robot_2"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(a.commands_received >= 3 for a in agents):
            run.spin(0.2)
        assert all(a.commands_received >= 3 for a in agents), [a.commands_received for a in agents]
        moved = np.hypot(*(sim_node.sim.poses[away, :2] - start[away, :2]).T)
    # Robots away from the depot were driven (by their own agent, over the remapped topics).
    assert (moved > 0.3).all(), moved


@pytest.mark.ros
def test_the_fleet_file_accepts_every_parameter_a_node_declares(tmp_path):
    """Build every planned node, read back what it declared, and give each declared parameter
    (with the value the node ran with) to a fleet file in that node's own section."""
    import yaml
    from _herding_policy import herding_policy
    from altmarl_ros import fleet_plan, supervisor
    from altmarl_ros.core.policy import save_policy
    from altmarl_sim.scenario import load_scenario

    policy = tmp_path / "policy.npz"
    save_policy(herding_policy(load_scenario("warehouse_ring"), 2), policy)
    common = {"scenario": "warehouse_ring", "n_robots": 3, "k": 2, "policy": str(policy)}
    fleet = fleet_plan.load_fleet(None, common)
    with supervisor.FleetRun(fleet_plan.plan_nodes(fleet, "sim")) as run:
        declared = {node.get_name(): {name: node.get_parameter(name).value
                                      for name in node.list_parameters([], 0).names}
                    for node in run.nodes}
    assert set(declared) == set(fleet_plan.NODE_CLASSES)
    for name, params in declared.items():
        # the class's table is exactly what the node declared (rclpy adds its own)
        assert set(params) - set(fleet_plan.ROS_PARAMETERS) == set(fleet_plan.node_class(name).PARAMETERS), name
        section = {key: list(value) if key == "robots" and not isinstance(value, int) else value
                   for key, value in params.items()}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"/**": {"ros__parameters": common},
                                        name: {"ros__parameters": section}}))
        assert fleet_plan.load_fleet(path).parameters_for(name) == {**common, **section}
