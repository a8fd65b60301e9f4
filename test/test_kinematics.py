"""Unicycle kinematics against closed forms, limits as invariants, faults, noise, seeds."""
import math

import numpy as np
import pytest

from _kinematics_drivers import integrate_unicycle, step_robots
from altmarl_sim.kinematics import Faults, KinematicsError, Noise, RobotLimits

WIDE = RobotLimits(max_speed=100.0, max_turn_rate=100.0, max_accel=1e6, max_angular_accel=1e6)


def circle_pose(x0, y0, yaw0, v, w, t):
    """Closed form of a unicycle holding (v, w != 0) for t seconds."""
    yaw = yaw0 + w * t
    return (x0 + v / w * (math.sin(yaw) - math.sin(yaw0)),
            y0 - v / w * (math.cos(yaw) - math.cos(yaw0)),
            math.remainder(yaw, 2 * math.pi))


@pytest.mark.kernels
def test_straight_line_matches_closed_form():
    poses = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.7], [3.0, 1.0, -2.5]])
    speeds = np.array([1.0, 0.4, -0.8])
    velocities = np.column_stack([speeds, np.zeros(3)])
    start = poses.copy()
    travelled = step_robots(poses, velocities, velocities.copy(), WIDE, 0.05, steps=200)
    t = 200 * 0.05
    expected_x = start[:, 0] + speeds * t * np.cos(start[:, 2])
    expected_y = start[:, 1] + speeds * t * np.sin(start[:, 2])
    np.testing.assert_allclose(poses[:, 0], expected_x, atol=1e-12)
    np.testing.assert_allclose(poses[:, 1], expected_y, atol=1e-12)
    np.testing.assert_allclose(poses[:, 2], start[:, 2], atol=1e-15)
    np.testing.assert_allclose(travelled, np.abs(speeds) * t, rtol=1e-12)


@pytest.mark.kernels
@pytest.mark.parametrize("w", [0.3, -1.7, 6.0])  # 6 rad/s * 0.05 s / 2 > 0.25: the libm branch
def test_constant_curvature_arc_matches_circle(w):
    x0, y0, yaw0, v = 0.5, -1.0, 2.9, 1.3
    poses = np.array([[x0, y0, yaw0]])
    velocities = np.array([[v, w]])
    steps, dt = 333, 0.05  # several full turns: the yaw wraps
    step_robots(poses, velocities, velocities.copy(), WIDE, dt, steps=steps)
    x, y, yaw = circle_pose(x0, y0, yaw0, v, w, steps * dt)
    assert poses[0, 0] == pytest.approx(x, abs=1e-10)
    assert poses[0, 1] == pytest.approx(y, abs=1e-10)
    assert math.remainder(poses[0, 2] - yaw, 2 * math.pi) == pytest.approx(0.0, abs=1e-10)
    assert -math.pi <= poses[0, 2] < math.pi
    # the distance to the circle's centre stays the radius v/|w|
    cx, cy = x0 - v / w * math.sin(yaw0), y0 + v / w * math.cos(yaw0)
    assert math.hypot(poses[0, 0] - cx, poses[0, 1] - cy) == pytest.approx(v / abs(w), rel=1e-12)


@pytest.mark.kernels
def test_integrate_unicycle_single_long_step_is_exact():
    poses = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, -1.0]])
    out = integrate_unicycle(poses, [2.0, 1.0], [math.pi / 2, 0.0], 1.0)
    # a quarter circle of radius 4/pi from the origin heading +x
    r = 2.0 / (math.pi / 2)
    np.testing.assert_allclose(out[0], [r, r, math.pi / 2], atol=1e-14)
    np.testing.assert_allclose(out[1], [1 + math.cos(-1.0), 1 + math.sin(-1.0), -1.0], atol=1e-14)


def test_limits_never_exceeded_under_random_commands():
    rng = np.random.default_rng(3)
    limits = RobotLimits(max_speed=1.2, max_turn_rate=2.0, max_accel=1.5, max_angular_accel=6.0)
    n, dt = 300, 0.05
    poses = np.column_stack([rng.normal(size=(n, 2)), rng.uniform(-math.pi, math.pi, n)])
    velocities = np.zeros((n, 2))
    stall = np.zeros(n)
    noise = Noise(speed_std=0.5, turn_rate_std=1.0)
    faults = Faults(stall_probability=0.6, stall_duration_min=0.1, stall_duration_max=1.0)
    tol = 1e-12
    for step in range(200):
        commands = rng.uniform(-10, 10, size=(n, 2))
        before_v, before_p = velocities.copy(), poses.copy()
        travelled = step_robots(poses, velocities, commands, limits, dt, noise=noise,
                                faults=faults, decision_epoch=1.0, stall_remaining=stall,
                                seed=step)
        assert np.all(np.abs(velocities[:, 0]) <= limits.max_speed + tol)
        assert np.all(np.abs(velocities[:, 1]) <= limits.max_turn_rate + tol)
        dv = np.abs(velocities - before_v)
        assert np.all(dv[:, 0] <= limits.max_accel * dt + tol)
        assert np.all(dv[:, 1] <= limits.max_angular_accel * dt + tol)
        moved = np.hypot(*(poses[:, :2] - before_p[:, :2]).T)
        assert np.all(moved <= limits.max_speed * dt + tol)
        assert np.all(travelled <= limits.max_speed * dt + tol)
        assert np.all((poses[:, 2] >= -math.pi) & (poses[:, 2] < math.pi))


@pytest.mark.kernels
def test_stalled_robot_brakes_at_its_limit_and_stays_stopped():
    limits = RobotLimits(max_speed=2.0, max_turn_rate=2.0, max_accel=1.0, max_angular_accel=4.0)
    poses = np.zeros((1, 3))
    velocities = np.array([[1.0, 1.0]])
    stall = np.array([0.0])
    faults = Faults(stall_probability=1.0, stall_duration_min=2.0, stall_duration_max=2.0)
    speeds = []
    for step in range(30):  # 1.5 s of a 2 s stall, commanded at full speed all along
        step_robots(poses, velocities, [[2.0, 2.0]], limits, 0.05, faults=faults,
                    decision_epoch=1.0, stall_remaining=stall, seed=step)
        speeds.append(velocities[0, 0])
    # brakes at max_accel: 1 m/s -> 0 in 1 s (20 steps), then stays at rest
    np.testing.assert_allclose(speeds[:20], 1.0 - 0.05 * np.arange(1, 21), atol=1e-12)
    assert all(s == 0.0 for s in speeds[20:])
    assert stall[0] == pytest.approx(0.5)


def test_command_noise_has_the_configured_std():
    n = 20000
    poses = np.zeros((n, 3))
    velocities = np.tile([0.5, 0.0], (n, 1))
    step_robots(poses, velocities, velocities.copy(), WIDE, 0.05,
                noise=Noise(speed_std=0.2, turn_rate_std=0.4), seed=11)
    # 4 standard errors of a sample mean / std
    assert velocities[:, 0].mean() == pytest.approx(0.5, abs=4 * 0.2 / math.sqrt(n))
    assert velocities[:, 0].std() == pytest.approx(0.2, abs=4 * 0.2 / math.sqrt(2 * n))
    assert velocities[:, 1].std() == pytest.approx(0.4, abs=4 * 0.4 / math.sqrt(2 * n))
    assert abs(np.corrcoef(velocities.T)[0, 1]) < 4 / math.sqrt(n)


def run(n, seed):
    poses = np.zeros((n, 3))
    velocities = np.zeros((n, 2))
    commands = np.tile([1.0, 0.5], (n, 1))
    for step in range(10):
        step_robots(poses, velocities, commands, WIDE, 0.05, noise=Noise(0.1, 0.1),
                    faults=Faults(0.5, 0.1, 0.3), decision_epoch=0.5, seed=seed + step)
    return poses


@pytest.mark.kernels
def test_same_seed_same_trajectory_and_streams_are_per_robot():
    np.testing.assert_array_equal(run(5, 0), run(5, 0))
    assert not np.array_equal(run(5, 0), run(5, 1000))
    # robot i's randomness does not depend on how many robots share the call
    np.testing.assert_array_equal(run(5, 0), run(9, 0)[:5])


@pytest.mark.kernels
def test_per_step_stall_probability_compounds_to_the_epoch_probability():
    q = Faults(stall_probability=0.3).per_step_probability(0.05, 1.0)
    assert (1 - q) ** 20 == pytest.approx(0.7, rel=1e-12)
    assert Faults(stall_probability=1.0).per_step_probability(0.05, 1.0) == 1.0
    assert Faults().per_step_probability(0.05, 1.0) == 0.0


@pytest.mark.kernels
@pytest.mark.parametrize("make, field", [
    (lambda: RobotLimits(-1, 1, 1, 1), "max_speed: must be > 0, got -1"),
    (lambda: RobotLimits(1, 0, 1, 1), "max_turn_rate: must be > 0"),
    (lambda: RobotLimits(1, 1, float("nan"), 1), "max_accel: must be finite"),
    (lambda: Noise(speed_std=-0.1), "speed_std: must be >= 0"),
    (lambda: Faults(stall_probability=1.5), "stall_probability: must be in [0, 1]"),
    (lambda: Faults(0.1, 3.0, 1.0), "stall_duration_max: must be >= stall_duration_min"),
    (lambda: step_robots(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)), WIDE, 0.0), "dt: must be > 0"),
    (lambda: step_robots(np.zeros((2, 3)), np.zeros((2, 2)), [[0, 0], [np.nan, 0]], WIDE, 0.1), "commands[1, 0]: "
                                                                                                "must be finite"),
    (lambda: step_robots(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros((2, 2)), WIDE, 0.1), "velocities: must have "
                                                                                           "shape [2, 2]"),
    (lambda: step_robots(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)), WIDE, 0.1, steps=0), "steps: must be "
                                                                                                    "an integer >= 1"),
    (lambda: step_robots(np.zeros((1, 3)), np.zeros((1, 2)), np.zeros((1, 2)), WIDE, 0.1, faults=Faults(0.1)),
     "decision_epoch: is required"),
    (lambda: integrate_unicycle(np.zeros((2, 2)), [1, 1], [0, 0], 0.1), "poses: must have shape [n, 3]"),
])
def test_bad_parameters_raise_named_errors(make, field):
    with pytest.raises(KinematicsError) as err:
        make()
    assert str(err.value).startswith(field)


def _exact_cos_and_sinc(h: float):
    """cos h and sin(h)/h to 50 digits (Taylor series in Decimal): the reference for the kernel's series."""
    from decimal import Decimal, localcontext

    with localcontext() as context:
        context.prec = 50
        x2, cos, sinc, term_c, term_s = Decimal(h) ** 2, Decimal(0), Decimal(0), Decimal(1), Decimal(1)
        for n in range(30):
            cos, sinc = cos + term_c, sinc + term_s
            term_c = -term_c * x2 / ((2 * n + 1) * (2 * n + 2))
            term_s = -term_s * x2 / ((2 * n + 2) * (2 * n + 3))
        return cos, sinc


def test_the_half_turn_series_is_exact_to_rounding_up_to_a_quarter_radian():
    """_half_turn's Taylor branch (|h| <= 0.25, no libm) is within one ulp of cos h and sin(h)/h, on both
    sides of zero up to the branch's bound, where the last terms matter most."""
    from decimal import Decimal

    from altmarl_sim.kinematics import _half_turn

    for h in [*np.linspace(0.2, 0.25, 101), 1e-3, 0.1]:
        for signed in (h, -h):
            sin_h, cos_h, sinc = _half_turn(float(signed))
            cos, exact_sinc = _exact_cos_and_sinc(float(signed))
            assert abs(Decimal(cos_h) - cos) <= Decimal(np.spacing(cos_h)), signed
            assert abs(Decimal(sinc) - exact_sinc) <= Decimal(np.spacing(sinc)), signed
            assert sin_h == signed * sinc
