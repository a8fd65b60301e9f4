"""`altmarl sweep` over a continuous model's grid (altmarl_ros/experiments/continuous_sweep.py): every (k, observer)
point under the authors' protocol, the kept run the best by selection, welfare the mean of the stored returns,
points reused on a rerun and recomputed when a setting changes, the report's figure and section; one-line errors
naming the field of a bad grid."""
import json
import re

import numpy as np
import pytest
import yaml

from _sweep_config import shipped_sweep_config
from altmarl_ros.cli import main
from altmarl_ros.core.continuous import BimodalLine
from altmarl_ros.core.fa_policy import load_fa_policy



def _config(tmp_path, edit=lambda grid: None):
    config = shipped_sweep_config()
    edit(config["continuous_grids"]["setup_b_tiny"])
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_the_tiny_continuous_grid_runs_resumes_and_reports(tmp_path, capsys):
    config, out, doc = _config(tmp_path), tmp_path / "out", tmp_path / "docs" / "results.md"
    argv = ["sweep", "--config", str(config), "--grid", "setup_b_tiny", "--out", str(out), "--json", "--quiet"]
    assert main(argv + ["--report", "--doc", str(doc)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["computed"], summary["skipped"]) == (4, 0)  # k 1, 3 x fresh, filter
    results = json.loads((out / "results.json").read_text())
    assert [(row["k"], row["observer"]["name"]) for row in results["rows"]] == [
        (1, "fresh"), (1, "filter"), (3, "fresh"), (3, "filter")]
    for row in results["rows"]:
        name, k = row["observer"]["name"], row["k"]
        point = json.loads((out / "points" / f"{name}_k{k}.json").read_text())
        assert [run["seed"] for run in point["runs"]] == [0, 1]
        kept = max(point["runs"], key=lambda run: run["selection_welfare"])
        assert point["kept_seed"] == kept["seed"] == row["kept_seed"]
        returns = np.array(kept["returns"])
        assert returns.size == 4 and row["welfare"] == pytest.approx(returns.mean())
        assert 0.0 <= row["mode_accuracy"] <= 1.0 and 0.0 <= row["estimation_error"] <= 1.0
        policy = load_fa_policy(out / "points" / f"{name}_k{k}.npz", game=BimodalLine(), k=k)
        assert policy.observer.name == name and policy.meta["config"]["seed"] == kept["seed"]
        assert policy.meta["metrics"]["selection_welfare"] == kept["selection_welfare"]
        assert policy.meta["metrics"].get("nash_gap", float("nan")) == pytest.approx(kept["nash_gap"], nan_ok=True)
    filters = [row for row in results["rows"] if row["observer"]["name"] == "filter"]
    assert [row["observer"]["window"] for row in filters] == [50, 50]  # min(horizon, 500 // k)
    text = doc.read_text()
    assert "<!-- BEGIN GENERATED sweep:setup_b_tiny" in text and text.count("\n| 3 | filter |") == 1
    figure = tmp_path / "docs" / "figures" / "setup_b_tiny_welfare_mode_vs_k.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (out / "results.json").read_text()
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 0 and (out / "results.json").read_text() == before
    changed = _config(tmp_path, lambda grid: grid.update(k=[1], observers=["fresh"], rollouts=3))
    assert main(["sweep", "--config", str(changed), "--grid", "setup_b_tiny", "--out", str(out), "--json",
                 "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["computed"] == 1


@pytest.mark.parametrize("edit, message", [
    (lambda g: g.update(model="setup_z"), "continuous_grids.setup_b_tiny.model: is 'setup_z'; use a built-in"),
    (lambda g: g.update(k=[1, 0]), "continuous_grids.setup_b_tiny.k[1]: must be an integer >= 1, got 0"),
    (lambda g: g.update(k=[600]), "continuous_grids.setup_b_tiny.k: is 600, more than the n = 30 locals"),
    (lambda g: g.update(observers=["fresh", "kalman"]),
     "continuous_grids.setup_b_tiny.observers[1]: is 'kalman'; a continuous model's observers are fresh, filter, pool"),
    (lambda g: g.update(observers=[]), "continuous_grids.setup_b_tiny.observers: must be a non-empty list"),
    (lambda g: g.update(rollouts=0), "continuous_grids.setup_b_tiny.rollouts: must be an integer >= 1"),
    (lambda g: g.update(colour="red"), "continuous_grids.setup_b_tiny.colour: unknown key"),
    (lambda g: g["training"].update(m=3), "continuous_grids.setup_b_tiny.training.m: unknown key"),
    (lambda g: g["training"].update(rounds=0), "continuous_grids.setup_b_tiny.training.rounds: must be an integer"),
])
def test_a_bad_continuous_grid_is_one_line_naming_the_field(tmp_path, capsys, edit, message):
    config = _config(tmp_path, edit)
    assert main(["sweep", "--config", str(config), "--grid", "setup_b_tiny", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(re.escape(message), err) and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()
