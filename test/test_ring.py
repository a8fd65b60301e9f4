"""Ring geometry: zone discretisation at exact boundaries, action goals, the controller."""
import math

import numpy as np
import pytest

from _kinematics_drivers import step_robots
from altmarl_sim.kinematics import RobotLimits
from altmarl_sim.ring import (ControllerGains, RingError, RingGeometry, global_action_goal,
                                   go_to_goal, local_action_goal, steer_to_zone, target_zone,
                                   zone_centre, zone_of_angle, zone_of_pose)

LIMITS = RobotLimits(max_speed=1.5, max_turn_rate=3.0, max_accel=2.0, max_angular_accel=8.0)


@pytest.mark.kernels
@pytest.mark.parametrize("n_zones", [2, 3, 5, 7, 8])
def test_every_boundary_belongs_to_the_zone_it_opens(n_zones):
    ring = RingGeometry(n_zones, 1.5, 1.0)
    b = ring.zone_boundaries()
    assert b[0] == 0.0 and b[-1] == pytest.approx(2 * math.pi, abs=1e-15)
    for z in range(n_zones):
        assert zone_of_angle(b[z], ring) == z
        below = np.nextafter(b[z], -np.inf)
        assert zone_of_angle(below, ring) == (z - 1) % n_zones  # z = 0 wraps to the last zone
        assert zone_of_angle(np.nextafter(b[z + 1], -np.inf), ring) == z
    # wrap-around: angles reduce modulo 2*pi
    mids = (b[:-1] + b[1:]) / 2
    for turns in (-3, -1, 1, 4):
        np.testing.assert_array_equal(zone_of_angle(mids + 2 * math.pi * turns, ring),
                                      np.arange(n_zones))
    assert zone_of_angle(-0.0, ring) == 0
    assert zone_of_angle(2 * math.pi, ring) == 0


@pytest.mark.kernels
def test_zone_of_pose_on_the_axes_and_against_a_reference():
    ring = RingGeometry(4, 1.0, 0.5)
    xs = [1.0, 0.0, -1.0, -1.0, 0.0, 0.0]
    ys = [0.0, 1.0, 0.0, -0.0, -1.0, 0.0]  # (-1, -0.0): atan2 = -pi, still zone 2; origin: zone 0
    np.testing.assert_array_equal(zone_of_pose(xs, ys, ring), [0, 1, 2, 2, 3, 0])
    ring = RingGeometry(5, 2.0, 1.0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 10000)) * 3
    angle = np.mod(np.arctan2(y, x), 2 * math.pi)
    reference = np.floor(angle / (2 * math.pi / 5)).astype(int)
    clear = np.abs(angle / (2 * math.pi / 5) - np.round(angle / (2 * math.pi / 5))) > 1e-9
    np.testing.assert_array_equal(zone_of_pose(x, y, ring)[clear], reference[clear])
    assert zone_of_pose(x.reshape(100, 100), y.reshape(100, 100), ring).shape == (100, 100)


@pytest.mark.kernels
def test_local_and_global_action_goals():
    ring = RingGeometry(5, 2.0, 1.0)
    np.testing.assert_array_equal(target_zone([0, 0, 0, 4, 4], [0, 1, 2, 1, 2], ring), [0, 1, 4, 0, 3])
    gx, gy = local_action_goal(4, 1, ring)  # next from the last zone: zone 0's centre
    assert (gx, gy) == pytest.approx((2 * math.cos(math.pi / 5), 2 * math.sin(math.pi / 5)))
    cx, cy = zone_centre(np.arange(5), ring)
    np.testing.assert_allclose(np.hypot(cx, cy), 2.0)
    np.testing.assert_array_equal(zone_of_pose(cx, cy, ring), np.arange(5))
    np.testing.assert_array_equal(global_action_goal(3, ring), zone_centre(3, ring))


@pytest.mark.kernels
@pytest.mark.parametrize("call, message", [
    (lambda r: target_zone(0, 3, r), "local_action: must be an integer in 0..2 (stay, next, previous), got 3"),
    (lambda r: target_zone([0, 0], [1, -1], r), "local_action[1]: must be an integer in 0..2"),
    (lambda r: target_zone([0, 5], 0, r), "zone[1]: must be a zone in 0..4, got 5"),
    (lambda r: zone_centre(1.5, r), "zone: must be integer zone indices"),
    (lambda r: zone_of_pose([0.0, np.inf], [0.0, 0.0], r), "x[1]: must be finite"),
    (lambda r: zone_of_pose(np.nan, 0.0, r), "x: must be finite, got nan"),
    (lambda r: zone_centre(7, r), "zone: must be a zone in 0..4, got 7"),
    (lambda r: steer_to_zone(0.0, 0.0, 0.0, [[0, 1], [2, 9]], r, LIMITS), "goal_zone[1, 1]: must be a zone"),
    (lambda r: zone_of_pose([0.0, 1.0], [0.0, 1.0, 2.0], r), "x, y: shapes (2,), (3,) do not broadcast"),
    (lambda r: RingGeometry(1, 1.0, 0.5), "n_zones: must be an integer >= 2, got 1"),
    (lambda r: RingGeometry(5, 1.0, 2.0), "width: must be < 2 * radius"),
    (lambda r: ControllerGains(lookahead=0), "lookahead: must be > 0"),
])
def test_bad_inputs_raise_named_errors(call, message):
    with pytest.raises(RingError) as err:
        call(RingGeometry(5, 2.0, 1.0))
    assert str(err.value).startswith(message)


@pytest.mark.kernels
def test_controller_commands_stay_within_limits_and_back_up_to_goals_behind():
    rng = np.random.default_rng(1)
    ring = RingGeometry(5, 1.5, 1.0)
    x, y = rng.uniform(-3, 3, size=(2, 5000))
    yaw = rng.uniform(-math.pi, math.pi, 5000)
    v, w = steer_to_zone(x, y, yaw, rng.integers(0, 5, 5000), ring, LIMITS)
    assert np.all(np.abs(v) <= LIMITS.max_speed) and np.all(np.abs(w) <= LIMITS.max_turn_rate)
    v, w = go_to_goal([0.0, 0.0, 0.0], [0.0] * 3, [0.0] * 3, [2.0, -2.0, 0.01], [0.0, 0.0, 0.0], LIMITS)
    assert v[0] == LIMITS.max_speed and v[1] == -LIMITS.max_speed and w[0] == w[1] == 0.0
    assert v[2] == 0.0 and w[2] == 0.0  # inside arrive_tolerance


@pytest.mark.parametrize("start_zone, goal_zone", [(0, 0), (0, 1), (2, 1), (0, 2), (4, 2), (1, 3)])
def test_controller_reaches_the_goal_along_the_ring(start_zone, goal_zone):
    ring = RingGeometry(5, 1.5, 1.0)
    gains = ControllerGains()
    rng = np.random.default_rng(start_zone * 10 + goal_zone)
    n = 50
    cx, cy = zone_centre(np.full(n, start_zone), ring)
    poses = np.column_stack([cx + rng.uniform(-0.2, 0.2, n), cy + rng.uniform(-0.2, 0.2, n),
                             rng.uniform(-math.pi, math.pi, n)])
    velocities = np.zeros((n, 2))
    zones = zone_of_pose(poses[:, 0], poses[:, 1], ring)
    for step in range(400):  # 20 s
        v, w = steer_to_zone(poses[:, 0], poses[:, 1], poses[:, 2], goal_zone, ring, LIMITS, gains)
        step_robots(poses, velocities, np.column_stack([v, w]), LIMITS, 0.05, seed=step)
        new_zones = zone_of_pose(poses[:, 0], poses[:, 1], ring)
        # ring following: a robot only ever moves to a neighbouring zone
        assert np.all(np.isin((new_zones - zones) % 5, [0, 1, 4]))
        zones = new_zones
        radius = np.hypot(poses[:, 0], poses[:, 1])
        assert np.all(np.abs(radius - ring.radius) < ring.width / 2)  # stays in the annulus
    gx, gy = zone_centre(goal_zone, ring)
    distance = np.hypot(poses[:, 0] - gx, poses[:, 1] - gy)
    assert np.all(distance < gains.arrive_tolerance + 0.02)
    assert np.all(zones == goal_zone)
