"""Scenarios: the warehouse-ring world as validated YAML (config/scenarios/<name>.yaml).

`load_scenario("warehouse_ring")` or `load_scenario("path/to/my.yaml")` returns a
frozen `Scenario`; any mistake raises `ScenarioError` naming the YAML key path,
e.g. "robots.max_speed: must be > 0, got -1". docs/simulator.md documents every key.
The MDP sizes follow from the ring: |S_g| = |A_g| = |S_l| = Z zones, |A_l| = 3.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altmarl_ros import schema
from altmarl_ros.config_files import config_dirs
from altmarl_ros.core._checks import (as_float, integer, non_negative, positive,
                                      probability)
from altmarl_ros.core.model import REWARD_LIMIT
from altmarl_ros.core.safe_files import load_yaml
from altmarl_ros.errors import ConfigError
from altmarl_sim.kinematics import Faults, Noise, RobotLimits
from altmarl_sim.ring import N_LOCAL_ACTIONS, ControllerGains, RingGeometry

DEFAULT_SCENARIO = "warehouse_ring"


class ScenarioError(ConfigError):
    """A scenario file is missing, unreadable, or has a bad or unknown key."""


@dataclass(frozen=True)
class Rewards:
    """Per decision epoch. service: reward of a worker that starts the epoch in the
    depot's zone (it is loaded/unloaded); worker_energy, depot_energy: cost per metre
    driven during the epoch (>= 0, subtracted)."""

    service: float
    worker_energy: float
    depot_energy: float

    def local_reward(self, served, metres):
        """r_l of each worker: `service` if it started the epoch in the depot's zone, less its energy."""
        return self.service * served - self.worker_energy * metres

    def depot_reward(self, metres):
        """r_g: the depot's energy for the metres it drove."""
        return -self.depot_energy * metres

    def epoch(self, served, worker_metres, depot_metres: float) -> tuple[np.ndarray, float, float]:
        """(r_l per worker, r_g, the epoch's reward r_g + mean r_l): what the simulator, the
        generative sampler's pooled epochs and the welfare monitor all score."""
        local = self.local_reward(served, worker_metres)
        depot = self.depot_reward(float(depot_metres))
        return local, depot, depot + float(local.mean())


@dataclass(frozen=True)
class Timing:
    """control_period: one kinematic step and cmd_vel/odom period (s); decision_epoch:
    one MDP step (s), an integer multiple of control_period."""

    control_period: float
    decision_epoch: float

    @property
    def steps_per_epoch(self) -> int:
        return int(round(self.decision_epoch / self.control_period))


@dataclass(frozen=True)
class ContinuousSettings:
    """The `continuous:` section: the scenario's continuous-state game (altmarl_sim.continuous_ring) instead
    of zones. Observation only, not physics: the robots, rewards and timing are the scenario's own.
    bins_per_zone: histogram bins per zone of the global agent's summary of its k samples;
    train_workers: robots in the FA learners' training rollouts; horizon_train / horizon_eval: their epochs."""

    bins_per_zone: int = 4
    train_workers: int = 100
    horizon_train: int = 50
    horizon_eval: int = 100


@dataclass(frozen=True)
class Scenario:
    """A validated warehouse-ring world. Build it with load_scenario or parse_scenario."""

    name: str
    description: str
    ring: RingGeometry
    workers: int
    start_zone_weights: tuple  # Z floats summing to 1: the workers' start distribution mu0_l
    depot_start_zone: int | None  # None: uniformly random
    start_jitter: float
    limits: RobotLimits
    controller: ControllerGains
    noise: Noise
    faults: Faults
    rewards: Rewards
    timing: Timing
    gamma: float
    source: str | None = None  # file it was read from (not part of the content hash)
    continuous: ContinuousSettings | None = None  # local states are positions, not zones (not in the hash)

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """(n_sg, n_ag, n_sl, n_al) of the mean-field game this world induces."""
        z = self.ring.n_zones
        return z, z, z, N_LOCAL_ACTIONS

    @property
    def mu0_l(self) -> np.ndarray:
        return np.array(self.start_zone_weights, dtype=np.float64)

    @property
    def mu0_g(self) -> np.ndarray:
        z = self.ring.n_zones
        if self.depot_start_zone is None:
            return np.full(z, 1.0 / z)
        mu = np.zeros(z)
        mu[self.depot_start_zone] = 1.0
        return mu

    def to_dict(self) -> dict:
        """The scenario in its YAML layout (every key explicit)."""
        return {
            "name": self.name,
            "description": self.description,
            "zones": {"count": self.ring.n_zones, "radius": self.ring.radius,
                      "width": self.ring.width},
            "fleet": {"workers": self.workers,
                      "start_zone_weights": list(self.start_zone_weights),
                      "depot_start_zone": ("random" if self.depot_start_zone is None
                                           else self.depot_start_zone),
                      "start_jitter": self.start_jitter},
            "robots": _fields(self.limits),
            "controller": _fields(self.controller),
            "noise": _fields(self.noise),
            "faults": _fields(self.faults),
            "rewards": _fields(self.rewards),
            "timing": _fields(self.timing),
            "gamma": self.gamma,
            **({} if self.continuous is None else {"continuous": _fields(self.continuous)}),
        }

    def content_hash(self) -> str:
        """16 hex digits of SHA-256 over everything that shapes the dynamics and
        rewards (not the name, description, file location or the continuous section, which
        changes what the agents observe: a continuous scenario has its tabular twin's hash)."""
        content = self.to_dict()
        del content["name"], content["description"]
        content.pop("continuous", None)
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fields(obj) -> dict:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


# ---------------------------------------------------------------------------
# schema (altmarl_ros.schema): section -> key -> (checker, default)

_REQUIRED = schema.REQUIRED


def _count(minimum):
    return lambda error, field, value: integer(error, field, value, minimum)


def _gamma(error, field, value):
    value = as_float(error, field, value)
    if not 0.0 <= value < 1.0:
        raise error(field, f"must be in [0, 1), got {value:g}")
    return value


def _text(error, field, value):
    if not isinstance(value, str):
        raise error(field, f"must be a string, got {value!r}")
    return value


def _reward(error, field, value):
    value = as_float(error, field, value)
    if abs(value) > REWARD_LIMIT:
        raise error(field, f"must be within +-{REWARD_LIMIT:g} (rescale the rewards), got {value:g}")
    return value


def _cost(error, field, value):
    return _reward(error, field, non_negative(error, field, value))


def _section(error, field, value):
    return {} if value is None else value  # an empty section (`noise:`) takes the defaults


def _passthrough(error, field, value):
    return value  # checked once the zone count is known


_DEFAULT_GAINS = ControllerGains()
_SCHEMA = {
    "zones": {"count": (_count(2), _REQUIRED), "radius": (positive, _REQUIRED),
              "width": (positive, _REQUIRED)},
    "fleet": {"workers": (_count(1), _REQUIRED), "start_zone_weights": (_passthrough, "uniform"),
              "depot_start_zone": (_passthrough, "random"), "start_jitter": (non_negative, 0.0)},
    "robots": {name: (positive, _REQUIRED) for name in RobotLimits.__dataclass_fields__},
    "controller": {name: (positive, getattr(_DEFAULT_GAINS, name))
                   for name in ControllerGains.__dataclass_fields__},
    "noise": {name: (non_negative, 0.0) for name in Noise.__dataclass_fields__},
    "faults": {"stall_probability": (probability, 0.0), "stall_duration_min": (non_negative, 0.0),
               "stall_duration_max": (non_negative, 0.0)},
    "rewards": {"service": (_reward, _REQUIRED), "worker_energy": (_cost, _REQUIRED),
                "depot_energy": (_cost, _REQUIRED)},
    "timing": {"control_period": (positive, _REQUIRED), "decision_epoch": (positive, _REQUIRED)},
    "continuous": {name: (_count(1), getattr(ContinuousSettings, name))
                   for name in ContinuousSettings.__dataclass_fields__},
}
_TOP_LEVEL = {"name": (_text, None), "description": (_text, ""), "gamma": (_gamma, _REQUIRED)}


def _build(error_prefix: str, cls, **kwargs):
    """Construct a core dataclass, re-raising its range errors with the YAML section."""
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ScenarioError(f"{error_prefix}.{err.field}", err.detail) from None


def parse_scenario(data, name: str = "scenario", source: str | None = None) -> Scenario:
    """Validate a scenario given as a parsed YAML mapping."""
    sections = {name: (_section, _REQUIRED if any(d is _REQUIRED for _, d in keys.values()) else {})
                for name, keys in _SCHEMA.items()}
    sections["continuous"] = (_section, None)  # absent: a zone scenario; present (even empty): continuous
    top = schema.fields(data, {**_TOP_LEVEL, **sections}, ScenarioError)
    s = {section: None if top[section] is None else schema.fields(top[section], _SCHEMA[section], ScenarioError,
                                                                   section) for section in _SCHEMA}

    zones = s["zones"]
    ring = _build("zones", RingGeometry, n_zones=zones["count"], radius=zones["radius"],
                  width=zones["width"])
    fleet = s["fleet"]
    weights = _start_weights(fleet["start_zone_weights"], ring.n_zones)
    depot_zone = fleet["depot_start_zone"]
    if depot_zone == "random":
        depot_zone = None
    elif (isinstance(depot_zone, bool) or not isinstance(depot_zone, int)
          or not 0 <= depot_zone < ring.n_zones):
        raise ScenarioError("fleet.depot_start_zone",
                            f"must be a zone in 0..{ring.n_zones - 1} or 'random', got {depot_zone!r}")
    # a start position must stay inside its zone's sector and the annulus
    room = min(0.5 * ring.width, ring.radius * math.sin(math.pi / ring.n_zones))
    if fleet["start_jitter"] >= room:
        raise ScenarioError("fleet.start_jitter",
                            f"must be < {room:g} m (half the width, and the distance from a zone "
                            f"centre to its boundary), got {fleet['start_jitter']:g}")
    timing = Timing(**s["timing"])
    steps = timing.decision_epoch / timing.control_period
    if round(steps) < 1 or abs(steps - round(steps)) > 1e-9 * steps:
        raise ScenarioError("timing.decision_epoch",
                            f"must be an integer multiple of timing.control_period "
                            f"({timing.control_period:g}), got {timing.decision_epoch:g}")
    return Scenario(
        name=top["name"] or name,
        description=top["description"],
        ring=ring,
        workers=fleet["workers"],
        start_zone_weights=weights,
        depot_start_zone=depot_zone,
        start_jitter=fleet["start_jitter"],
        limits=_build("robots", RobotLimits, **s["robots"]),
        controller=_build("controller", ControllerGains, **s["controller"]),
        noise=_build("noise", Noise, **s["noise"]),
        faults=_build("faults", Faults, **s["faults"]),
        rewards=Rewards(**s["rewards"]),
        timing=timing,
        gamma=top["gamma"],
        source=source,
        continuous=_continuous(s["continuous"], top["gamma"]),
    )


def _continuous(section, gamma: float):
    if section is None:
        return None
    if gamma <= 0.0:  # altmarl_sim.continuous_ring charges an epoch's energy one epoch late, divided by gamma
        raise ScenarioError("gamma", "must be > 0 in a continuous scenario (its energy costs are charged at the "
                                     "next epoch, divided by gamma), got 0")
    return ContinuousSettings(**section)


def _start_weights(value, n_zones: int) -> tuple:
    field = "fleet.start_zone_weights"
    if value == "uniform":
        return tuple([1.0 / n_zones] * n_zones)
    if not isinstance(value, list) or len(value) != n_zones:
        raise ScenarioError(field, f"must be 'uniform' or a list of {n_zones} weights "
                                   f"(one per zone), got {value!r}")
    weights = [non_negative(ScenarioError, f"{field}[{i}]", w) for i, w in enumerate(value)]
    total = sum(weights)
    if total <= 0:
        raise ScenarioError(field, "must have a positive sum")
    return tuple(w / total for w in weights)


def scenario_path(name_or_path) -> Path:
    """The YAML file for a scenario name (config/scenarios/<name>.yaml) or a path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or path.is_file() or "/" in text:
        if not path.is_file():
            raise ScenarioError("scenario", f"no such file: {path}")
        return path
    for directory in config_dirs("scenarios"):
        candidate = directory / f"{text}.yaml"
        if candidate.is_file():
            return candidate
    raise ScenarioError("scenario", f"unknown scenario {text!r} (available: "
                                    f"{', '.join(available_scenarios()) or 'none'}; or give a path "
                                    f"to a .yaml file)")


def available_scenarios() -> list[str]:
    names = set()
    for directory in config_dirs("scenarios"):
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.yaml"))
    return sorted(names)


def load_scenario(name_or_path=DEFAULT_SCENARIO) -> Scenario:
    """Load and validate a scenario by name or path."""
    path = scenario_path(name_or_path)
    data = load_yaml(path, "scenario", lambda message: ScenarioError("scenario", message))
    return parse_scenario(data, name=path.stem, source=str(path))
