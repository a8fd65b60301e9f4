"""Observers plug in: only the registry (core/observers.py) names an observer, and one registered in a
test reaches `train --help`, training, `evaluate --json`, the node's command check and the sweep."""
import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

from _tiny_model import K, TRAIN_ARGS
from altmarl_ros.cli import main
from altmarl_ros.core.observers import (OBSERVERS, ObserverError, ObserverKind, ObserverSpec, equivalent_samples,
                                        register_observer)

REPO = Path(__file__).resolve().parents[1]
REGISTRY_MODULES = {"altmarl_ros/core/observers.py"}
WAREHOUSE = REPO / "config" / "models" / "warehouse.yaml"  # pi_g reads F there (on the tiny model it does not)


# ---------------------------------------------------------------- no names outside the registry

def _spelled_names(source: str, names) -> list:
    """(line, name) of every string constant equal to one of `names` that is not a docstring: a
    comparison, a membership test, a dict key, a default or an argument alike."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
            and id(node) not in docstrings]


def test_the_scan_finds_every_way_of_naming_an_observer_and_skips_prose():
    source = '''"""A module about the filter; "fresh" here is prose."""
def f(spec, names, args):
    """filter"""
    a = spec.name == "filter"
    b = "fresh" in names
    c = {"filter": 1}[args.observer]
    d = args.observer not in ("fresh",)
    return g(observer="filter"), f"{spec.name} filter"
'''
    assert _spelled_names(source, {"fresh", "filter"}) == [(4, "filter"), (5, "fresh"), (6, "filter"),
                                                           (7, "fresh"), (8, "filter")]


def test_no_observer_name_is_spelled_outside_the_registry():
    """Every behaviour that depends on the observer is asked of its registry entry (ObserverKind), so the
    packages never compare, look up or pass an observer's name as a literal."""
    found = []
    for root in ("altmarl_ros", "sim"):
        for path in sorted((REPO / root).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative not in REGISTRY_MODULES:
                found += [f"{relative}:{line}: {name!r}" for line, name in _spelled_names(path.read_text(), OBSERVERS)]
    assert found == [], "ask the observer's registry entry (core/observers.py) instead:\n" + "\n".join(found)


# ---------------------------------------------------------------- a toy observer, registered here

class PooledKind(ObserverKind):
    """A filter without the prediction step: a fading-memory mean of the samples, held still between
    decisions. One candidate (the first gain at its equivalent resolution), and fresh is not among them."""

    def candidates(self, k, cap, gains):
        return [ObserverSpec(self.name, gains[0], min(equivalent_samples(k, gains[0]), cap))]


TOY = "toy_pooled"


@pytest.fixture
def toy_observer():
    """The toy, registered by one call and removed after the test (so no other test sees it)."""
    kind = register_observer(PooledKind(TOY, "toy: a fading-memory mean of the samples, no prediction",
                                        predicts=False))
    try:
        yield kind
    finally:
        OBSERVERS.pop(kind.name)


def test_an_observer_runs_only_on_the_models_its_entry_names(toy_observer, tmp_path, capsys):
    """The entry's `models` decide where an observer may be asked for: the toy (tabular by default) on a
    continuous model, and pool (continuous only) on a tabular one, are refused in one line naming the field
    (the flag, the grid key, the spec) and the observers that run there."""
    import yaml

    from altmarl_ros.core.fa_observer import FAObserverSpec, default_observer
    from altmarl_ros.core.observers import CONTINUOUS, TABULAR, observers_on
    from altmarl_ros.core.registry import RegistryError
    from altmarl_ros.experiments.sweep import SweepConfigError, load_grid

    assert observers_on(TABULAR) == ("fresh", "filter", TOY)
    assert observers_on(CONTINUOUS) == ("fresh", "filter", "pool")
    on_continuous = f"is '{TOY}', which runs on tabular models only; a continuous model's observers are fresh, " \
                    "filter, pool"
    on_tabular = f"is 'pool', which runs on continuous models only; a tabular model's observers are fresh, " \
                 f"filter, {TOY}"
    for build in (lambda: default_observer(TOY, 5, 50), lambda: FAObserverSpec(TOY, 4, 0.0)):
        with pytest.raises(ObserverError, match=f"^observer: {re.escape(on_continuous)}$"):
            build()
    with pytest.raises(ObserverError, match=f"^observer: {re.escape(on_tabular)}$"):
        ObserverSpec("pool", 0.5, 12)
    for argv, message in ((["--model", "setup_b", "--k", "5", "--observer", TOY], on_continuous),
                          (["--model", str(WAREHOUSE), "--k", "5", "--out", str(tmp_path / "p.npz"),
                            "--observer", "pool"], on_tabular)):
        assert main(["train", *argv, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"--observer: {message}" in err and err.count("\n") == 1
    grid = dict(models=["warehouse"], k=[1], n=20, m=4, rounds=2, horizon=10, seeds=1, rollouts=6,
                full_observation_k=None, cost_k=[], seed=0, observers=["fresh", "pool"])
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"models": {"warehouse": {"model": str(WAREHOUSE)}}, "grids": {"g": grid}}))
    with pytest.raises(SweepConfigError, match=r"observers\[1\] = 'pool' is not an observer the sweep runs on a "
                                               rf"tabular model \(known: fresh, filter, {TOY}\)"):
        load_grid(config, "g")
    with pytest.raises(RegistryError, match="models"):
        register_observer(ObserverKind("nowhere", "runs on no model", models=frozenset()))


def test_the_toy_pools_samples_without_predicting(toy_observer):
    """Its running observer is the fading-memory mean of the samples, by hand: gains 1 then m / (W + m)
    with the weight W <- (1 - alpha) (W + m), and epochs between decisions leave it where it was, even
    when given a model that would move a filter."""
    from altmarl_ros.core.observer import deployed_observer

    n_sg, n_sl, k, alpha = 2, 3, 4, 0.5
    moving = np.tile(np.roll(np.eye(n_sl), 1, axis=1), (n_sg, 1, 1))  # a filter would shift mu by one state
    samples = [np.array([4, 0, 0]), np.array([0, 4, 0]), np.array([1, 1, 2])]
    expected, mu, weight = [], None, 0.0
    for counts in samples:
        gain = 1.0 if mu is None else k / (weight + k)
        mu = counts / k if mu is None else (1 - gain) * mu + gain * counts / k
        weight = (1 - alpha) * (weight + k)
        expected.append(mu)
    prediction = (moving, np.full(n_sl, 1 / n_sl))
    toy, filtered = (deployed_observer(n_sg, n_sl, k, ObserverSpec(name, alpha, 12), prediction)
                     for name in (TOY, "filter"))
    for counts, mu in zip(samples, expected):
        for running in (toy, filtered):
            running.elapsed(0)
            running.decide(counts)
        np.testing.assert_allclose(toy.mu, mu, rtol=0, atol=1e-15)
    assert not np.allclose(filtered.mu, expected[-1])  # the same samples through a model that moves
    with pytest.raises(ObserverError, match="observer.prior"):
        ObserverSpec(TOY, alpha, 12, prior=2.0)  # no model, so no mu0_l to start from


def test_a_registered_observer_is_a_train_choice_trains_and_evaluates(toy_observer, tmp_path, capsys):
    from altmarl_ros.core.evaluate import _estimate, policy_welfare
    from altmarl_ros.core.fused import fold_local_policy
    from altmarl_ros.core.model import load_model
    from altmarl_ros.core.observer import still_model
    from altmarl_ros.core.policy import load_policy

    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--observer {fresh,filter,pool,toy_pooled}" in help_text
    assert f"{TOY}: {toy_observer.description}" in help_text

    model, out = WAREHOUSE, tmp_path / "toy.npz"
    assert main(["train", "--model", str(model), "--out", str(out), *TRAIN_ARGS, "--observer", TOY,
                 "--select-n", "20", "--select-rollouts", "4", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    policy = load_policy(out)
    spec = ObserverSpec(TOY, 0.5, equivalent_samples(K, 0.5))  # train's first default gain, uncapped here
    assert policy.observer == spec and trained["observer"] == spec.to_meta()
    assert len(np.unique(policy.pi_g)) > 1  # pi_g reads the estimate, so the observer shows in the welfare
    assert policy.observer_P is None and policy.prediction is None  # it predicts with nothing, stores nothing
    assert [c["observer"]["name"] for c in trained["observer_candidates"]] == [TOY]

    rollouts = ["--n", "12", "--horizon", "8", "--seeds", "1", "--rollouts", "20"]
    assert main(["evaluate", "--model", str(model), "--policy", str(out), *rollouts, "--json",
                 "--no-baselines"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["observer"] == spec.to_meta()
    # the filter's estimate with every local held still (an identity model): what the toy is
    game = load_model(model)
    P_fused, r_fused = fold_local_policy(game, policy.pi_l)
    still = _estimate(game, policy.pi_g, P_fused, r_fused, game.P_g, game.r_g, K, 12, 8, 1, 20, 0, None,
                      ObserverSpec("filter", spec.gain, spec.resolution), P_observer=still_model(game.n_sg, game.n_sl))
    direct = policy_welfare(game, policy, n=12, horizon=8, seeds=1, rollouts=20)
    assert (report["welfare"], report["estimation_error"]) == (still.mean, still.estimation_error)
    assert (direct.mean, direct.estimation_error) == (still.mean, still.estimation_error)
    moving = _estimate(game, policy.pi_g, P_fused, r_fused, game.P_g, game.r_g, K, 12, 8, 1, 20, 0, None,
                       ObserverSpec("filter", spec.gain, spec.resolution))
    assert moving.mean != still.mean  # the reference tells predicting apart


def test_the_node_check_asks_the_registry_what_a_command_may_carry(toy_observer):
    """A command of an observer that keeps an estimate may carry no sample and any resolution; one of
    fresh may not; one of an observer that runs on continuous models only never comes from a tabular policy."""
    from altmarl_msgs.msg import GlobalCommand

    from altmarl_ros.core.counts import rank
    from altmarl_ros.names import MAP_FRAME
    from altmarl_ros.nodes._validate import CommandCheck

    def command(observer):
        msg = GlobalCommand()
        msg.header.frame_id = MAP_FRAME
        msg.global_state, msg.global_action, msg.k, msg.observer = 1, 1, 4, observer
        msg.sampled_ids, msg.counts, msg.estimate = [], [0, 0, 0], [0.5, 0.25, 0.25]
        msg.query_counts = [6, 3, 3]
        msg.count_rank = int(rank(np.array([6, 3, 3])))
        msg.policy_id = "0" * 16
        return msg

    check = CommandCheck((3, 2, 3), k=4, robot_ids=range(10))
    assert check.problem(command(TOY)) is None
    assert check.problem(command("fresh"))[0] == "sampled_ids"
    assert check.problem(command("kalman"))[0] == "observer"
    assert check.problem(command("pool"))[0] == "observer"  # registered, but runs on continuous models only


def test_a_registered_observer_is_an_axis_of_the_sweep(toy_observer, tmp_path, capsys):
    """A grid names the toy and its block: the sweep trains it at each k as train does, scores it next to
    the plain fresh point on the same streams, and the report compares the two."""
    import yaml

    from altmarl_ros.core.alternating import alternating_marl
    from altmarl_ros.core.evaluate import rollout_welfare
    from altmarl_ros.core.model import load_model
    from altmarl_ros.experiments.sweep import load_grid

    model = WAREHOUSE
    grid = dict(models=["warehouse"], k=[1, 2], n=20, m=4, rounds=2, horizon=10, seeds=1, rollouts=6,
                full_observation_k=None, cost_k=[], seed=0, observers=["fresh", TOY],
                **{TOY: {"gains": [0.25], "max_columns": 500, "select_rollouts": 4}})
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"models": {"warehouse": {"model": str(model)}}, "grids": {"toy": grid}}))
    loaded = load_grid(config, "toy")
    assert loaded.observers == ("fresh", TOY)
    out, doc = tmp_path / "sweep", tmp_path / "results.md"
    assert main(["sweep", "--config", str(config), "--grid", "toy", "--out", str(out), "--json", "--quiet",
                 "--report", "--doc", str(doc)]) == 0
    capsys.readouterr()
    document = json.loads((out / "results.json").read_text())
    assert document["grid"][TOY] == grid[TOY]
    rows = {(row["method"], row["k"]): row for row in document["rows"]}
    game = load_model(model)
    for k in grid["k"]:
        row, fresh = rows[(f"alternating_{TOY}", k)], rows[("alternating", k)]
        assert (out / "points" / "warehouse" / f"{TOY}_k{k:04d}.json").is_file()
        spec = ObserverSpec.from_meta(row["observer"])
        assert spec == ObserverSpec(TOY, 0.25, min(equivalent_samples(k, 0.25), 8))  # C(8 + 4, 4) = 495 <= 500
        # the pair learned at its resolution, deployed under it on the grid's streams: the row's welfare
        pair = alternating_marl(game, spec.resolution, m=grid["m"], rounds=grid["rounds"], seed=grid["seed"])
        again = rollout_welfare(game, pair.pi_g, pair.pi_l, k, n=grid["n"], horizon=grid["horizon"],
                                seeds=grid["seeds"], rollouts=grid["rollouts"], seed=grid["seed"], observer=spec)
        assert (row["welfare"], row["estimation_error"]) == (again.mean, again.estimation_error)
        # the paired reference is the plain fresh point (its pair, the same streams)
        assert row["welfare"] - row["gain_over_fresh"] == pytest.approx(fresh["welfare"], abs=1e-9)
        assert row["welfare"] != fresh["welfare"]
    report = doc.read_text()
    assert f"Observers: fresh, {TOY}. The {TOY} is trained as `altmarl train --observer {TOY}`" in report
    assert re.search(rf"{TOY} above fresh beyond the paired 95% CI at \d of 2 k", report)
    assert f"| k | fresh (the paper) | {TOY} | {TOY} − fresh (paired) |" in report
    assert "Observers on warehouse: toy_pooled against fresh" in report
    assert (tmp_path / "figures" / "toy_observers_vs_k.png").is_file()
