"""FleetSim: n worker robots and one depot robot on the warehouse ring.

Robots 0..n-1 are the workers (local agents); robot n is the depot (global agent).
Two ways to drive it, sharing one state and the same kinematics kernel:

(a) offline, one MDP step at a time: `step_epoch(local_actions, global_action)` turns
    each worker's action into a goal zone (stay / next / previous) and the depot's
    action into its goal zone, runs the ring controller and the kinematics for every
    robot at the control period across one decision epoch, and returns the zones
    reached and the epoch's reward
        r = r_g + (1/n) sum_i r_l,i
        r_l,i = service * [worker i starts the epoch in the depot's zone]
                - worker_energy * metres worker i drove
        r_g   = - depot_energy * metres the depot drove.
(b) externally commanded (the ROS fleet_sim node): `set_commands(v, w)` for all n+1
    robots, `step_control()` advances one control period (limits, noise, stalls),
    then read `poses`, `velocities`, `time`.

Same scenario, n and seed -> same trajectory (every call draws its noise seed from
the simulator's own numpy Generator; see altmarl_ros.core.kinematics).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from altmarl_ros.core._checks import integer
from altmarl_ros.core.kinematics import _control_step, _step_commanded, _stream
from altmarl_ros.core.ring import (ACTION_ZONE_STEP, N_LOCAL_ACTIONS, _steer_to_zone,
                                   _zones_of_xy)
from altmarl_sim.scenario import Scenario, ScenarioError


class FleetError(ScenarioError):
    """Bad arguments to FleetSim (fleet size, actions, commands, zones)."""


@njit(cache=True)
def _run_epoch(poses, velocities, stall, goal_zones, centres, radius, cos_look, sin_look,
               speed_gain, heading_gain, tolerance, seed, steps, dt, max_v, max_w, max_dv, max_dw,
               speed_std, turn_std, p_stall, stall_min, stall_span, travelled):
    """Every robot drives to its goal zone with the ring controller for `steps` steps.
    Time steps outside, robots inside: consecutive iterations are independent robots,
    which the CPU overlaps (a robot's own step chain is long and serial); ~20% faster
    than robots outside."""
    n = poses.shape[0]
    x = poses[:, 0].copy()
    y = poses[:, 1].copy()
    yaw = poses[:, 2].copy()
    c = np.cos(yaw)
    s = np.sin(yaw)
    v = velocities[:, 0].copy()
    w = velocities[:, 1].copy()
    state = np.empty(n, dtype=np.uint64)
    for i in range(n):
        state[i] = _stream(seed, np.uint64(i))
        travelled[i] = 0.0
    for _ in range(steps):
        for i in range(n):
            cmd_v, cmd_w = _steer_to_zone(x[i], y[i], c[i], s[i], goal_zones[i], centres, radius,
                                          cos_look, sin_look, max_v, max_w, speed_gain,
                                          heading_gain, tolerance)
            x[i], y[i], yaw[i], c[i], s[i], v[i], w[i], stall[i], state[i], d = _control_step(
                x[i], y[i], yaw[i], c[i], s[i], v[i], w[i], stall[i], cmd_v, cmd_w, state[i], dt,
                max_v, max_w, max_dv, max_dw, speed_std, turn_std, p_stall, stall_min, stall_span)
            travelled[i] += d
    poses[:, 0] = x
    poses[:, 1] = y
    poses[:, 2] = yaw
    velocities[:, 0] = v
    velocities[:, 1] = w


class FleetSim:
    """n workers + 1 depot (index n) on the scenario's ring; see the module docstring."""

    def __init__(self, scenario: Scenario, n: int | None = None, seed: int = 0):
        if not isinstance(scenario, Scenario):
            raise FleetError("scenario", f"must be a Scenario (load_scenario), got {type(scenario).__name__}")
        self.scenario = scenario
        self.n = scenario.workers if n is None else integer(FleetError, "n", n, 1)
        self.seed = integer(FleetError, "seed", seed, 0)
        self._rng = np.random.default_rng(self.seed)
        ring, timing = scenario.ring, scenario.timing
        self._centres = ring.zone_centres()
        self._dt = timing.control_period
        self._steps = timing.steps_per_epoch
        self._p_stall = scenario.faults.per_step_probability(timing.control_period,
                                                             timing.decision_epoch)
        self._poses = np.zeros((self.n + 1, 3))
        self._velocities = np.zeros((self.n + 1, 2))
        self._commands = np.zeros((self.n + 1, 2))
        self.stall_remaining = np.zeros(self.n + 1)  # seconds each robot stays stalled
        self._travelled = np.zeros(self.n + 1)
        self.time = 0.0
        self.last_local_rewards = np.zeros(self.n)
        self.last_global_reward = 0.0
        self.reset()

    @property
    def depot_index(self) -> int:
        return self.n

    # -- state -------------------------------------------------------------

    def reset(self, worker_zones=None, depot_zone: int | None = None) -> None:
        """Put every robot at rest near a zone centre, facing counter-clockwise along
        the ring, with no stall and zero commands; time back to 0. Zones not given
        are drawn from the scenario's start distribution (mu0_l, mu0_g). Each start
        position is the centre plus a uniform offset within `start_jitter` metres,
        which the scenario guarantees stays inside the zone."""
        z = self.scenario.ring.n_zones
        if worker_zones is None:
            worker_zones = self._rng.choice(z, size=self.n, p=self.scenario.mu0_l)
        worker_zones = self._zone_array("worker_zones", worker_zones, self.n)
        if depot_zone is None:
            depot_zone = self._rng.choice(z, p=self.scenario.mu0_g)
        depot_zone = self._zone_array("depot_zone", [depot_zone], 1)
        zones = np.concatenate([worker_zones, depot_zone])
        jitter = self.scenario.start_jitter
        radius = jitter * np.sqrt(self._rng.random(self.n + 1))
        angle = 2.0 * np.pi * self._rng.random(self.n + 1)
        self._poses[:, 0] = self._centres[zones, 0] + radius * np.cos(angle)
        self._poses[:, 1] = self._centres[zones, 1] + radius * np.sin(angle)
        centre_angle = (2.0 * np.pi * (zones + 0.5)) / z
        self._poses[:, 2] = np.mod(centre_angle + 0.5 * np.pi + np.pi, 2.0 * np.pi) - np.pi
        self._velocities[:] = 0.0
        self._commands[:] = 0.0
        self.stall_remaining[:] = 0.0
        self.time = 0.0

    def _zone_array(self, name, zones, size) -> np.ndarray:
        zones = np.asarray(zones)
        if zones.shape != (size,) or zones.dtype.kind not in "iu":
            raise FleetError(name, f"must be {size} integer zone indices, got shape {zones.shape} "
                                   f"dtype {zones.dtype}")
        bad = np.flatnonzero((zones < 0) | (zones >= self.scenario.ring.n_zones))
        if bad.size:
            raise FleetError(f"{name}[{bad[0]}]", f"must be a zone in "
                                                  f"0..{self.scenario.ring.n_zones - 1}, got {zones[bad[0]]}")
        return zones.astype(np.int64)

    @property
    def poses(self) -> np.ndarray:
        """[n+1, 3] (x, y, yaw) in the map frame, read-only view (depot last)."""
        view = self._poses.view()
        view.flags.writeable = False
        return view

    @property
    def velocities(self) -> np.ndarray:
        """[n+1, 2] (v, w) the robots are moving at, read-only view (depot last)."""
        view = self._velocities.view()
        view.flags.writeable = False
        return view

    def all_zones(self) -> np.ndarray:
        """Zone of every robot, [n+1] int64 (depot last)."""
        out = np.empty(self.n + 1, dtype=np.int64)
        _zones_of_xy(self._poses[:, 0], self._poses[:, 1], self.scenario.ring.n_zones, out)
        return out

    def zones(self) -> np.ndarray:
        """Local states: zone of every worker, [n] int64."""
        return self.all_zones()[: self.n]

    def depot_zone(self) -> int:
        """Global state: the depot's zone."""
        return int(self.all_zones()[self.n])

    # -- (a) offline decision epochs ----------------------------------------

    def step_epoch(self, local_actions, global_action: int) -> tuple[np.ndarray, int, float]:
        """One MDP step: returns (next worker zones [n], next depot zone, reward).
        The per-worker local rewards and the depot's reward of this epoch are left in
        `last_local_rewards` and `last_global_reward`."""
        scenario = self.scenario
        z = scenario.ring.n_zones
        actions = np.asarray(local_actions)
        if actions.shape != (self.n,) or actions.dtype.kind not in "iu":
            raise FleetError("local_actions", f"must be {self.n} integers (one per worker), got "
                                              f"shape {actions.shape} dtype {actions.dtype}")
        bad = np.flatnonzero((actions < 0) | (actions >= N_LOCAL_ACTIONS))
        if bad.size:
            raise FleetError(f"local_actions[{bad[0]}]", f"must be 0 stay, 1 next or 2 previous, "
                                                         f"got {actions[bad[0]]}")
        if isinstance(global_action, bool) or not hasattr(global_action, "__index__") \
                or not 0 <= int(global_action) < z:
            raise FleetError("global_action", f"must be a zone in 0..{z - 1}, got {global_action!r}")
        start = self.all_zones()
        goals = np.empty(self.n + 1, dtype=np.int64)
        goals[: self.n] = (start[: self.n] + ACTION_ZONE_STEP[actions]) % z
        goals[self.n] = int(global_action)
        limits, gains, noise, faults = scenario.limits, scenario.controller, scenario.noise, scenario.faults
        _run_epoch(
            self._poses, self._velocities, self.stall_remaining, goals, self._centres,
            scenario.ring.radius, *gains.lookahead_cos_sin(scenario.ring), gains.speed_gain,
            gains.heading_gain, gains.arrive_tolerance, self._draw_seed(), self._steps, self._dt,
            limits.max_speed, limits.max_turn_rate, limits.max_accel * self._dt,
            limits.max_angular_accel * self._dt, noise.speed_std, noise.turn_rate_std,
            self._p_stall, faults.stall_duration_min,
            faults.stall_duration_max - faults.stall_duration_min, self._travelled)
        self.time += self._steps * self._dt
        self._commands[:] = 0.0
        rewards = scenario.rewards
        served = start[: self.n] == start[self.n]
        self.last_local_rewards = rewards.service * served - rewards.worker_energy * self._travelled[: self.n]
        self.last_global_reward = -rewards.depot_energy * float(self._travelled[self.n])
        reward = self.last_global_reward + float(self.last_local_rewards.mean())
        end = self.all_zones()
        return end[: self.n], int(end[self.n]), reward

    # -- (b) externally commanded control periods -----------------------------

    def set_commands(self, v, w) -> None:
        """Commanded speed v [n+1] (m/s) and turn rate w [n+1] (rad/s), depot last; held
        until changed. Limits, noise and stalls apply when they are executed."""
        for column, (name, values) in enumerate((("v", v), ("w", w))):
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (self.n + 1,):
                raise FleetError(name, f"must have shape [{self.n + 1}] (workers then depot), "
                                       f"got {values.shape}")
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise FleetError(f"{name}[{bad[0]}]", f"must be finite, got {values[bad[0]]}")
            self._commands[:, column] = values

    def step_control(self) -> None:
        """Advance every robot by one control period under its current command."""
        limits, noise, faults = self.scenario.limits, self.scenario.noise, self.scenario.faults
        _step_commanded(
            self._poses, self._velocities, self.stall_remaining, self._commands, self._draw_seed(),
            1, self._dt, limits.max_speed, limits.max_turn_rate, limits.max_accel * self._dt,
            limits.max_angular_accel * self._dt, noise.speed_std, noise.turn_rate_std,
            self._p_stall, faults.stall_duration_min,
            faults.stall_duration_max - faults.stall_duration_min, self._travelled)
        self.time += self._dt

    @property
    def control_period(self) -> float:
        return self._dt

    def _draw_seed(self) -> np.uint64:
        return np.uint64(self._rng.integers(0, 2**63, dtype=np.int64))
