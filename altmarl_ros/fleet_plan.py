"""The fleet plan: which nodes to start, with which parameters, from config/fleet.yaml.

`altmarl launch` and `altmarl demo` hand the plan to altmarl_ros.supervisor;
launch/*.launch.py on a real ROS 2 install turn the same plan into launch_ros
Nodes (`ros2_launch_description`), so both start exactly the same nodes with
exactly the same parameters. The fleet file may set every parameter a planned
node class declares (its PARAMETERS table), and nothing else.
"""
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from altmarl_ros import names, schema
from altmarl_ros.config_files import find_config
from altmarl_ros.core import budget
from altmarl_ros.core.safe_files import load_yaml, parse_yaml
from altmarl_ros.errors import AltmarlError, ConfigError
from altmarl_ros.node_parameters import NODE_PARAMETERS, ODOM_FRAME_MODES, POSE_SOURCES
from altmarl_ros.names import (CLOCK_TOPIC, COMMAND_TYPES, DEFAULT_ROBOT_TEMPLATE, DEPOT, GLOBAL_COMMAND_TOPIC,
                               action_entities, cmd_vel_topic, goal_topic, navigate_action, odom_topic, pose_topic)

PACKAGE = "altmarl_ros"
FLEET_FILE = "fleet.yaml"
ALL_NODES = "/**"
MODES = ("sim", "real")

# Node kind -> (module, class). The console script of kind X is `altmarl_X` = module:main.
NODE_CLASSES = {
    "fleet_sim": ("altmarl_ros.nodes.fleet_sim", "FleetSimNode"),
    "coordinator": ("altmarl_ros.nodes.coordinator", "CoordinatorNode"),
    "local_agents": ("altmarl_ros.nodes.local_agents", "LocalAgentsNode"),
    "markers": ("altmarl_ros.nodes.markers", "MarkersNode"),
}

# Memory of one robot's topics in the sim plan (6 DDS endpoints: odometry publisher and 3 readers,
# cmd_vel publisher and reader): 0.63 MiB measured (`altmarl launch --duration 3` at n = 50 and
# 400: 225 MiB and 441 MiB peak RSS), rounded up.
ROS_BYTES_PER_ROBOT = 1 << 20

# rclpy's own parameters, declared by every node.
ROS_PARAMETERS: Dict[str, tuple] = {"use_sim_time": (bool,), "start_type_description_service": (bool,)}
PATH_KEYS = ("policy",)
# The node names plan_nodes gives (local_agent: one per robot in real mode): the fleet file's sections.
NODE_NAMES = ("fleet_sim", "coordinator", "local_agents", "local_agent", "markers")
REQUIRED = schema.REQUIRED


class LaunchError(ConfigError):
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
    planned: Tuple[str, ...] = ()  # parameters the plan sets on top of the fleet file (e.g. a robot's ids)

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

    def ros2_run(self, params_file: str) -> str:
        """The `ros2 run` line that starts this node on its own host, reading the fleet file params_file:
        the same name, namespace, remappings and parameters as the launch files (docs/launch.md prints it)."""
        planned = [f"{key}:={json.dumps(self.parameters[key], separators=(',', ':'))}" for key in self.planned]
        words = ["ros2", "run", PACKAGE, self.executable, *self.ros_args(), "--params-file", params_file]
        for item in planned:
            words += ["-p", item]
        return " ".join(words)


def default_fleet_file() -> Path:
    """config/fleet.yaml from the source tree, else from the installed share/ directory."""
    return find_config(FLEET_FILE)


def load_fleet(path=None, overrides: Optional[Mapping[str, Any]] = None) -> FleetDescription:
    """Read and check a fleet description; `overrides` replace `/**` values (command line, launch args)."""
    path = Path(path) if path else default_fleet_file()
    document = load_yaml(path, f"fleet file (default: config/{FLEET_FILE})", LaunchError)
    if not isinstance(document, dict) or ALL_NODES not in document:
        raise LaunchError(f"fleet file {path}: needs a top-level '{ALL_NODES}:' section with "
                          f"'ros__parameters:' (a ROS 2 parameter file)")
    keys = fleet_keys()
    with schema.in_file(f"fleet file {path}", LaunchError):
        sections = _sections(document, keys)
    common = sections.pop(ALL_NODES)
    for key, value in schema.mapping(dict(overrides or {}), LaunchError, "override", keys).items():
        _check_type(f"override {key}={value!r}", key, value, keys)
        common[key] = value
    names = common.get("robot_names")
    if names:  # the roster names the fleet: n_robots is its length, and may be left out
        if common.setdefault("n_robots", len(names)) != len(names):
            raise LaunchError(f"fleet file {path}: n_robots = {common['n_robots']} but robot_names lists "
                              f"{len(names)} robots; drop n_robots (the roster sets it) or make them agree")
    for key in ("n_robots", "policy", "scenario"):
        if key not in common:
            raise LaunchError(f"fleet file {path}: '{ALL_NODES}.ros__parameters.{key}' is missing; "
                              f"every fleet needs it (see docs/launch.md)")
    if common["n_robots"] < 1:
        raise LaunchError(f"n_robots = {common['n_robots']}: the fleet needs at least one robot")
    if "k" in common:
        _check_k(common["k"], common["n_robots"])
    budget.require(f"a ROS fleet of n_robots = {common['n_robots']}", common["n_robots"] * ROS_BYTES_PER_ROBOT,
                   "use a smaller n_robots")
    start_seconds(common["n_robots"])
    for name, params in (("/**", common), *sections.items()):
        check_values({**common, **params} if name != ALL_NODES else params, f"fleet file {path}: {name}")
        if "control_period" in params:
            from altmarl_ros.nodes._params import check_control_period

            try:
                check_control_period(params["control_period"], f"fleet file {path}: {name}.control_period")
            except AltmarlError as err:
                raise LaunchError(str(err)) from None
    for key in PATH_KEYS:
        common[key] = str(Path(common[key]).expanduser().resolve())
    return FleetDescription(path=str(path), common=common, sections=sections)


# What the nodes' declare_* calls refuse, checked on the plan too, so that `launch --dry-run` refuses
# what the launch itself would, and a launch fails before any node starts (nodes/_params.py).
NON_NEGATIVE_INTEGERS = ("seed", "k", "log_every", "n_robots")
POSITIVE_SECONDS = ("control_period", "decision_period", "odom_timeout", "command_timeout", "cmd_vel_timeout",
                    "marker_period")
NON_NEGATIVE_NUMBERS = ("real_time_factor",)
MAX_SECONDS = 1e9
REQUIRED_TEXT = ("policy", "scenario")


def check_values(params: Mapping[str, Any], where: str) -> None:
    """The values of one section's parameters (types are checked already): ranges, names, choices."""
    for key in NON_NEGATIVE_INTEGERS:
        if key in params and params[key] < 0:
            raise LaunchError(f"{where}.{key}", f"= {params[key]}: must be >= 0")
    for key in POSITIVE_SECONDS + NON_NEGATIVE_NUMBERS:
        if key in params:
            value = float(params[key])
            low_ok = value >= 0 if key in NON_NEGATIVE_NUMBERS else value > 0
            if not (math.isfinite(value) and low_ok and value <= MAX_SECONDS):
                bound = ">= 0" if key in NON_NEGATIVE_NUMBERS else "> 0"
                raise LaunchError(f"{where}.{key}", f"= {value!r}: must be a finite number {bound} and at most "
                                                    f"{MAX_SECONDS:g}")
    for key in REQUIRED_TEXT:
        if key in params and not params[key].strip():
            raise LaunchError(f"{where}.{key}", "is empty; every fleet needs it (see docs/launch.md)")
    if params.get("robot_names"):
        names.check_robot_names(LaunchError, f"{where}.robot_names", params["robot_names"])
    elif "n_robots" in params:
        names.template_names(LaunchError, f"{where}.robot_template",
                             params.get("robot_template", DEFAULT_ROBOT_TEMPLATE), max(1, params["n_robots"]))
    for key, what in (("pose_topic", "a topic name"), ("map_frame", "a frame name")):
        if key in params:
            names.check_relative_name(LaunchError, f"{where}.{key}", params[key], what)
    for key, choices in _choices().items():
        if key in params and params[key] not in choices:
            raise LaunchError(f"{where}.{key}", f"= {params[key]!r}: choose one of {', '.join(choices)}")
    if "robots" in params:
        from altmarl_ros.nodes._params import parse_robot_ids

        try:
            parse_robot_ids("robots", params["robots"])
        except AltmarlError as err:
            raise LaunchError(f"{where}: {err}") from None


def _choices() -> Dict[str, Sequence[str]]:
    return {"pose_source": POSE_SOURCES, "command_type": COMMAND_TYPES, "odom_frames": ODOM_FRAME_MODES}


def start_seconds(n_robots: int) -> float:
    """Seconds a fleet's nodes take to build (their endpoints are created before anything runs),
    refused over the work ceiling (core.work)."""
    from altmarl_ros.core import work

    return work.require(f"starting a ROS fleet of n_robots = {n_robots}", {"robots started": n_robots},
                        "use a smaller n_robots")


def check_start_time(fleet: FleetDescription, duration: Optional[float]) -> None:
    """Refuse a fleet that could not even be built within `duration` (None: no limit)."""
    from altmarl_ros.core import work

    estimate = start_seconds(fleet.n_robots)
    if duration is not None and estimate > duration:
        raise LaunchError(f"starting a ROS fleet of n_robots = {fleet.n_robots}: its nodes take about "
                          f"{work.format_duration(estimate)} to build, longer than --duration {duration:g} s: use a "
                          f"longer --duration or a smaller n_robots")


def check_fleet(fleet: FleetDescription, mode: str = "sim"):
    """What the nodes check when they start, on the plan: the scenario loads, the policy loads and
    was trained on it, its k fits the fleet, and fleet_sim can simulate the command type. Returns the policy."""
    from altmarl_ros.core.policy import load_policy
    from altmarl_ros.nodes.fleet_sim import SIM_COMMAND_TYPES
    from altmarl_sim.scenario import load_scenario

    command_type = fleet.parameters_for("fleet_sim").get("command_type", SIM_COMMAND_TYPES[0])
    if mode == "sim" and command_type not in SIM_COMMAND_TYPES:
        raise LaunchError(f"fleet file {fleet.path}: command_type = {command_type!r}: the simulator takes "
                          f"{', '.join(SIM_COMMAND_TYPES)}; use --mode real for goal-driven robots")

    try:
        scenario = load_scenario(fleet.common["scenario"])
        policy = load_policy(fleet.common["policy"], scenario_hash=scenario.content_hash())
    except AltmarlError as err:
        raise LaunchError(f"fleet file {fleet.path}: {err}") from None
    check_policy_k(fleet, policy.k)
    return policy


def check_policy_k(fleet: FleetDescription, k: int) -> None:
    """The policy's k (the one source of k) fits the fleet, and is the k the fleet names, if it names one."""
    named = fleet.common.get("k")
    if named is not None and named != k:
        raise LaunchError(f"k = {named} (fleet file {fleet.path} or an override), but the policy was trained "
                          f"for k = {k}: drop k (the policy sets it) or use a policy trained for k = {named}")
    _check_k(k, fleet.n_robots)


def _check_k(k: int, n_robots: int) -> None:
    if not 1 <= k <= n_robots:
        raise LaunchError(f"k = {k}: must be between 1 and n_robots = {n_robots} "
                          f"(the coordinator samples k of the n robots)")


def fleet_keys() -> Dict[str, tuple]:
    """Keys the fleet file may set, with the types each must have: every parameter a planned
    node class declares. A typo is an error (ROS itself would silently ignore it)."""
    keys = dict(ROS_PARAMETERS)
    for kind in NODE_CLASSES:
        for key, types in NODE_PARAMETERS[kind].items():
            if keys.setdefault(key, types) != types:
                raise LaunchError(f"parameter '{key}': node kinds declare it with different types "
                                  f"({keys[key]} and {types}); declare one type")
    return keys


def _sections(document: dict, keys: Mapping[str, tuple]) -> Dict[str, Dict[str, Any]]:
    """Section name (/** or a node name) -> its checked ros__parameters."""
    by_name = {key if key == ALL_NODES else str(key).lstrip("/"): body for key, body in document.items()}
    sections = {}
    for name, body in schema.mapping(by_name, LaunchError, "", (ALL_NODES,) + NODE_NAMES).items():
        body = schema.fields(body, {"ros__parameters": (_parameters, REQUIRED)}, LaunchError, name)
        params = schema.mapping(body["ros__parameters"], LaunchError, f"{name}.ros__parameters", keys)
        for key, value in params.items():
            _check_type(f"{name}.ros__parameters.{key}", key, value, keys)
        sections[name] = dict(params)
    return sections


def _parameters(error, field, value):
    return schema.mapping({} if value is None else value, error, field)


def _check_type(where: str, key: str, value: Any, keys: Mapping[str, tuple]) -> None:
    types = keys[key]
    if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
        kinds = "/".join(t.__name__ for t in types)
        raise LaunchError(where, f"'{key}' must be {kinds}, got {value!r}")


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """['k=5', 'policy=p.npz'] -> {'k': 5, 'policy': 'p.npz'} with YAML typing (5 is an int)."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise LaunchError(f"--set {item!r}: write KEY=VALUE, e.g. --set k=5")
        overrides[key.strip()] = parse_yaml(text, f"--set {key.strip()}", LaunchError) if text else ""
    return overrides


def plan_nodes(fleet: FleetDescription, mode: str = "sim") -> List[NodeSpec]:
    """The node set. sim: fleet_sim + coordinator + one local_agents node for all robots + markers.
    real: coordinator + one local_agents node per robot in the robot's namespace + markers."""
    if mode not in MODES:
        raise LaunchError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    n = len(robot_names(fleet))
    if mode == "sim":
        # fleet_sim is the clock (it publishes /clock on wall time); every other node follows it.
        return [_spec(fleet, "fleet_sim", "fleet_sim", use_sim_time=False),
                _spec(fleet, "coordinator", "coordinator", use_sim_time=True, robots=n),
                _spec(fleet, "local_agents", "local_agents", use_sim_time=True, robots=n),
                _spec(fleet, "markers", "markers", use_sim_time=True, robots=n)]
    specs = [_spec(fleet, "coordinator", "coordinator", robots=n)]
    for robot, name in enumerate(robot_names(fleet)):
        # The node's topics are relative (<robot>/odom, altmarl/global_command, ...); pin them to
        # the fleet-wide names so the robot's namespace is not prepended twice.
        own = (odom_topic(name), cmd_vel_topic(name), goal_topic(name),
               pose_topic(name, fleet.common.get("pose_topic", "pose")), *action_entities(navigate_action(name)))
        remaps = tuple((topic, f"/{topic}") for topic in own + names.FLEET_WIDE_TOPICS)
        specs.append(_spec(fleet, "local_agents", "local_agent", namespace=name,
                           remappings=remaps, robots=[robot]))
    specs.append(_spec(fleet, "markers", "markers", robots=n))
    return specs


def robot_names(fleet: FleetDescription) -> List[str]:
    """The roster: robot_names, else robot_template (default robot_{id}) over ids 0..n_robots-1."""
    roster = fleet.common.get("robot_names")
    if roster:
        return names.check_robot_names(LaunchError, "robot_names", roster)
    template = fleet.common.get("robot_template", DEFAULT_ROBOT_TEMPLATE)
    return names.template_names(LaunchError, "robot_template", template, fleet.n_robots)


def fleet_topics(fleet: FleetDescription) -> List[str]:
    """The topics only this fleet's nodes should publish: /clock, the GlobalCommand, every robot's odometry."""
    return [CLOCK_TOPIC, f"/{GLOBAL_COMMAND_TOPIC}", f"/{odom_topic(DEPOT)}",
            *(f"/{odom_topic(name)}" for name in robot_names(fleet))]


def _spec(fleet, kind, name, namespace="", remappings=(), **planned) -> NodeSpec:
    params = fleet.parameters_for(name)
    params.update(planned)
    return NodeSpec(kind=kind, name=name, namespace=namespace, parameters=params, remappings=remappings,
                    planned=tuple(planned))


LAUNCH_OVERRIDES = ("n_robots", "k", "policy", "scenario", "seed", "use_sim_time")


def _recorder_launch_node(Node, fleet, mode: str, value: dict):
    """The recorder (nodes/recorder.py) for `record:=FILE.mcap`, the path checked like `altmarl launch
    --record`'s before any node starts. Its exit does not stop the fleet: a recording is not a safety path."""
    from altmarl_ros.core.atomic import check_output

    output = check_output(value["record"], [fleet.path, fleet.common.get("policy")], flag="record")
    record_odometry = value["record_odometry"].lower()
    if record_odometry not in ("true", "false", "1", "0", "yes", "no"):
        raise LaunchError(f"record_odometry:={value['record_odometry']}: use true or false")
    return Node(package=PACKAGE, executable="altmarl_recorder", name="recorder", output="screen",
                parameters=[{"output": str(Path(output).resolve()), "robots": fleet.n_robots,
                             "record_odometry": record_odometry in ("true", "1", "yes"),
                             "use_sim_time": mode == "sim"}])


def ros2_launch_description(mode: str):
    """The LaunchDescription of launch/<mode>_fleet.launch.py (needs the ROS 2 `launch` packages).

    Launch arguments: fleet (file), rviz, record (an MCAP file) and record_odometry, and LAUNCH_OVERRIDES;
    an empty one keeps the file's value.
    The nodes are planned when the launch runs, so `ros2 launch ... k:=5` is checked like `--set k=5`.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def nodes(context):
        from ament_index_python.packages import get_package_share_directory

        share = get_package_share_directory(PACKAGE)
        value = {key: LaunchConfiguration(key).perform(context)
                 for key in ("fleet", "rviz", "record", "record_odometry") + LAUNCH_OVERRIDES}
        fleet = load_fleet(value["fleet"] or os.path.join(share, "config", FLEET_FILE),
                           parse_overrides([f"{key}={value[key]}" for key in LAUNCH_OVERRIDES if value[key]]))
        # A node that exits (a crash, a bad parameter) shuts the whole fleet down, as `altmarl launch` does:
        # half a fleet (robots without a coordinator, a coordinator without a simulator) is not left running.
        actions = [Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                        namespace=spec.namespace or None, parameters=[dict(spec.parameters)],
                        remappings=list(spec.remappings), output="screen",
                        on_exit=[Shutdown(reason=f"{spec.label} exited")])
                   for spec in plan_nodes(fleet, mode)]
        if value["record"]:
            actions.append(_recorder_launch_node(Node, fleet, mode, value))
        if value["rviz"].lower() in ("true", "1", "yes"):
            # Closing the viewer leaves the fleet running; it follows the simulator's clock in sim mode.
            actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
                                arguments=["-d", os.path.join(share, "config", "altmarl.rviz")],
                                parameters=[{"use_sim_time": mode == "sim"}]))
        return actions

    arguments = [DeclareLaunchArgument("fleet", default_value="",
                                       description=f"fleet description (default: share/{PACKAGE}/config/{FLEET_FILE})"),
                 DeclareLaunchArgument("rviz", default_value="true" if mode == "sim" else "false",
                                       description="also start rviz2 with config/altmarl.rviz"),
                 DeclareLaunchArgument("record", default_value="",
                                       description="record GlobalCommands and the depot's odometry to this MCAP file "
                                                   "(altmarl replay reads it; docs/operations.md)"),
                 DeclareLaunchArgument("record_odometry", default_value="false",
                                       description="with record: also record every robot's odometry")]
    arguments += [DeclareLaunchArgument(key, default_value="", description=f"override the fleet file's {key}")
                  for key in LAUNCH_OVERRIDES]
    return LaunchDescription(arguments + [OpaqueFunction(function=nodes)])


def node_class(kind: str):
    import importlib

    module, cls = NODE_CLASSES[kind]
    return getattr(importlib.import_module(module), cls)
