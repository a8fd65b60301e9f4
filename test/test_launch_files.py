"""launch/*.launch.py and the fleet description, without the ROS 2 launch packages.

The launch files are executed against a small fake `launch` / `launch_ros` that
records the actions; the nodes they would start must be exactly the
in-package launcher's plan (same executables, names, namespaces, parameters,
remappings), because both are meant to start the same fleet.
"""
import py_compile
import runpy
import sys
import types
from pathlib import Path

import pytest
import yaml

from altmarl_ros import fleet_plan
from altmarl_ros.errors import AltmarlError

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


class FakeLaunchContext:
    def __init__(self, given):
        self.launch_configurations = dict(given)


def _fake_launch_modules():
    """Minimal stand-ins for launch / launch_ros with the API the launch files use."""
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    substitutions = types.ModuleType("launch.substitutions")
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")

    class LaunchDescription:
        def __init__(self, entities):
            self.entities = list(entities)

    class DeclareLaunchArgument:
        def __init__(self, name, default_value=None, description=""):
            self.name, self.default_value, self.description = name, default_value, description

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context.launch_configurations[self.name]

    class Node:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class Shutdown:
        def __init__(self, reason=""):
            self.reason = reason

        def __eq__(self, other):
            return isinstance(other, Shutdown) and other.reason == self.reason

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument = DeclareLaunchArgument
    actions.OpaqueFunction = OpaqueFunction
    actions.Shutdown = Shutdown
    substitutions.LaunchConfiguration = LaunchConfiguration
    ros_actions.Node = Node
    launch.actions, launch.substitutions, launch_ros.actions = actions, substitutions, ros_actions
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


@pytest.fixture
def fake_launch(monkeypatch):
    for name, module in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)


def _launch(path, **given):
    """Run a launch file as `ros2 launch` would: declared defaults, then the given arguments."""
    description = runpy.run_path(str(path))["generate_launch_description"]()
    declared = {e.name: e.default_value for e in description.entities if hasattr(e, "default_value")}
    unknown = set(given) - set(declared)
    assert not unknown, f"{path.name} does not declare {unknown}"
    context = FakeLaunchContext({**declared, **given})
    nodes = []
    for entity in description.entities:
        if hasattr(entity, "function"):
            nodes.extend(entity.function(context))
    return nodes


def _as_launch_node(spec):
    """What the launch file must pass for `spec`; every fleet node's exit shuts the launch down."""
    return {"package": "altmarl_ros", "executable": spec.executable, "name": spec.name,
            "namespace": spec.namespace or None, "parameters": [dict(spec.parameters)],
            "remappings": list(spec.remappings), "output": "screen",
            "on_exit": [sys.modules["launch.actions"].Shutdown(reason=f"{spec.label} exited")]}


def test_launch_files_compile():
    assert {p.name for p in LAUNCH_FILES} == {"sim_fleet.launch.py", "real_fleet.launch.py"}
    for path in LAUNCH_FILES:
        py_compile.compile(str(path), doraise=True)


def test_sim_launch_file_starts_the_launchers_plan(fake_launch):
    nodes = _launch(ROOT / "launch" / "sim_fleet.launch.py", n_robots="12", k="4")
    plan = fleet_plan.plan_nodes(fleet_plan.load_fleet(None, {"n_robots": 12, "k": 4}), "sim")
    ros_nodes = [n.kwargs for n in nodes if n.kwargs["package"] == "altmarl_ros"]
    assert ros_nodes == [_as_launch_node(spec) for spec in plan]
    assert [n["executable"] for n in ros_nodes] == ["altmarl_fleet_sim", "altmarl_coordinator",
                                                    "altmarl_local_agents", "altmarl_markers"]
    rviz = [n.kwargs for n in nodes if n.kwargs["package"] == "rviz2"]
    assert len(rviz) == 1 and rviz[0]["arguments"][1].endswith("config/altmarl.rviz")
    assert rviz[0]["parameters"] == [{"use_sim_time": True}]  # RViz follows the simulator's /clock
    assert not [n for n in _launch(ROOT / "launch" / "sim_fleet.launch.py", rviz="false")
                if n.kwargs["package"] == "rviz2"]


def test_real_launch_file_starts_one_local_agent_per_robot(fake_launch):
    nodes = [n.kwargs for n in _launch(ROOT / "launch" / "real_fleet.launch.py", n_robots="3", k="2")]
    plan = fleet_plan.plan_nodes(fleet_plan.load_fleet(None, {"n_robots": 3, "k": 2}), "real")
    assert nodes == [_as_launch_node(spec) for spec in plan]
    agents = [n for n in nodes if n["executable"] == "altmarl_local_agents"]
    assert [a["namespace"] for a in agents] == ["robot_0", "robot_1", "robot_2"]
    assert [a["parameters"][0]["robots"] for a in agents] == [[0], [1], [2]]
    assert ("robot_1/odom", "/robot_1/odom") in agents[1]["remappings"]
    assert ("altmarl/global_command", "/altmarl/global_command") in agents[1]["remappings"]
    assert ("altmarl/stopped", "/altmarl/stopped") in agents[1]["remappings"]  # the fleet-wide stop reaches it
    assert all(n["parameters"][0]["use_sim_time"] is False for n in nodes)


def test_launch_file_rejects_bad_argument(fake_launch):
    with pytest.raises(fleet_plan.LaunchError, match="k = 9"):
        _launch(ROOT / "launch" / "sim_fleet.launch.py", n_robots="5", k="9")


# ----------------------------------------------------------------- the fleet description


def _write(tmp_path, text):
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def test_shipped_fleet_file_loads_and_resolves_the_policy_path():
    fleet = fleet_plan.load_fleet()
    assert fleet.common["scenario"] == "warehouse_ring_hard"
    assert "k" not in fleet.common  # the policy is the one source of k
    assert Path(fleet.common["policy"]).is_absolute()
    assert fleet.parameters_for("fleet_sim")["real_time_factor"] == 1.0


def test_a_fleet_that_names_k_is_checked_against_the_policy():
    assert fleet_plan.check_policy_k(fleet_plan.load_fleet(None, {"n_robots": 7}), 3) is None
    assert fleet_plan.check_policy_k(fleet_plan.load_fleet(None, {"n_robots": 7, "k": 3}), 3) is None
    with pytest.raises(fleet_plan.LaunchError, match="k = 4 .*trained for k = 3"):
        fleet_plan.check_policy_k(fleet_plan.load_fleet(None, {"n_robots": 7, "k": 4}), 3)
    with pytest.raises(fleet_plan.LaunchError, match="k = 8: must be between 1 and n_robots = 7"):
        fleet_plan.check_policy_k(fleet_plan.load_fleet(None, {"n_robots": 7}), 8)


def test_sim_plan_gives_every_node_but_fleet_sim_the_sim_clock():
    specs = fleet_plan.plan_nodes(fleet_plan.load_fleet(None, {"n_robots": 7, "k": 3}), "sim")
    assert {s.name: s.parameters["use_sim_time"] for s in specs} == {
        "fleet_sim": False, "coordinator": True, "local_agents": True, "markers": True}
    assert all(s.parameters["n_robots"] == 7 and s.parameters["k"] == 3 for s in specs)


@pytest.mark.parametrize("text, message", [
    ("k: 3\n", "'/\\*\\*:' section"),
    ("/**:\n  ros__parameters:\n    n_robots: 5\n    k: 2\n    policy: p.npz\n    scenario: s\n"
     "    decision_perod: 1.0\n", r"/\*\*\.ros__parameters\.decision_perod: unknown key \(allowed: .*decision_period"),
    ("/**:\n  ros__parameters:\n    n_robots: five\n    k: 2\n    policy: p.npz\n    scenario: s\n",
     "'n_robots' must be int"),
    ("/**:\n  ros__parameters:\n    n_robots: 5\n    k: 2\n    policy: p.npz\n    scenario: s\n"
     "    use_sim_time: 1\n", "'use_sim_time' must be bool"),
    ("/**:\n  ros__parameters:\n    n_robots: 5\n    k: 2\n    scenario: s\n", "policy' is missing"),
    ("/**:\n  ros__parameters:\n    n_robots: 5\n    k: 6\n    policy: p.npz\n    scenario: s\n",
     "k = 6: must be between 1 and n_robots = 5"),
    ("/**:\n  ros__parameters:\n    n_robots: 5\n    k: 2\n    policy: p.npz\n    scenario: s\n"
     "/robot_*/x:\n  ros__parameters: {}\n", r"robot_\*/x: unknown key \(allowed: /\*\*, fleet_sim, coordinator"),
    ("/**:\n  ros__parameters:\n    n_robots: 5\n    k: 2\n    policy: p.npz\n    scenario: s\n"
     "coordinator:\n  parameters: {}\n", r"coordinator\.parameters: unknown key \(allowed: ros__parameters\)"),
    ("/**: [1, 2\n", "not valid YAML"),
])
def test_bad_fleet_file_names_the_problem(tmp_path, text, message):
    with pytest.raises(fleet_plan.LaunchError, match=message):
        fleet_plan.load_fleet(_write(tmp_path, text))


def test_missing_fleet_file_and_bad_override_are_named(tmp_path):
    with pytest.raises(fleet_plan.LaunchError, match="cannot read"):
        fleet_plan.load_fleet(tmp_path / "nope.yaml")
    with pytest.raises(fleet_plan.LaunchError, match="override k='x'"):
        fleet_plan.load_fleet(None, {"k": "x"})
    with pytest.raises(fleet_plan.LaunchError, match="KEY=VALUE"):
        fleet_plan.parse_overrides(["k"])
    assert fleet_plan.parse_overrides(["k=5", "policy=a/b.npz", "real_time_factor=0.5"]) == {
        "k": 5, "policy": "a/b.npz", "real_time_factor": 0.5}


def test_altmarl_launch_dry_run_prints_the_plan(capsys, tmp_path):
    from _herding_policy import herding_policy

    from altmarl_ros.cli import main
    from altmarl_ros.core.policy import save_policy
    from altmarl_sim.scenario import load_scenario

    policy = tmp_path / "p.npz"
    save_policy(herding_policy(load_scenario("warehouse_ring_hard"), 1), policy)
    assert main(["launch", "--mode", "real", "--set", "n_robots=2", "--set", "k=1", "--set", f"policy={policy}",
                 "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["/coordinator", "altmarl_coordinator"], ["/robot_0/local_agent", "altmarl_local_agents"],
        ["/robot_1/local_agent", "altmarl_local_agents"], ["/markers", "altmarl_markers"]]
    assert main(["launch", "--set", "k=0", "--dry-run"]) == 2
    assert "k = 0: must be between 1 and n_robots" in capsys.readouterr().err
    # what the nodes would refuse at start, the dry run refuses too (issue 25)
    assert main(["launch", "--set", "k=1", "--set", f"policy={policy}", "--set", "seed=-1", "--dry-run"]) == 2
    assert "seed: = -1: must be >= 0" in capsys.readouterr().err
    assert main(["launch", "--set", "k=2", "--set", f"policy={policy}", "--dry-run"]) == 2
    assert "the policy was trained for k = 1" in capsys.readouterr().err


def test_real_plan_puts_each_named_robot_in_its_own_namespace():
    fleet = fleet_plan.load_fleet(None, {"robot_names": ["amr_a", "amr_b", "amr_c"], "n_robots": 3, "k": 2,
                                         "pose_topic": "amcl_pose"})
    agents = [spec for spec in fleet_plan.plan_nodes(fleet, "real") if spec.kind == "local_agents"]
    assert [a.namespace for a in agents] == ["amr_a", "amr_b", "amr_c"]
    assert [a.parameters["robots"] for a in agents] == [[0], [1], [2]]
    assert {("amr_b/odom", "/amr_b/odom"), ("amr_b/goal_pose", "/amr_b/goal_pose"),
            ("amr_b/amcl_pose", "/amr_b/amcl_pose")} <= set(agents[1].remappings)


BLOCK_NUMBA = '''
import importlib.abc, sys
class NoNumba(importlib.abc.MetaPathFinder):
    """A stock ROS 2 python: /opt/ros/jazzy/bin/ros2 runs under the system python, which has no numba."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "llvmlite"):
            raise ImportError(f"{name} is blocked in this interpreter")
sys.meta_path.insert(0, NoNumba())
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from test_launch_files import _fake_launch_modules, _launch
sys.modules.update(_fake_launch_modules())
for path in sorted(Path(sys.argv[2]).glob("*.launch.py")):
    nodes = _launch(path, n_robots="7", rviz="false")
    print(path.name, len(nodes))
assert not any(name.split(".")[0] in ("numba", "llvmlite") for name in sys.modules)
'''


def test_launch_files_load_where_numba_cannot_be_imported():
    """`ros2 launch` reads the launch file under the ROS install's python: planning the fleet must not
    import numba (the node classes' modules do; their parameter tables live in node_parameters)."""
    import subprocess

    result = subprocess.run([sys.executable, "-c", BLOCK_NUMBA, str(ROOT / "test"), str(ROOT / "launch")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["real_fleet.launch.py", "9", "sim_fleet.launch.py", "4"]


def test_a_roster_sets_the_fleet_size(tmp_path):
    """robot_names alone names the fleet (n_robots may be left out); both, disagreeing, is an error."""
    def fleet_file(**params):
        path = tmp_path / "fleet.yaml"
        path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"scenario": "warehouse_ring",
                                                                     "policy": "p.npz", **params}}}))
        return path

    fleet = fleet_plan.load_fleet(fleet_file(robot_names=["amr_a", "amr_b", "amr_c"]))
    assert fleet.n_robots == 3 and fleet_plan.robot_names(fleet) == ["amr_a", "amr_b", "amr_c"]
    assert len(fleet_plan.plan_nodes(fleet, "real")) == 1 + 3 + 1
    with pytest.raises(fleet_plan.LaunchError, match="n_robots = 5 but robot_names lists 3"):
        fleet_plan.load_fleet(fleet_file(robot_names=["amr_a", "amr_b", "amr_c"], n_robots=5))
    with pytest.raises(fleet_plan.LaunchError, match="n_robots' is missing"):
        fleet_plan.load_fleet(fleet_file())


def test_a_launch_records_when_given_a_file_and_refuses_to_record_over_an_input(fake_launch, tmp_path):
    """record:=FILE.mcap adds the recorder with the fleet's size and clock; without it there is none; the fleet
    file (an input) is refused as the output before any node starts; record_odometry must be a boolean."""
    out = tmp_path / "run.mcap"
    for mode, sim_time in (("sim", True), ("real", False)):
        path = ROOT / "launch" / f"{mode}_fleet.launch.py"
        nodes = [n.kwargs for n in _launch(path, n_robots="6", rviz="false", record=str(out), record_odometry="true")]
        recorders = [n for n in nodes if n.get("executable") == "altmarl_recorder"]
        assert len(recorders) == 1 and recorders[0]["parameters"] == [
            {"output": str(out.resolve()), "robots": 6, "record_odometry": True, "use_sim_time": sim_time}]
        assert not [n for n in _launch(path, n_robots="6", rviz="false") if n.kwargs.get("executable")
                    == "altmarl_recorder"]
    policy = fleet_plan.load_fleet(None, {})
    for an_input in (policy.path, policy.common["policy"]):
        with pytest.raises(AltmarlError, match="record .* is also an input of this command"):
            _launch(ROOT / "launch" / "sim_fleet.launch.py", record=str(an_input))
    with pytest.raises(fleet_plan.LaunchError, match="record_odometry:=maybe"):
        _launch(ROOT / "launch" / "sim_fleet.launch.py", record=str(out), record_odometry="maybe")
