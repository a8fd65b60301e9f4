"""Unicycle (differential-drive) robots: limits, actuation noise, stalls, exact arcs.

One control step of one robot, in this order:
1. fault: a robot that is not stalled starts a stall with the per-step probability;
   the stall lasts a duration drawn uniformly from [stall_duration_min, max].
2. a stalled robot's command is replaced by (0, 0) (motors cut, it brakes at its
   acceleration limits) and its timer counts down by dt.
3. noise: zero-mean errors with std (speed_std, turn_rate_std) are added to the
   *command* of a robot that is not stalled; each is bell-shaped (the sum of four
   uniforms: close to a Gaussian, bounded at 3.46 std). This is a motor controller's
   tracking error: it perturbs the command, so the limits below still hold.
4. limits: the command is clipped to |v| <= max_speed, |w| <= max_turn_rate, then the
   velocity moves towards it by at most max_accel*dt, max_angular_accel*dt.
5. motion: (v, w) is held for dt and the pose is integrated exactly (a circular arc,
   a straight line when w = 0), so closed forms hold to rounding.
The yaw is kept in [-pi, pi).

The per-robot-step helpers are inlined into the kernels that loop over robots
(numba inline="always": ~15% faster than LLVM's own choices).

Randomness is counter-based (altmarl_ros.core.rng): robot i's draws come from its own splitmix64 stream
keyed by (seed, i) (`stream_states`), so results do not depend on how many robots share a call and
the same seed always gives the same trajectory. A robot's draws depend only on its own stall state,
never on its commands: two runs with the same streams see the same stalls and the same noise whatever
they command (FleetSim seeds one set of streams per decision epoch, see altmarl_sim.fleet).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from altmarl_ros.core._checks import non_negative, positive, probability
from altmarl_ros.core.rng import next_bits, next_uniform
from altmarl_ros.errors import ConfigError

TWO_PI = 2.0 * math.pi


class KinematicsError(ConfigError):
    """A robot limit, noise, fault or timing parameter is out of range."""


@dataclass(frozen=True)
class RobotLimits:
    """Speed (m/s), turn rate (rad/s) and acceleration (m/s^2, rad/s^2) bounds, all > 0."""

    max_speed: float
    max_turn_rate: float
    max_accel: float
    max_angular_accel: float

    def __post_init__(self):
        for name in ("max_speed", "max_turn_rate", "max_accel", "max_angular_accel"):
            object.__setattr__(self, name, positive(KinematicsError, name, getattr(self, name)))


@dataclass(frozen=True)
class Noise:
    """Std of the zero-mean, bell-shaped error added to the commanded speed (m/s) and
    turn rate (rad/s) at every control step."""

    speed_std: float = 0.0
    turn_rate_std: float = 0.0

    def __post_init__(self):
        for name in ("speed_std", "turn_rate_std"):
            object.__setattr__(self, name, non_negative(KinematicsError, name, getattr(self, name)))


@dataclass(frozen=True)
class Faults:
    """Actuation faults: each robot stalls with `stall_probability` per decision epoch
    (spread as a constant hazard over the epoch's control steps) for a duration drawn
    uniformly from [stall_duration_min, stall_duration_max] seconds."""

    stall_probability: float = 0.0
    stall_duration_min: float = 0.0
    stall_duration_max: float = 0.0

    def __post_init__(self):
        object.__setattr__(
            self, "stall_probability",
            probability(KinematicsError, "stall_probability", self.stall_probability),
        )
        for name in ("stall_duration_min", "stall_duration_max"):
            object.__setattr__(self, name, non_negative(KinematicsError, name, getattr(self, name)))
        if self.stall_duration_max < self.stall_duration_min:
            raise KinematicsError(
                "stall_duration_max",
                f"must be >= stall_duration_min ({self.stall_duration_min:g}), "
                f"got {self.stall_duration_max:g}",
            )

    def per_step_probability(self, control_period: float, decision_epoch: float) -> float:
        """Per-control-step stall probability q with (1 - q)^(epoch/dt) = 1 - p."""
        positive(KinematicsError, "control_period", control_period)
        positive(KinematicsError, "decision_epoch", decision_epoch)
        if self.stall_probability >= 1.0:
            return 1.0
        return -math.expm1(math.log1p(-self.stall_probability) * control_period / decision_epoch)


class StepParams(NamedTuple):
    """The scalars every control step needs, in the kernels' argument order (pass `*params`)."""

    dt: float
    max_v: float
    max_w: float
    max_dv: float  # speed change per step, max_accel * dt
    max_dw: float
    speed_std: float
    turn_std: float
    p_stall: float  # per control step (Faults.per_step_probability)
    stall_min: float
    stall_span: float  # stall_duration_max - stall_duration_min

    @classmethod
    def of(cls, limits: RobotLimits, noise: Noise, faults: Faults, dt: float, p_stall: float) -> "StepParams":
        return cls(dt, limits.max_speed, limits.max_turn_rate, limits.max_accel * dt,
                   limits.max_angular_accel * dt, noise.speed_std, noise.turn_rate_std, p_stall,
                   faults.stall_duration_min, faults.stall_duration_max - faults.stall_duration_min)


# ---------------------------------------------------------------------------
# kernels (plain floats and arrays; no validation)


@njit(cache=True)
def _wrap_angle(a):
    """Angle in [-pi, pi)."""
    return a - TWO_PI * math.floor((a + math.pi) / TWO_PI)


# Taylor coefficients as reciprocals: multiplying is several times cheaper than dividing
_INV_SIN = (1.0 / 6.0, 1.0 / 20.0, 1.0 / 42.0, 1.0 / 72.0, 1.0 / 110.0)
_INV_COS = (1.0 / 2.0, 1.0 / 12.0, 1.0 / 30.0, 1.0 / 56.0, 1.0 / 90.0, 1.0 / 132.0)


@njit(cache=True, inline="always")
def _half_turn(h):
    """(sin h, cos h, sin(h)/h) for the half turn h of a control step: Taylor series
    exact to rounding for |h| <= 0.25 (no libm call, no division), libm beyond."""
    if abs(h) > 0.25:
        sin_h = math.sin(h)
        return sin_h, math.cos(h), sin_h / h
    h2 = h * h
    a, b, c, d, e = _INV_SIN
    sinc = 1.0 - h2 * a * (1.0 - h2 * b * (1.0 - h2 * c * (1.0 - h2 * d * (1.0 - h2 * e))))
    a, b, c, d, e, f = _INV_COS
    cos_h = 1.0 - h2 * a * (1.0 - h2 * b * (1.0 - h2 * c * (1.0 - h2 * d * (1.0 - h2 * e * (
        1.0 - h2 * f)))))
    return h * sinc, cos_h, sinc


@njit(cache=True, inline="always")
def _arc(x, y, yaw, c, s, v, w, dt):
    """Exact pose after holding (v, w) for dt from heading yaw with (c, s) = (cos yaw,
    sin yaw): the arc's chord has length v*dt*sin(h)/h and heading yaw + h, h = w*dt/2.
    Returns x, y, yaw, cos yaw, sin yaw (rotated by the half-angle twice, not recomputed)."""
    half = 0.5 * w * dt
    sh, ch, sinc = _half_turn(half)
    chord = v * dt * sinc
    chord_c = c * ch - s * sh  # heading yaw + half
    chord_s = s * ch + c * sh
    yaw = yaw + 2.0 * half
    if yaw >= math.pi or yaw < -math.pi:
        yaw = _wrap_angle(yaw)
    return (x + chord * chord_c, y + chord * chord_s, yaw,
            chord_c * ch - chord_s * sh, chord_s * ch + chord_c * sh)


@njit(cache=True, inline="always")
def _toward(current, target, max_abs, max_delta):
    """`current` moved toward `target` clipped to [-max_abs, max_abs], by at most max_delta
    (min/max, not branches: noisy commands would make branches unpredictable)."""
    target = min(max(target, -max_abs), max_abs)
    return current + min(max(target - current, -max_delta), max_delta)


@njit(cache=True, inline="always")
def _standard_noise(state):
    """(new state, z): z is the Irwin-Hall sum of the four 16-bit uniforms in one uint64
    draw, centred and scaled to mean 0, std 1 (bell-shaped, bounded at +-2*sqrt(3);
    a quarter of the cost of an exact Gaussian draw, which dominated a robot-step)."""
    state, bits = next_bits(state)
    mask = np.uint64(0xFFFF)
    total = (float(bits & mask) + float((bits >> np.uint64(16)) & mask)
             + float((bits >> np.uint64(32)) & mask) + float(bits >> np.uint64(48)))
    # each 16-bit value + 1/2 is uniform on (0, 65536): variance 65536^2/12
    return state, (total + 2.0 - 131072.0) * (math.sqrt(3.0) / 65536.0)


@njit(cache=True, inline="always")
def control_step(x, y, yaw, c, s, v, w, stall, cmd_v, cmd_w, state, dt, max_v, max_w, max_dv,
                  max_dw, speed_std, turn_std, p_stall, stall_min, stall_span):
    """One control step of one robot (see the module docstring for the order); (c, s) =
    (cos yaw, sin yaw). Returns x, y, yaw, c, s, v, w, stall, state, distance travelled."""
    if p_stall > 0.0 and stall <= 0.0:
        state, u = next_uniform(state)
        if u < p_stall:
            state, u = next_uniform(state)
            stall = stall_min + stall_span * u
    if stall > 0.0:
        cmd_v = 0.0
        cmd_w = 0.0
        stall -= dt
    elif speed_std > 0.0 or turn_std > 0.0:
        state, z = _standard_noise(state)
        cmd_v += speed_std * z
        state, z = _standard_noise(state)
        cmd_w += turn_std * z
    v = _toward(v, cmd_v, max_v, max_dv)
    w = _toward(w, cmd_w, max_w, max_dw)
    x, y, yaw, c, s = _arc(x, y, yaw, c, s, v, w, dt)
    return x, y, yaw, c, s, v, w, stall, state, abs(v) * dt


@njit(cache=True)
def step_commanded(poses, velocities, stall, commands, streams, steps, dt, max_v, max_w, max_dv,
                    max_dw, speed_std, turn_std, p_stall, stall_min, stall_span, travelled):
    """Hold each robot's command for `steps` control steps, in place; robot i draws from
    its stream state streams[i], which is advanced in place (core.rng.stream_states seeds them)."""
    for i in range(poses.shape[0]):
        state = streams[i]
        x, y, yaw = poses[i, 0], poses[i, 1], poses[i, 2]
        c, s = math.cos(yaw), math.sin(yaw)
        v, w, st = velocities[i, 0], velocities[i, 1], stall[i]
        dist = 0.0
        for _ in range(steps):
            x, y, yaw, c, s, v, w, st, state, d = control_step(
                x, y, yaw, c, s, v, w, st, commands[i, 0], commands[i, 1], state, dt, max_v,
                max_w, max_dv, max_dw, speed_std, turn_std, p_stall, stall_min, stall_span)
            dist += d
        poses[i, 0], poses[i, 1], poses[i, 2] = x, y, yaw
        velocities[i, 0], velocities[i, 1], stall[i] = v, w, st
        streams[i] = state
        travelled[i] = dist
