"""The README's "Using it from a real ROS 2 install" path, run here end to end.

A copy of the checkout is built by colcon (pinned in requirements.txt) with the
README's own `colcon build` line, without --symlink-install, into a temporary
workspace. From that install space, started in a directory outside the
checkout, the installed console scripts run a short closed loop (fleet_sim,
coordinator, local_agents) with the installed fleet file as their parameter
file and the policy where that file says, relative to the launch directory.
A default-QoS subscriber here must receive odometry and GlobalCommands, and the
robots must move. catkin_pkg (what rosdep uses) must find both packages from
the README's rosdep paths, and package.xml must list what the code imports.
"""
import ast
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _herding_policy import herding_policy

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
README = (ROOT / "README.md").read_text()
SKIP_COPY = shutil.ignore_patterns(".venv", "build", "install", "log", "runs", ".git", "__pycache__",
                                   "*.egg-info", ".pytest_cache")
N_ROBOTS, K = 12, 3
OBSERVER = Path(__file__).resolve().parent / "_fleet_observer.py"
# Under pytest-xdist one worker runs this file: the colcon build (a module fixture) is done once.
pytestmark = pytest.mark.xdist_group("colcon_build")


def readme_command(start: str) -> list:
    """The README's shell line that starts with `start` (one per README), split into words."""
    lines = [line.split("#")[0].strip() for line in README.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, f"README should have exactly one `{start} ...` line, has {len(lines)}"
    return shlex.split(lines[0])


def _exec_depends(package_xml: Path) -> set:
    return {element.text for element in ET.parse(package_xml).getroot().iter("exec_depend")}


# ----------------------------------------------------------------- without a build


def test_rosdep_paths_find_both_packages(tmp_path):
    from catkin_pkg.packages import find_packages

    words = readme_command("rosdep install")
    paths = words[words.index("--from-paths") + 1:]
    paths = paths[:next((i for i, w in enumerate(paths) if w.startswith("-")), len(paths))]
    workspace = tmp_path / "ws"
    shutil.copytree(ROOT, workspace / "src" / "altmarl_ros", ignore=SKIP_COPY)
    found = {}
    for path in paths:
        found.update({pkg.name: where for where, pkg in find_packages(str(workspace / path)).items()})
    assert set(found) == {"altmarl_ros", "altmarl_msgs"}, f"rosdep paths {paths} find {sorted(found)}"


def _imported_top_level_modules() -> set:
    names = set()
    for directory in ("altmarl_ros", "sim", "launch"):
        for source in (ROOT / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names


ROS_WITHOUT_WHEELS = {"launch", "launch_ros", "nav2_msgs"}  # launch files; nav2_msgs: built only for the tests
PYTHON_KEYS = {"numpy": "python3-numpy", "yaml": "python3-yaml", "matplotlib": "python3-matplotlib",
               "tqdm": "python3-tqdm"}
STARTED_NOT_IMPORTED = {"rviz2"}  # the launch files start it


def test_package_xml_lists_exactly_what_the_code_uses():
    index = VENV / "share" / "ament_index" / "resource_index" / "packages"
    imported = _imported_top_level_modules()
    ros = {name for name in imported if (index / name).exists() or name in ROS_WITHOUT_WHEELS} - {"altmarl_ros"}
    needed = ros | {PYTHON_KEYS[name] for name in imported if name in PYTHON_KEYS} | STARTED_NOT_IMPORTED
    listed = _exec_depends(ROOT / "package.xml")
    assert needed - listed == set(), "imported but not in package.xml"
    assert listed - needed == set(), "in package.xml but nothing uses it"


# ----------------------------------------------------------------- colcon build


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """(workspace, environment of `source install/setup.bash`) after the README's colcon build."""
    workspace = tmp_path_factory.mktemp("colcon_ws")
    shutil.copytree(ROOT, workspace / "src" / "altmarl_ros", ignore=SKIP_COPY)
    words = readme_command("python -m colcon build")
    assert "--symlink-install" not in words
    # This machine's only addition: cmake must generate the msg bindings for this venv's python.
    argv = [sys.executable] + words[1:] + ["--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
                                           "-DBUILD_TESTING=OFF"]
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV),
               PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    built = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    sourced = subprocess.run(["bash", "-c", "source install/setup.bash && env -0"], cwd=workspace, env=env,
                             capture_output=True, timeout=60, check=True).stdout
    environment = dict(item.split("=", 1) for item in sourced.decode().split("\0") if "=" in item)
    return workspace, environment


def _in_install(install, argv, cwd, timeout=60):
    workspace, env = install
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_install_space_is_what_runs(install, tmp_path):
    workspace, _ = install
    probe = ("import altmarl_ros, altmarl_sim, altmarl_msgs.msg, tf2_msgs.msg; "
             "from altmarl_sim.scenario import available_scenarios; "
             "print(altmarl_ros.__file__); print(altmarl_sim.__file__); print(available_scenarios())")
    done = _in_install(install, [sys.executable, "-c", probe], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    package_file, sim_file, scenarios = done.stdout.splitlines()
    for path in (package_file, sim_file):
        assert Path(path).is_relative_to(workspace / "install"), path
    assert "warehouse_ring" in scenarios
    on_path = _in_install(install, ["bash", "-c", "command -v altmarl && altmarl --help"], cwd=tmp_path)
    assert on_path.returncode == 0, on_path.stderr
    assert Path(on_path.stdout.splitlines()[0]).is_relative_to(workspace / "install")
    assert "usage: altmarl" in on_path.stdout


@pytest.mark.ros
def test_closed_loop_from_the_install_space(install, tmp_path):
    import yaml

    from altmarl_ros.core.policy import save_policy
    from altmarl_sim.scenario import load_scenario

    workspace, env = install
    share = workspace / "install" / "altmarl_ros" / "share" / "altmarl_ros"
    fleet_file = share / "config" / "fleet.yaml"
    common = yaml.safe_load(fleet_file.read_text())["/**"]["ros__parameters"]
    launch_dir = tmp_path / "site"  # outside the checkout
    assert not Path(common["policy"]).is_absolute()
    save_policy(herding_policy(load_scenario(common["scenario"]), K), launch_dir / common["policy"])
    scripts = workspace / "install" / "altmarl_ros" / "lib" / "altmarl_ros"
    # Load (compile) the numba kernels into the install space's cache once, not in three nodes at once.
    warmed = _in_install(install, [sys.executable, "-c", "from altmarl_ros.supervisor import warm_up_kernels; "
                                                         "warm_up_kernels()"], cwd=launch_dir, timeout=300)
    assert warmed.returncode == 0, warmed.stderr
    overrides = ["-p", f"n_robots:={N_ROBOTS}", "-p", f"k:={K}"]
    nodes = {"fleet_sim": overrides,
             "local_agents": overrides + ["-p", "use_sim_time:=true"],
             "coordinator": overrides + ["-p", "use_sim_time:=true"]}
    children = [subprocess.Popen([str(scripts / f"altmarl_{kind}"), "--ros-args", "--params-file",
                                  str(fleet_file)] + extra, cwd=launch_dir, env=env)
                for kind, extra in nodes.items()]
    try:
        watched = subprocess.run([sys.executable, str(OBSERVER), str(N_ROBOTS), str(K), "120"],
                                 capture_output=True, text=True, timeout=180)
        assert watched.returncode == 0, f"{watched.stdout} {watched.stderr[-2000:]}"
        assert all(child.poll() is None for child in children), "a node exited"
    finally:
        for child in children:
            child.terminate()
        codes = [child.wait(timeout=20) for child in children]
    assert codes == [0, 0, 0], f"exit codes on SIGTERM: {codes}"
