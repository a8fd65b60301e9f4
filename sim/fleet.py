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

Same scenario, n and seed -> same trajectory. Both ways draw the same noise: the robots' noise
streams (altmarl_sim.kinematics) are seeded once per decision epoch, from the simulator's own numpy
Generator, at step_epoch and at every steps_per_epoch-th step_control (hold_control draws nothing).
A robot's draws depend only on its stalls, not on its commands, so FleetSim(seed) driven through (b)
sees the stalls and actuation noise that FleetSim(seed) sees through (a), step for step: the ROS
fleet_sim node of a seed and its offline twin (altmarl_sim.rollout.same_noise_as) share them.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from altmarl_ros.core import budget
from altmarl_ros.core._checks import integer
from altmarl_ros.core.rng import stream_states
from altmarl_sim.kinematics import StepParams, control_step, step_commanded
from altmarl_sim.ring import (ACTION_ZONE_STEP, N_LOCAL_ACTIONS, steer_to_zone_kernel,
                                   zones_of_xy)
from altmarl_sim.scenario import Scenario, ScenarioError

# Per robot: pose, velocity, command, stall, distance and reward arrays (~100 B), doubled for
# the per-epoch copies the kernels make.
BYTES_PER_ROBOT = 256


class FleetError(ScenarioError):
    """Bad arguments to FleetSim (fleet size, actions, commands, zones)."""


@njit(cache=True)
def _run_epoch(poses, velocities, stall, goal_zones, centres, radius, cos_look, sin_look,
               speed_gain, heading_gain, tolerance, seed, steps, dt, max_v, max_w, max_dv, max_dw,
               speed_std, turn_std, p_stall, stall_min, stall_span, travelled, read_step, read_xy):
    """Every robot drives to its goal zone with the ring controller for `steps` steps.
    Time steps outside, robots inside: consecutive iterations are independent robots,
    which the CPU overlaps (a robot's own step chain is long and serial); ~20% faster
    than robots outside. read_xy [n, 2] <- every robot's (x, y) after `read_step` steps
    (read_step < 0 or >= steps: not written)."""
    n = poses.shape[0]
    x = poses[:, 0].copy()
    y = poses[:, 1].copy()
    yaw = poses[:, 2].copy()
    c = np.cos(yaw)
    s = np.sin(yaw)
    v = velocities[:, 0].copy()
    w = velocities[:, 1].copy()
    state = stream_states(seed, n)
    travelled[:] = 0.0
    for step in range(steps):
        if step == read_step:
            for i in range(n):
                read_xy[i, 0] = x[i]
                read_xy[i, 1] = y[i]
        for i in range(n):
            cmd_v, cmd_w = steer_to_zone_kernel(x[i], y[i], c[i], s[i], goal_zones[i], centres, radius,
                                          cos_look, sin_look, max_v, max_w, speed_gain,
                                          heading_gain, tolerance)
            x[i], y[i], yaw[i], c[i], s[i], v[i], w[i], stall[i], state[i], d = control_step(
                x[i], y[i], yaw[i], c[i], s[i], v[i], w[i], stall[i], cmd_v, cmd_w, state[i], dt,
                max_v, max_w, max_dv, max_dw, speed_std, turn_std, p_stall, stall_min, stall_span)
            travelled[i] += d
    poses[:, 0] = x
    poses[:, 1] = y
    poses[:, 2] = yaw
    velocities[:, 0] = v
    velocities[:, 1] = w


def _zone_array(scenario: Scenario, name: str, zones, size: int) -> np.ndarray:
    zones = np.asarray(zones)
    if zones.shape != (size,) or zones.dtype.kind not in "iu":
        raise FleetError(name, f"must be {size} integer zone indices, got shape {zones.shape} "
                               f"dtype {zones.dtype}")
    bad = np.flatnonzero((zones < 0) | (zones >= scenario.ring.n_zones))
    if bad.size:
        raise FleetError(f"{name}[{bad[0]}]",
                         f"must be a zone in 0..{scenario.ring.n_zones - 1}, got {zones[bad[0]]}")
    return zones.astype(np.int64)


def poses_at_rest(scenario: Scenario, zones: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[len(zones), 3] start poses: each zone's centre plus a uniform offset in a disc of
    radius start_jitter (the scenario keeps it inside the zone), heading counter-clockwise
    along the ring."""
    ring = scenario.ring
    centres = ring.zone_centres()
    m = zones.shape[0]
    radius = scenario.start_jitter * np.sqrt(rng.random(m))
    angle = 2.0 * np.pi * rng.random(m)
    poses = np.empty((m, 3))
    poses[:, 0] = centres[zones, 0] + radius * np.cos(angle)
    poses[:, 1] = centres[zones, 1] + radius * np.sin(angle)
    tangent = (2.0 * np.pi * (zones + 0.5)) / ring.n_zones + 0.5 * np.pi
    poses[:, 2] = np.mod(tangent + np.pi, 2.0 * np.pi) - np.pi
    return poses


def check_lead(scenario: Scenario, lead, error=FleetError, field: str = "lead") -> int:
    """A state lead in control steps: 0 (the states are read at the epoch's end) up to the epoch's
    steps (at its start: a request goes out at most one epoch before its decision)."""
    steps = scenario.timing.steps_per_epoch
    lead = integer(error, field, lead, 0)
    if lead > steps:
        raise error(field, f"is {lead} control steps, more than an epoch's {steps}: use 0..{steps}")
    return lead


def drive_epoch(scenario: Scenario, poses, velocities, stall, goal_zones, seed, travelled, lead: int = 0,
                read_xy=None):
    """Run _run_epoch with the scenario's parameters (arrays updated in place); with lead > 0, read_xy
    [n, 2] <- the robots' positions `lead` control steps before the epoch's end."""
    ring, gains, limits = scenario.ring, scenario.controller, scenario.limits
    noise, faults, timing = scenario.noise, scenario.faults, scenario.timing
    dt = timing.control_period
    steps = timing.steps_per_epoch
    _run_epoch(
        poses, velocities, stall, goal_zones, ring.zone_centres(), ring.radius,
        *gains.lookahead_cos_sin(ring), gains.speed_gain, gains.heading_gain,
        gains.arrive_tolerance, seed, steps,
        *StepParams.of(limits, noise, faults, dt, faults.per_step_probability(dt, timing.decision_epoch)),
        travelled, steps - lead if lead > 0 else -1, np.empty((0, 2)) if read_xy is None else read_xy)


def epoch_from_rest(scenario: Scenario, start_zones, goal_zones, seed: int = 0):
    """One decision epoch of independent robots, one per entry: robot j starts at rest
    in start_zones[j] (placed as FleetSim.reset places robots) and drives towards the
    centre of goal_zones[j] with the ring controller, limits, noise and faults.
    Returns (zone each robot ends in [m] int64, metres each drove [m]).

    The generative-model view of the simulator: a worker in zone s taking local action
    a is a robot with goal target_zone(s, a); the depot in zone s_g under a_g is one
    with goal a_g (workers and depot do not interact physically). Starting from rest
    at a zone centre is a modelling choice: in a running fleet robots start an epoch
    anywhere in their zone, still moving (FleetSim.step_epoch)."""
    if not isinstance(scenario, Scenario):
        raise FleetError("scenario", f"must be a Scenario (load_scenario), got {type(scenario).__name__}")
    start = np.asarray(start_zones)
    if start.ndim != 1:
        raise FleetError("start_zones", f"must be a 1-D array of zone indices, got shape {start.shape}")
    start = _zone_array(scenario, "start_zones", start, start.shape[0])
    goals = _zone_array(scenario, "goal_zones", goal_zones, start.shape[0])
    rng = np.random.default_rng(integer(FleetError, "seed", seed, 0))
    m = start.shape[0]
    poses = poses_at_rest(scenario, start, rng)
    travelled = np.empty(m)
    drive_epoch(scenario, poses, np.zeros((m, 2)), np.zeros(m), goals,
                 np.uint64(rng.integers(0, 2**63, dtype=np.int64)), travelled)
    end = np.empty(m, dtype=np.int64)
    zones_of_xy(poses[:, 0], poses[:, 1], scenario.ring.n_zones, end)
    return end, travelled


class FleetSim:
    """n workers + 1 depot (index n) on the scenario's ring; see the module docstring."""

    def __init__(self, scenario: Scenario, n: int | None = None, seed: int = 0):
        if not isinstance(scenario, Scenario):
            raise FleetError("scenario", f"must be a Scenario (load_scenario), got {type(scenario).__name__}")
        self.scenario = scenario
        self.n = scenario.workers if n is None else integer(FleetError, "n", n, 1)
        budget.require(f"a simulated fleet of n = {self.n} robots", (self.n + 1) * BYTES_PER_ROBOT,
                       "use a smaller n")
        self.seed = integer(FleetError, "seed", seed, 0)
        self._rng = np.random.default_rng(self.seed)
        timing = scenario.timing
        self._dt = timing.control_period
        self._steps = timing.steps_per_epoch
        self._p_stall = scenario.faults.per_step_probability(timing.control_period,
                                                             timing.decision_epoch)
        self._poses = np.zeros((self.n + 1, 3))
        self._velocities = np.zeros((self.n + 1, 2))
        self._commands = np.zeros((self.n + 1, 2))
        self.stall_remaining = np.zeros(self.n + 1)  # seconds each robot stays stalled
        self._travelled = np.zeros(self.n + 1)
        self._streams = np.zeros(self.n + 1, dtype=np.uint64)  # step_control's noise streams
        self._epoch_step = 0  # step_control's steps into the current epoch's streams
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
        worker_zones = _zone_array(self.scenario, "worker_zones", worker_zones, self.n)
        if depot_zone is None:
            depot_zone = self._rng.choice(z, p=self.scenario.mu0_g)
        depot_zone = _zone_array(self.scenario, "depot_zone", [depot_zone], 1)
        self._at_rest(poses_at_rest(self.scenario, np.concatenate([worker_zones, depot_zone]), self._rng))

    def start_from(self, poses) -> None:
        """Put every robot at rest at `poses` [n+1, 3] (depot last), as reset() leaves them: another
        fleet's start state under this fleet's own noise (the offline twin of one ROS run)."""
        poses = np.asarray(poses, dtype=np.float64)
        if poses.shape != self._poses.shape or not np.all(np.isfinite(poses)):
            raise FleetError("poses", f"must be {self._poses.shape} finite (x, y, yaw), got shape {poses.shape}")
        self._at_rest(poses)

    def _at_rest(self, poses) -> None:
        """Every robot still at `poses`, no command, no stall, a new epoch's streams next; time back to 0."""
        self._poses[:] = poses
        self._velocities[:] = 0.0
        self._commands[:] = 0.0
        self.stall_remaining[:] = 0.0
        self._epoch_step = 0
        self.time = 0.0
        self.read_zones = self.zones()

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
        zones_of_xy(self._poses[:, 0], self._poses[:, 1], self.scenario.ring.n_zones, out)
        return out

    def zones(self) -> np.ndarray:
        """Local states: zone of every worker, [n] int64."""
        return self.all_zones()[: self.n]

    def depot_zone(self) -> int:
        """Global state: the depot's zone."""
        return int(self.all_zones()[self.n])

    # -- (a) offline decision epochs ----------------------------------------

    def step_epoch(self, local_actions, global_action: int, lead: int = 0) -> tuple[np.ndarray, int, float]:
        """One MDP step: returns (next worker zones [n], next depot zone, reward).
        The per-worker local rewards and the depot's reward of this epoch are left in
        `last_local_rewards` and `last_global_reward`; the workers' zones `lead` control steps
        before the epoch's end (what a state request sent that early reads) in `read_zones`."""
        scenario = self.scenario
        lead = check_lead(scenario, lead)
        start, goals = self.epoch_goals(local_actions, global_action)
        read_xy = np.empty((self.n + 1, 2)) if lead else None
        drive_epoch(scenario, self._poses, self._velocities, self.stall_remaining, goals,
                    self._draw_seed(), self._travelled, lead, read_xy)
        self._epoch_step = 0
        self.time += self._steps * self._dt
        self._commands[:] = 0.0
        self.last_local_rewards, self.last_global_reward, reward = scenario.rewards.epoch(
            start[: self.n] == start[self.n], self._travelled[: self.n], self._travelled[self.n])
        end = self.all_zones()
        if lead:
            self.read_zones = np.empty(self.n, dtype=np.int64)
            zones_of_xy(read_xy[: self.n, 0], read_xy[: self.n, 1], scenario.ring.n_zones, self.read_zones)
        else:
            self.read_zones = end[: self.n]
        return end[: self.n], int(end[self.n]), reward

    def epoch_goals(self, local_actions, global_action) -> tuple[np.ndarray, np.ndarray]:
        """(zones now [n + 1], goal zones [n + 1]) of an epoch's actions, depot last, after checking them."""
        z = self.scenario.ring.n_zones
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
        return start, goals

    # -- (b) externally commanded control periods -----------------------------

    def set_commands(self, v, w) -> None:
        """Commanded speed v [n+1] (m/s) and turn rate w [n+1] (rad/s), depot last; held
        until changed. Limits, noise and stalls apply when they are executed."""
        columns = []
        for name, values in (("v", v), ("w", w)):
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (self.n + 1,):
                raise FleetError(name, f"must have shape [{self.n + 1}] (workers then depot), "
                                       f"got {values.shape}")
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise FleetError(f"{name}[{bad[0]}]", f"must be finite, got {values[bad[0]]}")
            columns.append(values)
        self._commands[:, 0], self._commands[:, 1] = columns

    def set_command(self, robot: int, v: float, w: float) -> None:
        """Command one robot (0..n-1 workers, n the depot), e.g. from its cmd_vel callback."""
        robot = integer(FleetError, "robot", robot, 0)
        if robot > self.n:
            raise FleetError("robot", f"must be 0..{self.n} ({self.n} is the depot), got {robot}")
        for name, value in (("v", v), ("w", w)):
            if not np.isfinite(value):
                raise FleetError(name, f"must be finite, got {value}")
        self._commands[robot] = (v, w)

    def step_control(self) -> None:
        """Advance every robot by one control period under its current command (the first step of
        each epoch's worth seeds new noise streams, as step_epoch does; see the module docstring)."""
        scenario = self.scenario
        if self._epoch_step == 0:
            self._streams[:] = stream_states(self._draw_seed(), self.n + 1)
        step_commanded(
            self._poses, self._velocities, self.stall_remaining, self._commands, self._streams, 1,
            *StepParams.of(scenario.limits, scenario.noise, scenario.faults, self._dt, self._p_stall),
            self._travelled)
        self._epoch_step = (self._epoch_step + 1) % self._steps
        self.time += self._dt

    def hold_control(self) -> None:
        """Advance the clock by one control period with every robot held where it is (no motion, no stall
        drawn, no noise drawn): a fleet waiting for its first decision, as an offline rollout starts."""
        self.time += self._dt

    @property
    def control_period(self) -> float:
        return self._dt

    def _draw_seed(self) -> np.uint64:
        return np.uint64(self._rng.integers(0, 2**63, dtype=np.int64))
