"""Validating drivers of the kinematics kernels, used only by the tests (the simulator calls
altmarl_sim.kinematics.step_commanded through FleetSim): advance robots, integrate exact arcs."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from altmarl_ros.core._checks import positive
from altmarl_ros.core.rng import stream_states
from altmarl_sim.kinematics import (Faults, KinematicsError, Noise, RobotLimits, StepParams, _arc,
                                    step_commanded)


NO_NOISE, NO_FAULTS = Noise(), Faults()  # frozen: safe as shared defaults


@njit(cache=True)
def _integrate_many(poses, v, w, dt, out):
    for i in range(poses.shape[0]):
        yaw = poses[i, 2]
        out[i, 0], out[i, 1], out[i, 2], _, _ = _arc(
            poses[i, 0], poses[i, 1], yaw, math.cos(yaw), math.sin(yaw), v[i], w[i], dt)


def _pose_array(name: str, poses) -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3:
        raise KinematicsError(name, f"must have shape [n, 3] (x, y, yaw), got {poses.shape}")
    bad = np.argwhere(~np.isfinite(poses))
    if bad.size:
        raise KinematicsError(f"{name}[{bad[0, 0]}, {bad[0, 1]}]", "must be finite")
    return poses


def _vector(name: str, values, n: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (n,):
        raise KinematicsError(name, f"must have shape [{n}], got {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise KinematicsError(f"{name}[{bad[0]}]", "must be finite")
    return values


def integrate_unicycle(poses, v, w, dt: float) -> np.ndarray:
    """Poses [n, 3] after holding speeds v[n] (m/s) and turn rates w[n] (rad/s) for dt
    seconds, exactly (no limits, no noise): new array, yaw in [-pi, pi)."""
    poses = _pose_array("poses", poses)
    n = poses.shape[0]
    dt = positive(KinematicsError, "dt", dt)
    out = np.empty_like(poses)
    _integrate_many(poses, _vector("v", v, n), _vector("w", w, n), dt, out)
    return out


def step_robots(poses: np.ndarray, velocities: np.ndarray, commands, limits: RobotLimits,
                dt: float, *, steps: int = 1, noise: Noise = NO_NOISE, faults: Faults = NO_FAULTS,
                decision_epoch: float | None = None, stall_remaining: np.ndarray | None = None,
                seed: int = 0) -> np.ndarray:
    """Advance robots IN PLACE for `steps` control steps of `dt` seconds, holding
    commands[n, 2] = (v, w). poses [n, 3] and velocities [n, 2] must be float64 arrays;
    stall_remaining [n] (seconds left of each robot's stall) too when given.
    `decision_epoch` (s) is needed when faults.stall_probability > 0: that probability
    is per epoch. Returns the distance each robot travelled."""
    if not isinstance(limits, RobotLimits):
        raise KinematicsError("limits", f"must be a RobotLimits, got {type(limits).__name__}")
    dt = positive(KinematicsError, "dt", dt)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise KinematicsError("steps", f"must be an integer >= 1, got {steps!r}")
    p_step = 0.0
    if faults.stall_probability > 0.0:
        if decision_epoch is None:
            raise KinematicsError("decision_epoch", "is required when faults.stall_probability > 0 "
                                                    "(a per-epoch probability)")
        p_step = faults.per_step_probability(dt, decision_epoch)
    for name, array, width in (("poses", poses, 3), ("velocities", velocities, 2)):
        if not (isinstance(array, np.ndarray) and array.dtype == np.float64 and array.ndim == 2
                and array.shape[1] == width and array.flags.writeable):
            raise KinematicsError(name, f"must be a writeable float64 array of shape [n, {width}]")
    _pose_array("poses", poses)
    n = poses.shape[0]
    if velocities.shape[0] != n:
        raise KinematicsError("velocities", f"must have shape [{n}, 2], got {velocities.shape}")
    commands = np.asarray(commands, dtype=np.float64)
    if commands.shape != (n, 2):
        raise KinematicsError("commands", f"must have shape [{n}, 2] (v, w), got {commands.shape}")
    bad = np.argwhere(~np.isfinite(commands))
    if bad.size:
        raise KinematicsError(f"commands[{bad[0, 0]}, {bad[0, 1]}]", "must be finite")
    if stall_remaining is None:
        stall_remaining = np.zeros(n)
    elif not (isinstance(stall_remaining, np.ndarray) and stall_remaining.dtype == np.float64
              and stall_remaining.shape == (n,)):
        raise KinematicsError("stall_remaining", f"must be a float64 array of shape [{n}]")
    travelled = np.empty(n)
    step_commanded(
        poses, velocities, stall_remaining, commands, stream_states(np.uint64(seed % 2**64), n), int(steps),
        *StepParams.of(limits, noise, faults, dt, p_step), travelled)
    return travelled
