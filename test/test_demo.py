"""`altmarl demo` end to end: a real ROS 2 graph (fleet_sim, coordinator, local_agents, markers and the
welfare monitor) driven by a small hand-made policy, compared with the offline evaluation.

The welfare the monitor measures from odometry + GlobalCommands must agree with
the continuous simulator's offline rollouts of the same policy (same n, k,
horizon): both apply the scenario's reward to the same fleet, one through ROS 2,
one directly. The policy parks the depot and walks every worker to it, so the
ROS run is one draw from a narrow, unimodal distribution (40 workers moving
independently given the depot; offline single-run sd about 1.5 on a mean of
about 54 over 8 epochs). The test's margin is 4 of those sd, about +-6: four
demo runs (seeds 0-3) deviated by -0.07 to -1.58 sd (the ROS loop acts up to a
control step late, which costs a little), so a correct fleet keeps >= 2.4 sd of
room, while one that serves, discounts or counts epochs wrongly is outside it. (The herding policy's
short-run welfare is bimodal, about 3 or about 50, so its +-3 sd margin spanned -37..100.)
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _herding_policy import herding_policy, parked_depot_policy
from altmarl_ros.core.policy import PolicyError, load_policy, save_policy
from altmarl_sim.scenario import load_scenario

K = 5
N = 40
EPOCHS = 8
MARGIN_SD = 4.0
# Under pytest-xdist one worker runs this file: the policy (a module fixture) is built once.
pytestmark = pytest.mark.xdist_group("demo")


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "policy.npz"
    save_policy(parked_depot_policy(load_scenario("warehouse_ring"), K), path)
    return path


@pytest.fixture(scope="module")
def ring_fleet(tmp_path_factory):
    """The shipped fleet file on warehouse_ring: the default warehouse_ring_hard trains for minutes
    (README), and the margins below were measured on warehouse_ring."""
    shipped = (Path(__file__).resolve().parents[1] / "config" / "fleet.yaml").read_text()
    assert "warehouse_ring_hard" in shipped
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    path.write_text(shipped.replace("warehouse_ring_hard", "warehouse_ring"))
    return path


def _demo_argv(policy, fleet, *extra):
    return [sys.executable, "-m", "altmarl_ros.cli", "demo", "--n", str(N), "--duration", str(EPOCHS),
            "--rollouts", "40", "--json", "--quiet", "--fleet", str(fleet), *extra] \
        + (["--policy", str(policy)] if policy else [])


def _demo(policy, cwd, fleet, *extra):
    done = subprocess.run(_demo_argv(policy, fleet, *extra), cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.ros
def test_two_demos_at_once_on_one_host_each_match_their_offline_evaluation(policy_file, ring_fleet, tmp_path):
    """Two demos started together, with no ROS_DOMAIN_ID given: each takes a domain of its own, so neither
    hears the other's fleet (on one shared domain one scored 32.6), and each agrees with its offline twin."""
    import os

    env = {key: value for key, value in os.environ.items() if key != "ROS_DOMAIN_ID"}
    runs = [subprocess.Popen(_demo_argv(policy_file, ring_fleet, "--seed", str(seed)), cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    assert reports[0]["ros_domain_id"] != reports[1]["ros_domain_id"]
    assert [report["seed"] for report in reports] == [1, 2]
    for report in reports:
        _check_against_offline(report, tmp_path)


def _check_against_offline(report, tmp_path):
    assert (report["n"], report["k"], report["epochs"]) == (N, K, EPOCHS)
    assert report["first_epoch"] == 0 and report["out_of_sequence"] == 0
    assert report["robots_without_odometry"] == 0
    assert len(report["rewards"]) == EPOCHS and all(np.isfinite(report["rewards"]))
    gamma = load_scenario("warehouse_ring").gamma  # welfare = sum_t gamma^t r_t, t = 0 at the first epoch
    assert report["welfare"] == pytest.approx(sum(gamma**t * r for t, r in enumerate(report["rewards"])), rel=1e-12)
    offline = report["offline"]
    assert offline["rollouts"] == 40 and 0 < offline["sd"] < 0.05 * offline["mean"]  # the margin below is tight
    deviation = report["welfare"] - offline["mean"]
    assert abs(deviation) <= MARGIN_SD * offline["sd"], (
        f"ROS welfare {report['welfare']:.3f} vs offline {offline['mean']:.3f} (sd {offline['sd']:.3f}): "
        f"{deviation / offline['sd']:+.2f} sd")
    assert report["within_margin"] == (abs(deviation) <= report["margin_sd"] * offline["sd"])
    best = report["best_constant"]  # what the learned coordinator must beat, scored on the same streams
    assert re.fullmatch(r"a_g = \d", best["detail"]) and np.isfinite(best["mean"]) and best["ci95"] > 0
    # The workers gather at the depot: late epochs serve far more of them than the 1/Z at the start.
    assert np.mean(report["rewards"][-3:]) > 2 * report["rewards"][0]
    assert not (tmp_path / "runs").exists()  # a given policy is used as is, nothing trained


@pytest.mark.ros
def test_fresh_demo_trains_then_runs_one_process_per_node(ring_fleet, tmp_path):
    """As on a fresh clone: no policy under runs/, so the demo trains one (the `altmarl train
    --scenario` path, estimating the model first, the demo's observer selection), then runs each
    node in its own process. At k = 10 the filter's candidates need two resolutions (10, 30), at the
    demo's default k = 5 three (5, 15, 30)."""
    report = _demo(None, tmp_path, ring_fleet, "--processes", "--k", "10")
    policy = load_policy(tmp_path / "runs" / "warehouse_ring" / "policy.npz")
    assert report["policy_id"] == policy.policy_id and report["k"] == policy.k == 10
    assert (tmp_path / "runs" / "warehouse_ring" / "model.npz").exists()
    assert report["processes"] and report["epochs"] == EPOCHS
    assert all(np.isfinite(report["rewards"]))


def test_demo_summary_puts_the_learned_coordinator_next_to_the_best_constant(capsys):
    """The printed summary: the observer the policy runs, the ROS run's and the offline welfare, and the
    best constant dispatcher's with the learned coordinator's margin over it in both."""
    from altmarl_ros.commands.demo import _coordinator_heard, _print_report

    # The coordinator's last /diagnostics values (strings), as the welfare monitor keeps them.
    heard = _coordinator_heard({"decisions": "60", "state_messages_received": "306", "state_sampling": "request",
                                "replies_requested": "300", "replies_used": "294", "replies_missed": "6",
                                "state_age_p50_s": "0.125", "state_age_p99_s": "0.150"})
    report = {"coordinator_heard": heard, "welfare": 161.5, "epochs": 60, "n": 200, "k": 5, "policy_id": "abc",
              "observer": {"name": "filter", "gain": 0.25, "resolution": 11, "prior": 15.0},
              "real_time_factor": 1.0, "wall_seconds": 63.0, "odom_msgs_per_s": 4000.0,
              "offline": {"mean": 160.25, "ci95": 0.5, "rollouts": 100, "p2_5": 155.0, "p97_5": 165.0},
              "best_constant": {"mean": 158.0, "ci95": 0.75, "detail": "a_g = 1"},
              "offline_random_starts": {"mean": 158.5, "ci95": 1.0}, "offline_twin": {"mean": 162.25, "ci95": 0.125},
              "seed": 1234, "late_command_fraction": 0.002,
              "deviation_sd": 0.4, "within_margin": True, "margin_sd": 3.0}
    _print_report(report, 0.95)
    out = capsys.readouterr().out
    assert "filter observer, gain 0.25, pi_g at 11 robots" in out
    assert re.search(r"ROS 2 fleet \(this run\) +161\.500 .*0\.2% of robot-steps on a late command", out)
    assert re.search(r"coordinator heard 5\.1 robot-state messages per decision \(request sampling: 4\.9 replies "
                     r"used per decision, 2\.0% missed; states 0\.125 s old at the decision \(p50\)", out)
    assert _coordinator_heard({}) == {}  # no coordinator report came: no line
    assert re.search(r"offline, same start +160\.250 \+- 0\.500 \(fleet seed 1234's start", out)
    assert re.search(r"offline twin +162\.250 \+- 0\.125 \(the same start, stalls and noise as this run; "
                     r"ROS - twin -0\.750", out)
    assert re.search(r"offline, random starts +158\.500 \+- 1\.000", out)
    assert re.search(r"best constant dispatcher, offline +158\.000 \+- 0\.750 \(a_g = 1.*"
                     r"learned - constant: ROS run \+3\.500, offline \+2\.250", out)


# ------------------------------------------------------------------ which policy the demo deploys


class _Args:
    def __init__(self, tmp_path, policy=None, k=None, retrain=False):
        self.fleet, self.policy, self.k, self.retrain = None, policy, k, retrain
        self.quiet, self.json = True, True
        self.default_policy = tmp_path / "runs" / "policy.npz"


def _ready(monkeypatch, args, trained):
    from altmarl_ros import fleet_plan
    from altmarl_ros.commands import demo

    scenario = load_scenario("warehouse_ring")

    def fake_train(scenario_, k, path, n, quiet):
        trained.append((scenario_.name, k, Path(path)))
        save_policy(herding_policy(scenario_, k), path)

    monkeypatch.setattr(demo, "_train", fake_train)
    base = fleet_plan.load_fleet(None, {"policy": str(args.policy or args.default_policy)})
    return demo._ready_policy(args, base, scenario, args.k)


def test_demo_trains_when_the_policy_is_missing_and_then_reuses_it(tmp_path, monkeypatch):
    from altmarl_ros import fleet_plan
    from altmarl_ros.commands import demo

    trained = []
    args = _Args(tmp_path)
    first = _ready(monkeypatch, args, trained)
    assert "k" not in fleet_plan.load_fleet().common  # the policy is the one source of k
    assert trained == [("warehouse_ring", demo.TRAIN_K, args.default_policy)] and first.k == demo.TRAIN_K
    second = _ready(monkeypatch, args, trained)
    assert len(trained) == 1 and second.policy_id == first.policy_id
    _ready(monkeypatch, _Args(tmp_path, retrain=True, k=3), trained)
    assert trained[-1][1] == 3 and load_policy(args.default_policy).k == 3


def test_demo_refuses_a_k_the_policy_was_not_trained_for(tmp_path, monkeypatch, policy_file):
    # A named --policy is never overwritten, so the advice is another file, not --retrain.
    with pytest.raises(PolicyError, match=f"trained for k = {K}; use --k {K}, or --policy another file"):
        _ready(monkeypatch, _Args(tmp_path, policy=policy_file, k=K + 1), [])
    with pytest.raises(PolicyError, match="that file exists and a policy file named with --policy is never "
                                          "overwritten"):
        _ready(monkeypatch, _Args(tmp_path, policy=policy_file, k=K + 1, retrain=True), [])


def test_demo_never_overwrites_a_named_policy_for_another_scenario(tmp_path, monkeypatch):
    hard = load_scenario("warehouse_ring_hard")
    other = tmp_path / "other.npz"
    save_policy(herding_policy(hard, K), other)
    before = other.read_bytes()
    trained = []
    with pytest.raises(PolicyError):
        _ready(monkeypatch, _Args(tmp_path, policy=other), trained)
    assert trained == [] and other.read_bytes() == before


@pytest.mark.ros
def test_demo_runs_an_fa_policy_on_the_continuous_ring(ring_fleet, tmp_path):
    """`altmarl demo --scenario warehouse_ring_continuous`: the nodes run an FA policy (the parked-depot policy
    as networks, test/_fa_ring.py) and the ROS welfare agrees with the offline evaluation of the same file."""
    from _fa_ring import parked_depot_fa
    from altmarl_ros.core.fa_policy import save_fa_policy
    from altmarl_sim.continuous_ring import ContinuousRing

    policy, _ = parked_depot_fa(ContinuousRing(load_scenario("warehouse_ring_continuous")), K)
    path = save_fa_policy(policy, tmp_path / "fa.npz")
    report = _demo(path, tmp_path, ring_fleet, "--scenario", "warehouse_ring_continuous", "--seed", "3")
    assert report["policy_id"] == policy.policy_id and report["observer"] == {"name": "fresh"}
    _check_against_offline(report, tmp_path)


def test_demo_asks_for_an_fa_policy_it_cannot_train(tmp_path, monkeypatch):
    from altmarl_ros import fleet_plan
    from altmarl_ros.commands import demo

    missing = tmp_path / "runs" / "fa.npz"
    base = fleet_plan.load_fleet(None, {"policy": str(missing), "scenario": "warehouse_ring_continuous"})
    monkeypatch.setattr(demo, "_train", lambda *args: pytest.fail("the tabular trainer ran"))
    with pytest.raises(PolicyError, match=rf"^no policy at {missing}: train the FA policy first with `altmarl "
                                          rf"train --scenario warehouse_ring_continuous --k 5 --train-seeds 1 "
                                          rf"--out {missing}` \(docs/continuous.md\)$"):
        demo._ready_policy(_Args(tmp_path, policy=missing), base, load_scenario("warehouse_ring_continuous"), None)
    assert not missing.exists()
