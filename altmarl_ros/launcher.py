"""In-package launcher: start the fleet's node set from config/fleet.yaml, in one process or several.

This environment has no `launch`/`launch_ros` packages, so `altmarl launch`
and `altmarl demo` use this module instead; launch/*.launch.py on a real
ROS 2 install call `load_fleet` and `plan_nodes` from here too, so both start
exactly the same nodes with exactly the same parameters.

One process: every node in one EventsExecutor with its own rclpy Context (the
cheapest way to run a simulated fleet on 2 cores). Several processes: one
child per node (`python -c "from altmarl_ros.nodes.X import main; main()"`,
the console script's body) with a generated parameter file; the coordinator
starts once the others are on the graph. Either way, SIGINT/SIGTERM stop every
node (children get SIGTERM, then SIGKILL after a grace period) and the run
returns 0; a child that dies on its own stops the rest and is reported;
children are killed with the launcher (PR_SET_PDEATHSIG), so nothing is orphaned.
"""
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from altmarl_ros.config_files import find_config
from altmarl_ros.errors import AltmarlError

PACKAGE = "altmarl_ros"
FLEET_FILE = "fleet.yaml"
ALL_NODES = "/**"
MODES = ("sim", "real")
# Started once every other node is on the graph: its first decision starts the robots moving,
# so the first decision epoch finds the whole fleet listening (and the start state intact).
STARTS_LAST = ("coordinator",)
STARTUP_TIMEOUT_SEC = 120.0
GRAPH_SETTLE_SEC = 1.0
GLOBAL_COMMAND_TOPIC = "altmarl/global_command"

# Node kind -> (module, class). The console script of kind X is `altmarl_X` = module:main.
NODE_CLASSES = {
    "fleet_sim": ("altmarl_ros.nodes.fleet_sim", "FleetSimNode"),
    "coordinator": ("altmarl_ros.nodes.coordinator", "CoordinatorNode"),
    "local_agents": ("altmarl_ros.nodes.local_agents", "LocalAgentsNode"),
    "markers": ("altmarl_ros.nodes.markers", "MarkersNode"),
}

# Keys the fleet file may set, with the type each must have. A typo is an error
# (ROS itself would silently ignore an unknown parameter).
FLEET_KEYS: Dict[str, tuple] = {
    "scenario": (str,),
    "n_robots": (int,),
    "k": (int,),
    "policy": (str,),
    "decision_period": (int, float),
    "control_period": (int, float),
    "odom_timeout": (int, float),
    "command_timeout": (int, float),
    "seed": (int,),
    "use_sim_time": (bool,),
    "real_time_factor": (int, float),
    "robot_names": (list,),
    "robot_template": (str,),
    "pose_source": (str,),
    "map_frame": (str,),
    "pose_topic": (str,),
    "command_type": (str,),
    "odom_frames": (str,),
}
PATH_KEYS = ("policy",)


class LaunchError(AltmarlError):
    """The fleet description or the launch request is wrong, or a node could not start."""


@dataclass(frozen=True)
class FleetDescription:
    """Parameters for every node (`common`) plus per-node sections, as in a ROS 2 parameter file."""

    path: str
    common: Mapping[str, Any]
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def n_robots(self) -> int:
        return int(self.common["n_robots"])

    def parameters_for(self, node_name: str) -> Dict[str, Any]:
        """What rcl would give node `node_name`: `/**` first, then its own section on top."""
        params = dict(self.common)
        params.update(self.sections.get(node_name, {}))
        return params


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: which class, under which name and namespace, with which parameters."""

    kind: str
    name: str
    namespace: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    remappings: Tuple[Tuple[str, str], ...] = ()

    @property
    def executable(self) -> str:
        """The console script (and launch_ros `executable`) that runs this node."""
        return f"altmarl_{self.kind}"

    @property
    def label(self) -> str:
        return f"/{self.namespace}/{self.name}" if self.namespace else f"/{self.name}"

    def ros_args(self) -> List[str]:
        """Name, namespace and remappings as ROS command-line arguments (same in both modes)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:=/{self.namespace}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args


def default_fleet_file() -> Path:
    """config/fleet.yaml from the source tree, else from the installed share/ directory."""
    return find_config(FLEET_FILE)


def load_fleet(path=None, overrides: Optional[Mapping[str, Any]] = None) -> FleetDescription:
    """Read and check a fleet description; `overrides` replace `/**` values (command line, launch args)."""
    path = Path(path) if path else default_fleet_file()
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as err:
        raise LaunchError(f"fleet file {path}: cannot read it ({err.strerror}); "
                          f"pass an existing file (default: config/{FLEET_FILE})") from None
    except yaml.YAMLError as err:
        raise LaunchError(f"fleet file {path}: not valid YAML ({err})") from None
    if not isinstance(document, dict) or ALL_NODES not in document:
        raise LaunchError(f"fleet file {path}: needs a top-level '{ALL_NODES}:' section with "
                          f"'ros__parameters:' (a ROS 2 parameter file)")
    sections = {}
    for node_key, body in document.items():
        if not isinstance(body, dict) or set(body) != {"ros__parameters"} \
                or not isinstance(body["ros__parameters"], dict):
            raise LaunchError(f"fleet file {path}: '{node_key}' must contain exactly one mapping "
                              f"'ros__parameters:'")
        name = str(node_key).lstrip("/")
        if node_key != ALL_NODES and ("/" in name or "*" in name):
            raise LaunchError(f"fleet file {path}: section '{node_key}': use '{ALL_NODES}' or a plain "
                              f"node name (fleet_sim, coordinator, local_agents, markers)")
        params = dict(body["ros__parameters"])
        for key, value in params.items():
            _check_value(f"fleet file {path}: {node_key}.ros__parameters.{key}", key, value)
        sections[ALL_NODES if node_key == ALL_NODES else name] = params
    common = sections.pop(ALL_NODES)
    for key, value in (overrides or {}).items():
        _check_value(f"override {key}={value!r}", key, value)
        common[key] = value
    for key in ("n_robots", "k", "policy", "scenario"):
        if key not in common:
            raise LaunchError(f"fleet file {path}: '{ALL_NODES}.ros__parameters.{key}' is missing; "
                              f"every fleet needs it (see docs/launch.md)")
    if common["n_robots"] < 1:
        raise LaunchError(f"n_robots = {common['n_robots']}: the fleet needs at least one robot")
    if not 1 <= common["k"] <= common["n_robots"]:
        raise LaunchError(f"k = {common['k']}: must be between 1 and n_robots = {common['n_robots']} "
                          f"(the coordinator samples k of the n robots)")
    for key in PATH_KEYS:
        common[key] = str(Path(common[key]).expanduser().resolve())
    return FleetDescription(path=str(path), common=common, sections=sections)


def _check_value(where: str, key: str, value: Any) -> None:
    if key not in FLEET_KEYS:
        raise LaunchError(f"{where}: unknown key '{key}'; known keys: {', '.join(FLEET_KEYS)}")
    types = FLEET_KEYS[key]
    if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
        kinds = "/".join(t.__name__ for t in types)
        raise LaunchError(f"{where}: '{key}' must be {kinds}, got {value!r}")


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """['k=5', 'policy=p.npz'] -> {'k': 5, 'policy': 'p.npz'} with YAML typing (5 is an int)."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise LaunchError(f"--set {item!r}: write KEY=VALUE, e.g. --set k=5")
        try:
            overrides[key.strip()] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            overrides[key.strip()] = text
    return overrides


def plan_nodes(fleet: FleetDescription, mode: str = "sim") -> List[NodeSpec]:
    """The node set. sim: fleet_sim + coordinator + one local_agents node for all robots + markers.
    real: coordinator + one local_agents node per robot in namespace robot_<i> + markers."""
    if mode not in MODES:
        raise LaunchError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    n = fleet.n_robots
    if mode == "sim":
        # fleet_sim is the clock (it publishes /clock on wall time); every other node follows it.
        return [_spec(fleet, "fleet_sim", "fleet_sim", use_sim_time=False),
                _spec(fleet, "coordinator", "coordinator", use_sim_time=True, robots=n),
                _spec(fleet, "local_agents", "local_agents", use_sim_time=True, robots=n),
                _spec(fleet, "markers", "markers", use_sim_time=True, robots=n)]
    specs = [_spec(fleet, "coordinator", "coordinator", robots=n)]
    for robot in range(n):
        namespace = f"robot_{robot}"
        # The node's topics are relative (robot_<i>/odom, altmarl/global_command); pin them
        # to the fleet-wide names so the robot's namespace is not prepended twice.
        remaps = tuple((topic, f"/{topic}") for topic in
                       (f"{namespace}/odom", f"{namespace}/cmd_vel", GLOBAL_COMMAND_TOPIC))
        specs.append(_spec(fleet, "local_agents", "local_agent", namespace=namespace,
                           remappings=remaps, robots=[robot]))
    specs.append(_spec(fleet, "markers", "markers", robots=n))
    return specs


def _spec(fleet, kind, name, namespace="", remappings=(), **extra) -> NodeSpec:
    params = fleet.parameters_for(name)
    params.update(extra)
    return NodeSpec(kind=kind, name=name, namespace=namespace, parameters=params, remappings=remappings)


LAUNCH_OVERRIDES = ("n_robots", "k", "policy", "scenario", "seed", "use_sim_time")


def ros2_launch_description(mode: str):
    """The LaunchDescription of launch/<mode>_fleet.launch.py (needs the ROS 2 `launch` packages).

    Launch arguments: fleet (file), rviz, and LAUNCH_OVERRIDES; an empty one keeps the file's value.
    The nodes are planned when the launch runs, so `ros2 launch ... k:=5` is checked like `--set k=5`.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def nodes(context):
        from ament_index_python.packages import get_package_share_directory

        share = get_package_share_directory(PACKAGE)
        value = {key: LaunchConfiguration(key).perform(context)
                 for key in ("fleet", "rviz") + LAUNCH_OVERRIDES}
        fleet = load_fleet(value["fleet"] or os.path.join(share, "config", FLEET_FILE),
                           parse_overrides([f"{key}={value[key]}" for key in LAUNCH_OVERRIDES if value[key]]))
        actions = [Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                        namespace=spec.namespace or None, parameters=[dict(spec.parameters)],
                        remappings=list(spec.remappings), output="screen")
                   for spec in plan_nodes(fleet, mode)]
        if value["rviz"].lower() in ("true", "1", "yes"):
            actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
                                arguments=["-d", os.path.join(share, "config", "altmarl.rviz")]))
        return actions

    arguments = [DeclareLaunchArgument("fleet", default_value="",
                                       description=f"fleet description (default: share/{PACKAGE}/config/{FLEET_FILE})"),
                 DeclareLaunchArgument("rviz", default_value="true" if mode == "sim" else "false",
                                       description="also start rviz2 with config/altmarl.rviz")]
    arguments += [DeclareLaunchArgument(key, default_value="", description=f"override the fleet file's {key}")
                  for key in LAUNCH_OVERRIDES]
    return LaunchDescription(arguments + [OpaqueFunction(function=nodes)])


def node_class(kind: str):
    import importlib

    module, cls = NODE_CLASSES[kind]
    return getattr(importlib.import_module(module), cls)


# --------------------------------------------------------------------------- running


class FleetRun:
    """A started node set. Use as a context manager; `spin(seconds)` serves callbacks and watches children.

    `local_nodes(context)` builds extra nodes (e.g. the demo's welfare monitor) that always run
    in this process, in the same executor as the fleet (one process) or their own (several).
    A set `stop` event ends the start-up wait early (a signal while the children come up).
    """

    def __init__(self, specs: Sequence[NodeSpec], processes: bool = False,
                 local_nodes: Optional[Callable[[Any], Sequence[Any]]] = None,
                 stop: Optional[threading.Event] = None):
        self.specs = list(specs)
        self.processes = processes
        self._local_nodes_factory = local_nodes
        self._stop = stop or threading.Event()
        self.context = None
        self.executor = None
        self.nodes: List[Any] = []
        self.children: List[Tuple[NodeSpec, subprocess.Popen]] = []
        self._tmpdir = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _start(self):
        import rclpy
        from rclpy.context import Context
        from rclpy.node import Node
        from rclpy.signals import SignalHandlerOptions

        from altmarl_ros.nodes._ros import make_executor

        first = [spec for spec in self.specs if spec.kind not in STARTS_LAST]
        last = [spec for spec in self.specs if spec.kind in STARTS_LAST]
        if self.processes:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="altmarl-launch-")
            self.children = [(spec, self._spawn(spec)) for spec in first]
        self.context = Context()
        # The launcher handles SIGINT/SIGTERM itself (see run()); rclpy must not shut down first.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        if self._local_nodes_factory is not None:
            self.nodes.extend(self._local_nodes_factory(self.context))
        if self.processes:
            # A node of our own to watch the graph while the children come up.
            self.nodes.append(Node(f"altmarl_launcher_{os.getpid()}", context=self.context))
        else:
            for spec in first + last:
                cls = node_class(spec.kind)
                self.nodes.append(cls(params=dict(spec.parameters), context=self.context,
                                      cli_args=spec.ros_args()))
        self.executor = make_executor(self.context)
        for node in self.nodes:
            self.executor.add_node(node)
        if self.processes and last and self._wait_until_visible(first):
            self.children += [(spec, self._spawn(spec)) for spec in last]

    def _wait_until_visible(self, specs: Sequence[NodeSpec]) -> bool:
        """Serve callbacks until every node of `specs` is on the ROS graph and the graph's
        endpoints have stopped changing for GRAPH_SETTLE_SEC (its topics are discovered), or fail.
        False if `stop` was set meanwhile."""
        watcher = self.nodes[-1]
        wanted = {(spec.name, f"/{spec.namespace}") for spec in specs}
        deadline = time.monotonic() + STARTUP_TIMEOUT_SEC
        endpoints, stable_since = None, None
        while True:
            missing = wanted - set(watcher.get_node_names_and_namespaces())
            if not missing:
                now_endpoints = _endpoint_count(watcher)
                if now_endpoints != endpoints:
                    endpoints, stable_since = now_endpoints, time.monotonic()
                elif time.monotonic() - stable_since >= GRAPH_SETTLE_SEC:
                    return True
            if self._stop.is_set():
                return False
            failed = self.failed_child()
            if failed is not None:
                raise _exited(*failed)
            if time.monotonic() > deadline:
                if not missing:
                    return True  # every node is there; the graph is just busy
                names = ", ".join(sorted(f"{ns.rstrip('/')}/{name}" for name, ns in missing))
                raise LaunchError(f"nodes not on the ROS graph after {STARTUP_TIMEOUT_SEC:g} s: {names} "
                                  f"(check ROS_DOMAIN_ID / ROS_AUTOMATIC_DISCOVERY_RANGE)")
            self.executor.spin_once(timeout_sec=0.1)

    def _spawn(self, spec: NodeSpec) -> subprocess.Popen:
        params_file = Path(self._tmpdir.name) / f"{spec.label.strip('/').replace('/', '.')}.yaml"
        params_file.write_text(yaml.safe_dump({ALL_NODES: {"ros__parameters": dict(spec.parameters)}}))
        module = NODE_CLASSES[spec.kind][0]
        boot = (f"import sys; from {__name__} import warm_up_kernels; warm_up_kernels(); "
                f"from {module} import main; sys.exit(main())")
        argv = [sys.executable, "-c", boot] + spec.ros_args() + ["--params-file", str(params_file)]
        # Own session: a terminal's Ctrl-C reaches only the launcher, which stops the children itself.
        return subprocess.Popen(argv, preexec_fn=_die_with_parent, start_new_session=True)

    def failed_child(self) -> Optional[Tuple[NodeSpec, int]]:
        """The first child that exited on its own, with its exit code."""
        for spec, child in self.children:
            code = child.poll()
            if code is not None:
                return spec, code
        return None

    def spin(self, seconds: float) -> None:
        """Serve callbacks of this process's nodes for about `seconds`."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=remaining)

    def close(self, grace: float = 10.0) -> None:
        """Stop children (SIGTERM, then SIGKILL after `grace` s) and destroy in-process nodes.

        SIGTERM, not SIGINT: rclpy turns it into a context shutdown that the node's spin loop
        sees between callbacks, where SIGINT would raise KeyboardInterrupt inside one.
        """
        import rclpy

        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            alive = [child for _, child in self.children if child.poll() is None]
            if not alive:
                break
            for child in alive:
                child.send_signal(signum)
            deadline = time.monotonic() + wait
            for child in alive:
                try:
                    child.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        if self.executor is not None:
            self.executor.shutdown()
            self.executor = None
        for node in self.nodes:
            node.destroy_node()
        self.nodes = []
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
            self.context = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def _endpoint_count(node) -> int:
    """Publishers + subscriptions on every topic of the graph, as `node` sees it."""
    return sum(node.count_publishers(name) + node.count_subscribers(name)
               for name, _ in node.get_topic_names_and_types())


def warm_up_kernels() -> None:
    """Load the numba kernels the nodes call each decision (zones, ranks, ring controller) now.

    A process's first call of each loads its compiled code from numba's cache (~1 s,
    several under load). In a child node that happens at the first decision, while
    fleet_sim's clock runs on in its own process: the fleet would answer the first
    epochs seconds late. Called before the node is built, it delays only its start-up.
    """
    import numpy as np

    from altmarl_ros.core.counts import rank
    from altmarl_ros.core.ring import steer_to_zone, target_zone, zone_of_pose
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario()
    xs = np.zeros(2)
    zones = zone_of_pose(xs, xs, scenario.ring)
    target_zone(zones, zones, scenario.ring)
    steer_to_zone(xs, xs, xs, zones, scenario.ring, scenario.limits, scenario.controller)
    rank(np.bincount(zones, minlength=scenario.ring.n_zones))


def _exited(spec: NodeSpec, code: int) -> LaunchError:
    return LaunchError(f"node {spec.label} ({spec.executable}) exited with code {code} "
                       f"(its error is printed above); stopped the other nodes")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the launcher dies without stopping it.

    SIGKILL, not SIGTERM: a node's shutdown can hang (seen once: FastDDS busy-waiting in
    destroy_participant), and with the launcher gone nobody would escalate. When the
    launcher stops normally, close() sends SIGTERM first and SIGKILL only after a grace period.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a set threading.Event for the duration (main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(specs: Sequence[NodeSpec], *, processes: bool = False, duration: Optional[float] = None,
        local_nodes=None, on_tick: Optional[Callable[[], bool]] = None, tick: float = 0.5) -> int:
    """Run the node set until `duration` wall seconds pass, `on_tick()` returns True, or a signal.

    Returns 0 on all three; raises LaunchError if a node process exits by itself.
    """
    with stop_on_signals() as stop, FleetRun(specs, processes, local_nodes, stop) as fleet:
        end = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            fleet.spin(tick if end is None else max(0.0, min(tick, end - time.monotonic())))
            failed = fleet.failed_child()
            if failed is not None:
                raise _exited(*failed)
            if on_tick is not None and on_tick():
                break
            if end is not None and time.monotonic() >= end:
                break
    return 0
