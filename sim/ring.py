"""The warehouse ring: zones, pose -> zone, actions -> goals, and the go-to-goal controller.

Shared by the simulator and the ROS nodes, so a robot's state means the same thing
in training and in deployment. All positions are in the `map` frame.

- Zone z (0..Z-1) is the angular sector [b_z, b_{z+1}) with b_z = (2*pi*z)/Z, the
  angle measured counter-clockwise from +x in [0, 2*pi). Every pose has a zone,
  whatever its radius (the annulus of `radius` +- `width`/2 is where robots drive
  and start, not a condition on the state). `zone_boundaries` returns the exact
  floats used, so "angle in [b_z, b_{z+1}) -> z" holds bit for bit.
- Zone centre: angle (z + 1/2)*2*pi/Z on the ring's centre line (radius `radius`).
- Local actions (|A_l| = 3): 0 = stay, 1 = next zone (+1, counter-clockwise),
  2 = previous zone (-1); the goal is the centre of the target zone. The depot's
  global action a_g (|A_g| = Z) is the zone it heads for; its goal is that centre.
- Controller: robots follow the ring. When the goal is more than `lookahead`
  metres of arc away, the robot steers to a carrot point `lookahead` along the
  centre line in the shorter direction; otherwise to the goal itself. The point
  controller drives forward or backward (whichever end faces the target): with e
  the bearing error, v = min(max_speed, speed_gain * distance) * cos(e) and
  w = heading_gain * sin(e) * sign(cos(e)) clipped to max_turn_rate; inside
  `arrive_tolerance` it commands (0, 0). A goal diametrically opposite (Z even)
  has no shorter direction: the sign of a rounding-level cross product picks one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from altmarl_ros.core._checks import integer, positive
from altmarl_ros.errors import ConfigError
from altmarl_sim.kinematics import TWO_PI, RobotLimits

LOCAL_ACTIONS = ("stay", "next", "previous")
ACTION_ZONE_STEP = np.array([0, 1, -1], dtype=np.int64)  # zone offset of each local action
N_LOCAL_ACTIONS = len(LOCAL_ACTIONS)


class RingError(ConfigError):
    """A ring geometry, controller gain, zone or action value is out of range."""


@dataclass(frozen=True)
class RingGeometry:
    """Z zones on a ring of centre-line radius `radius` (m); robots drive in the
    annulus of total `width` (m) around it. width < 2*radius."""

    n_zones: int
    radius: float
    width: float

    def __post_init__(self):
        object.__setattr__(self, "n_zones", integer(RingError, "n_zones", self.n_zones, 2))
        object.__setattr__(self, "radius", positive(RingError, "radius", self.radius))
        object.__setattr__(self, "width", positive(RingError, "width", self.width))
        if self.width >= 2.0 * self.radius:
            raise RingError("width", f"must be < 2 * radius ({2 * self.radius:g}), got {self.width:g}")

    @property
    def sector(self) -> float:
        """Angular width of one zone (rad)."""
        return TWO_PI / self.n_zones

    def zone_boundaries(self) -> np.ndarray:
        """b_0..b_Z (rad): zone z is the angle interval [b_z, b_{z+1})."""
        return (TWO_PI * np.arange(self.n_zones + 1)) / self.n_zones

    def zone_centres(self) -> np.ndarray:
        """[Z, 2] (x, y) of every zone centre."""
        return _centres(self.n_zones, self.radius)


@dataclass(frozen=True)
class ControllerGains:
    """Go-to-goal controller: turn rate = heading_gain * heading error (1/s), speed =
    speed_gain * distance (1/s), stop within arrive_tolerance (m), carrot `lookahead`
    (m of arc along the ring)."""

    speed_gain: float = 2.0
    heading_gain: float = 4.0
    arrive_tolerance: float = 0.05
    lookahead: float = 1.0

    def __post_init__(self):
        for name in ("speed_gain", "heading_gain", "arrive_tolerance", "lookahead"):
            object.__setattr__(self, name, positive(RingError, name, getattr(self, name)))

    def lookahead_cos_sin(self, ring: RingGeometry) -> tuple[float, float]:
        """cos and sin of the lookahead angle on `ring` (capped at pi: then never used)."""
        angle = min(self.lookahead / ring.radius, math.pi)
        return math.cos(angle), math.sin(angle)


# ---------------------------------------------------------------------------
# kernels


@njit(cache=True)
def _zone_of_angle(angle, n_zones):
    """Zone of an angle in radians (any value; reduced modulo 2*pi)."""
    # exact for angles in [0, 2*pi); a small negative angle may round up to exactly
    # 2*pi, which the clamp below puts in the last zone, where it belongs
    a = angle - TWO_PI * math.floor(angle / TWO_PI)
    if a < 0.0:  # angle/2pi underflowed to -0 (angle a negative denormal)
        a += TWO_PI
    z = int(a * n_zones / TWO_PI)
    if z >= n_zones:
        z = n_zones - 1
    # one correction step makes the rule exact against the published boundaries
    if z > 0 and a < (TWO_PI * z) / n_zones:
        z -= 1
    elif z < n_zones - 1 and a >= (TWO_PI * (z + 1)) / n_zones:
        z += 1
    return z


@njit(cache=True)
def _zone_of_xy(x, y, n_zones):
    return _zone_of_angle(math.atan2(y, x), n_zones)


@njit(cache=True)
def _centres(n_zones, radius):
    out = np.empty((n_zones, 2))
    for z in range(n_zones):
        a = (TWO_PI * (z + 0.5)) / n_zones
        out[z, 0] = radius * math.cos(a)
        out[z, 1] = radius * math.sin(a)
    return out


@njit(cache=True, inline="always")
def _go_to_goal(x, y, c, s, gx, gy, max_v, max_w, speed_gain, heading_gain, tolerance):
    """(v, w) towards (gx, gy) for a robot at (x, y) heading (c, s) = (cos yaw, sin yaw).
    With e the bearing error: v = min(max_v, speed_gain*dist)*cos(e) (negative: it
    backs up when the goal is behind), w = heading_gain*sin(e)*sign(cos(e)) clipped
    to max_w (turns to face the goal with whichever end is closer). No trig calls."""
    dx = gx - x
    dy = gy - y
    dist = math.sqrt(dx * dx + dy * dy)
    if dist <= tolerance:
        return 0.0, 0.0
    inv = 1.0 / dist
    cos_e = (c * dx + s * dy) * inv
    sin_e = (c * dy - s * dx) * inv
    v = min(max_v, speed_gain * dist) * cos_e
    w = heading_gain * sin_e * math.copysign(1.0, cos_e)
    return v, min(max(w, -max_w), max_w)


@njit(cache=True, inline="always")
def steer_to_zone_kernel(x, y, c, s, goal_zone, centres, radius, cos_look, sin_look, max_v, max_w,
                   speed_gain, heading_gain, tolerance):
    """(v, w) of the ring-following controller for a robot heading to `goal_zone`'s
    centre: if the goal is more than the lookahead angle L away (cos_look = cos L,
    L <= pi), the target is the ring point L ahead in the shorter direction."""
    gx = centres[goal_zone, 0]
    gy = centres[goal_zone, 1]
    r2 = x * x + y * y
    if r2 > 0.0:
        inv = 1.0 / math.sqrt(r2)
        ux = x * inv
        uy = y * inv
        if ux * gx + uy * gy < cos_look * radius:  # cos(angle to goal) < cos(lookahead)
            turn = sin_look if ux * gy - uy * gx >= 0.0 else -sin_look
            gx = radius * (ux * cos_look - uy * turn)
            gy = radius * (uy * cos_look + ux * turn)
    return _go_to_goal(x, y, c, s, gx, gy, max_v, max_w, speed_gain, heading_gain, tolerance)


@njit(cache=True)
def zones_of_xy(x, y, n_zones, out):
    for i in range(x.shape[0]):
        out[i] = _zone_of_xy(x[i], y[i], n_zones)


@njit(cache=True)
def _zones_of_angles(angles, n_zones, out):
    for i in range(angles.shape[0]):
        out[i] = _zone_of_angle(angles[i], n_zones)


@njit(cache=True)
def _steer_many(x, y, yaw, goal_zone, centres, radius, cos_look, sin_look, max_v, max_w,
                speed_gain, heading_gain, tolerance, v_out, w_out):
    for i in range(x.shape[0]):
        v_out[i], w_out[i] = steer_to_zone_kernel(
            x[i], y[i], math.cos(yaw[i]), math.sin(yaw[i]), goal_zone[i], centres, radius,
            cos_look, sin_look, max_v, max_w, speed_gain, heading_gain, tolerance)


@njit(cache=True)
def _go_to_goal_many(x, y, yaw, gx, gy, max_v, max_w, speed_gain, heading_gain, tolerance,
                     v_out, w_out):
    for i in range(x.shape[0]):
        v_out[i], w_out[i] = _go_to_goal(x[i], y[i], math.cos(yaw[i]), math.sin(yaw[i]), gx[i],
                                         gy[i], max_v, max_w, speed_gain, heading_gain, tolerance)


# ---------------------------------------------------------------------------
# public functions (arrays or scalars in; arrays of the broadcast shape out)


def _check(name: str, array: np.ndarray, bad: np.ndarray, requirement: str) -> None:
    """Raise RingError naming the first element (by index) where `bad` holds."""
    flat = np.flatnonzero(bad)  # flattens, so 0-d arrays (scalars) work too
    if flat.size:
        if array.ndim:
            index = np.unravel_index(flat[0], array.shape)
            name = f"{name}[{', '.join(str(int(i)) for i in index)}]"
        raise RingError(name, f"{requirement}, got {array.flat[flat[0]]}")


def _floats(names, values, shape=None):
    """Finite float64 arrays of `values` broadcast together (and to `shape` if given),
    flattened, and the broadcast shape."""
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    try:
        shape = np.broadcast_shapes(*[a.shape for a in arrays], *([shape] if shape else []))
    except ValueError:
        raise RingError(", ".join(names), "shapes " + ", ".join(str(a.shape) for a in arrays)
                        + (f" and {shape}" if shape else "") + " do not broadcast") from None
    arrays = [np.broadcast_to(a, shape) for a in arrays]
    for name, array in zip(names, arrays):
        _check(name, array, ~np.isfinite(array), "must be finite")
    return [np.ascontiguousarray(a).ravel() for a in arrays], shape


def _zones(name, zones, n_zones):
    zones = np.asarray(zones)
    if zones.dtype.kind not in "iu":
        raise RingError(name, f"must be integer zone indices, got dtype {zones.dtype}")
    _check(name, zones, (zones < 0) | (zones >= n_zones), f"must be a zone in 0..{n_zones - 1}")
    return zones.astype(np.int64)


def zone_of_angle(angle, ring: RingGeometry) -> np.ndarray:
    """Zone index of each angle (rad, any value: reduced modulo 2*pi)."""
    (a,), shape = _floats(("angle",), (angle,))
    out = np.empty(a.shape[0], dtype=np.int64)
    _zones_of_angles(a, ring.n_zones, out)
    return out.reshape(shape)


def zone_of_pose(x, y, ring: RingGeometry) -> np.ndarray:
    """Zone index of each position (x, y) in the map frame: a robot's local state,
    or the depot's global state."""
    (xs, ys), shape = _floats(("x", "y"), (x, y))
    out = np.empty(xs.shape[0], dtype=np.int64)
    zones_of_xy(xs, ys, ring.n_zones, out)
    return out.reshape(shape)


def target_zone(zone, local_action, ring: RingGeometry) -> np.ndarray:
    """Zone a worker in `zone` heads for under local action 0 stay, 1 next, 2 previous."""
    zone = _zones("zone", zone, ring.n_zones)
    action = np.asarray(local_action)
    allowed = f"must be an integer in 0..{N_LOCAL_ACTIONS - 1} ({', '.join(LOCAL_ACTIONS)})"
    if action.dtype.kind not in "iu":
        raise RingError("local_action", f"{allowed}, got dtype {action.dtype}")
    _check("local_action", action, (action < 0) | (action >= N_LOCAL_ACTIONS), allowed)
    return (zone + ACTION_ZONE_STEP[action]) % ring.n_zones


def zone_centre(zone, ring: RingGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the centre of each zone: the goal of a worker heading there, and the
    goal of the depot under global action a_g = zone."""
    zone = _zones("zone", zone, ring.n_zones)
    centres = ring.zone_centres()
    return centres[zone, 0], centres[zone, 1]


def local_action_goal(zone, local_action, ring: RingGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) goal of a worker in `zone` taking `local_action`."""
    return zone_centre(target_zone(zone, local_action, ring), ring)


def global_action_goal(global_action, ring: RingGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) goal of the depot under global action a_g (the zone it heads for)."""
    return zone_centre(global_action, ring)


def go_to_goal(x, y, yaw, goal_x, goal_y, limits: RobotLimits,
               gains: ControllerGains = ControllerGains()) -> tuple[np.ndarray, np.ndarray]:
    """(v, w) commands driving each robot straight at its goal point, within limits."""
    (xs, ys, yaws, gx, gy), shape = _floats(("x", "y", "yaw", "goal_x", "goal_y"),
                                            (x, y, yaw, goal_x, goal_y))
    v = np.empty(xs.shape[0])
    w = np.empty(xs.shape[0])
    _go_to_goal_many(xs, ys, yaws, gx, gy, limits.max_speed, limits.max_turn_rate,
                     gains.speed_gain, gains.heading_gain, gains.arrive_tolerance, v, w)
    return v.reshape(shape), w.reshape(shape)


def steer_to_zone(x, y, yaw, goal_zone, ring: RingGeometry, limits: RobotLimits,
                  gains: ControllerGains = ControllerGains()) -> tuple[np.ndarray, np.ndarray]:
    """(v, w) commands of the ring-following controller taking each robot to the
    centre of its goal zone; what a local agent publishes as cmd_vel every control
    period (the simulator's offline epochs run the same kernel)."""
    goals = _zones("goal_zone", goal_zone, ring.n_zones)
    (xs, ys, yaws), shape = _floats(("x", "y", "yaw"), (x, y, yaw), goals.shape)
    goals = np.broadcast_to(goals, shape).ravel()
    v = np.empty(xs.shape[0])
    w = np.empty(xs.shape[0])
    cos_look, sin_look = gains.lookahead_cos_sin(ring)
    _steer_many(xs, ys, yaws, np.ascontiguousarray(goals), ring.zone_centres(), ring.radius,
                cos_look, sin_look, limits.max_speed, limits.max_turn_rate, gains.speed_gain,
                gains.heading_gain, gains.arrive_tolerance, v, w)
    return v.reshape(shape), w.reshape(shape)
