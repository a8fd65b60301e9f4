"""Declare and validate node parameters so a bad value stops the node with one named error.

Every node parameter goes through `declare_*` here: it is declared read-only
with a ParameterDescriptor (so `ros2 param describe` explains it, and
`ros2 param set` is refused rather than ignored) and checked at start-up. A mistake raises
`ParameterError`, whose message names the parameter, the value given and the fix; `_ros.run_node`
prints it as one log line and exits non-zero instead of a traceback.
"""
import math
from pathlib import Path
from typing import Any, Iterable, List, Optional, Tuple

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException

from altmarl_ros.errors import AltmarlError, ConfigError
from altmarl_ros.names import check_robot_names, template_names


class ParameterError(ConfigError):
    """A node parameter is missing, of the wrong type, out of range, or inconsistent."""




def _declare(node, name: str, default: Any, description: str, dynamic: bool = False) -> Any:
    table = getattr(type(node), "PARAMETERS", None)  # an AltmarlNode's; None for a bare rclpy Node
    if table is not None and name not in table:
        raise ParameterError(f"{type(node).__name__} declares parameter '{name}' but its PARAMETERS "
                             f"table does not list it: add it there (the fleet file reads the table)")
    # Read-only: every value is checked and used once, at start-up; `ros2 param set` says so
    # instead of reporting a success that changes nothing.
    descriptor = ParameterDescriptor(description=description, dynamic_typing=dynamic, read_only=True)
    try:
        return node.declare_parameter(name, default, descriptor).value
    except ParameterException as err:
        raise ParameterError(f"parameter '{name}': {err}; expected {_kind(default)} "
                             f"(e.g. {name}:={default!r})") from None


def _kind(default: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number",
            str: "a string"}.get(type(default), "a value")


def declare_str(node, name: str, default: str, description: str, *, required: bool = False) -> str:
    value = _declare(node, name, default, description)
    if required and not value:
        raise ParameterError(f"parameter '{name}' is required: {description} (set {name}:=...)")
    return value


def declare_bool(node, name: str, default: bool, description: str) -> bool:
    return bool(_declare(node, name, default, description))


def declare_int(node, name: str, default: int, description: str, *, minimum: Optional[int] = None) -> int:
    value = _declare(node, name, default, description)
    if minimum is not None and value < minimum:
        raise ParameterError(f"parameter '{name}' = {value}: must be >= {minimum}")
    return int(value)


def declare_float(node, name: str, default: float, description: str, *,
                  positive: bool = False, minimum: Optional[float] = None) -> float:
    """A double parameter; an integer value (control_period:=1) is accepted as a number."""
    value = _declare(node, name, float(default), description, dynamic=True)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"parameter '{name}' = {value!r}: must be a number (e.g. {name}:={default})")
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(f"parameter '{name}' = {value}: must be finite")
    if positive and value <= 0.0:
        raise ParameterError(f"parameter '{name}' = {value}: must be > 0")
    if minimum is not None and value < minimum:
        raise ParameterError(f"parameter '{name}' = {value}: must be >= {minimum}")
    return value


def declare_robot_ids(node, name: str, description: str, *, default_count: Optional[int]) -> List[int]:
    """Robot ids from `name`: a count n (ids 0..n-1) or a list of distinct ids ([3] for one robot).

    Unset -> `default_count` robots (the scenario's fleet size); None means it is required.
    """
    value = _declare(node, name, None, description, dynamic=True)
    if value is None:
        if default_count is None:
            raise ParameterError(f"parameter '{name}' is required: a robot count (e.g. {name}:=50) "
                                 f"or a list of ids (e.g. {name}:=[3])")
        value = default_count
    return parse_robot_ids(name, value)


def parse_robot_ids(name: str, value: Any) -> List[int]:
    if isinstance(value, bool):
        raise ParameterError(f"parameter '{name}' = {value!r}: give a robot count or a list of robot ids")
    if isinstance(value, int):
        if value < 1:
            raise ParameterError(f"parameter '{name}' = {value}: the robot count must be >= 1")
        return list(range(value))
    if isinstance(value, (list, tuple)) or _is_int_array(value):
        if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ParameterError(f"parameter '{name}' = {list(value)!r}: robot ids must be integers")
        ids = [int(v) for v in value]
        if not ids:
            raise ParameterError(f"parameter '{name}' = []: list at least one robot id")
        if min(ids) < 0:
            raise ParameterError(f"parameter '{name}': robot id {min(ids)} is negative; ids are >= 0")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ParameterError(f"parameter '{name}': robot ids {duplicates} are listed more than once")
        return ids
    raise ParameterError(f"parameter '{name}' = {value!r}: give a robot count (e.g. {name}:=50) "
                         f"or a list of integer ids (e.g. {name}:=[0, 4, 7])")


def _is_int_array(value: Iterable) -> bool:
    # rclpy hands INTEGER_ARRAY parameters back as array('q').
    return getattr(value, "typecode", None) in ("q", "l", "i")


def declare_scenario(node):
    """The `scenario` parameter (a name in config/scenarios or a YAML path), loaded and validated."""
    from altmarl_sim.scenario import DEFAULT_SCENARIO, load_scenario

    name = declare_str(node, "scenario", DEFAULT_SCENARIO,
                       "scenario name (config/scenarios/<name>.yaml) or path to a scenario YAML file")
    try:
        return load_scenario(name)
    except AltmarlError as err:
        raise ParameterError(f"parameter 'scenario' = {name!r}: {err}") from None


def declare_policy(node, scenario):
    """The `policy` file (from `altmarl train`), refused unless it was trained on `scenario`: a tabular policy
    on a zone scenario, an FA policy (core/fa_policy.py) on a continuous one (altmarl_sim.continuous_ring)."""
    from altmarl_sim.rollout import load_scenario_policy

    path = declare_str(node, "policy", "", "policy file written by `altmarl train` (.npz); a relative path "
                       "is resolved against the directory the node was started in", required=True)
    try:
        return load_scenario_policy(path, scenario)
    except AltmarlError as err:
        where = Path(path).expanduser()
        hint = "" if where.is_file() else (f" (looked for {where.resolve()}: a relative path is resolved against the "
                                           f"directory the node was started in; set policy:=/absolute/path.npz)")
        raise ParameterError(f"parameter 'policy' = {path!r} (scenario {scenario.name!r}): {err}{hint}") from None


def declare_choice(node, name: str, choices, description: str) -> str:
    """A string parameter that must be one of `choices` (the first is the default)."""
    value = declare_str(node, name, choices[0], f"{description} (one of: {', '.join(choices)})")
    if value not in choices:
        raise ParameterError(f"parameter '{name}' = {value!r}: choose one of {', '.join(choices)}")
    return value


def declare_roster(node, scenario) -> List[str]:
    """The fleet's robot names, index = robot id: `robot_names`, else `robot_template` over 0..n_robots-1.

    A name is the robot's namespace: topics <name>/odom, <name>/cmd_vel, frames <name>/base_link.
    """
    names = _declare(node, "robot_names", None, "the fleet's robot names in id order (e.g. [amr_a, amr_b]); "
                     "unset: robot_template over ids 0..n_robots-1", dynamic=True)
    template = declare_str(node, "robot_template", "robot_{id}",
                           "robot name of id {id} when robot_names is unset (e.g. amr_{id:02d})")
    n_robots = declare_int(node, "n_robots", scenario.workers,
                           "fleet size: robot ids 0..n_robots-1 (default: the scenario's fleet.workers; "
                           "ignored when robot_names is set)", minimum=1)
    if names is not None:  # ROS naming rules, no depot, no repeats: the one check of altmarl_ros.names
        return check_robot_names(ParameterError, "parameter 'robot_names'", list(names) if not isinstance(
            names, str) else names)
    return template_names(ParameterError, "parameter 'robot_template'", template, n_robots)


def declare_robots(node, scenario, purpose: str) -> Tuple[List[int], List[str]]:
    """(ids, names) of the robots this node handles: `robots` (default: the whole roster)."""
    roster = declare_roster(node, scenario)
    ids = declare_robot_ids(node, "robots", f"{purpose}: a count n (ids 0..n-1) or a list of ids",
                            default_count=len(roster))
    beyond = [i for i in ids if i >= len(roster)]
    if beyond:
        raise ParameterError(f"parameter 'robots': ids {beyond} are not in the fleet of {len(roster)} robots "
                             f"(raise n_robots or list them in robot_names)")
    return ids, [roster[i] for i in ids]


# Below this a timer fires faster than a node can serve its callbacks: no decision is made.
MIN_CONTROL_PERIOD_SEC = 0.001
FAR_FROM_TRAINED = 2.0  # a period this many times off the trained one changes what the policy controls


def check_control_period(control_period: float, where: str = "parameter 'control_period'") -> float:
    if control_period < MIN_CONTROL_PERIOD_SEC:
        raise ParameterError(f"{where} = {control_period:g} s is too small to make progress (timers faster "
                             f"than {1 / MIN_CONTROL_PERIOD_SEC:g} Hz starve the node); use at least "
                             f"{MIN_CONTROL_PERIOD_SEC:g} s, e.g. the scenario's timing.control_period")
    return control_period


def warn_if_far_from_trained(node, name: str, value: float, trained: float) -> None:
    """A logged warning when a period is more than FAR_FROM_TRAINED times off the scenario's."""
    if not 1 / FAR_FROM_TRAINED <= value / trained <= FAR_FROM_TRAINED:
        node.get_logger().warning(f"parameter '{name}' = {value:g} s is {value / trained:.3g} times the "
                                  f"{trained:g} s the policy was trained with: the robots will not behave as "
                                  f"evaluated")


def declare_control_period(node, scenario) -> float:
    trained = scenario.timing.control_period
    period = check_control_period(declare_float(
        node, "control_period", trained,
        "s between cmd_vel/odometry updates (default: the scenario's timing.control_period)", positive=True))
    warn_if_far_from_trained(node, "control_period", period, trained)
    return period
