"""altmarl sweep: grid config, resumable runs, Nash-gap fits, the regenerated report."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from _sweep_config import SWEEP_CONFIG, shipped_sweep_config
from altmarl_ros.cli import main
from altmarl_ros.experiments.fits import fit_inverse_sqrt, fit_power_law
from altmarl_ros.experiments.report import replace_generated, write_report
from altmarl_ros.experiments.sweep import ROW_FIELDS, SweepConfigError, count_units, load_grid

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- fits

def test_inverse_sqrt_fit_recovers_c_from_noisy_gaps():
    rng = np.random.default_rng(3)
    k = np.array([1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50])
    gap = 2.5 / np.sqrt(k) * np.exp(rng.normal(0.0, 0.03, k.size))
    sqrt_fit = fit_inverse_sqrt(k, gap)
    assert sqrt_fit.c == pytest.approx(2.5, rel=0.03)
    assert sqrt_fit.r2 > 0.98
    free = fit_power_law(k, gap)
    assert free.alpha == pytest.approx(0.5, abs=0.03)
    assert free.c == pytest.approx(2.5, rel=0.06)


def test_free_exponent_tells_a_faster_decay_from_inverse_sqrt():
    k = np.array([1, 2, 5, 10, 20, 50], dtype=float)
    gap = 3.0 * k ** -1.0
    free = fit_power_law(k, gap)
    assert free.alpha == pytest.approx(1.0, abs=0.002) and free.c == pytest.approx(3.0, rel=0.01)
    assert free.r2 > 0.9999 > fit_inverse_sqrt(k, gap).r2


def test_fit_against_a_reference_k_recovers_c():
    """gap = W(k_ref) - W(k) for W = W_inf - c/sqrt(k): zero at k_ref, c recovered."""
    rng = np.random.default_rng(5)
    k = np.array([1, 2, 3, 5, 10, 20, 30])
    gap = 1.7 * (k ** -0.5 - 30 ** -0.5) + rng.normal(0.0, 0.01, k.size)
    fit = fit_inverse_sqrt(k, gap, k_ref=30)
    assert fit.c == pytest.approx(1.7, rel=0.03) and fit.k_ref == 30
    assert fit.predict([30])[0] == 0.0
    assert fit_power_law(k, gap, k_ref=30).alpha == pytest.approx(0.5, abs=0.08)


def test_free_exponent_needs_three_distinct_k():
    assert fit_power_law([1, 1, 4], [1.0, 1.1, 0.5]) is None


# ---------------------------------------------------------------- config

def test_shipped_grids_load_with_the_documented_sizes():
    full = load_grid(SWEEP_CONFIG, "full")
    assert full.k == (1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50)
    assert (full.n, full.m, full.horizon, full.seeds, full.rollouts) == (1000, 30, 100, 15, 50)
    assert [spec.name for spec in full.models] == ["warehouse", "warehouse_ring", "federated"]
    tiny = load_grid(SWEEP_CONFIG, "tiny")
    assert all(spec.path and Path(spec.path).exists() for spec in tiny.models)


def test_quick_and_full_grids_train_the_filter_as_train_does():
    """Their filter block is `altmarl train --observer filter`'s defaults (gains, column cap, rollouts)."""
    from altmarl_ros.cli import build_parser
    from altmarl_ros.core.observer_training import DEFAULT_GAINS, DEFAULT_MAX_COLUMNS, SELECTION_HORIZON

    train = build_parser().parse_args(["train", "--model", "m.yaml", "--k", "5"])
    for name in ("quick", "full"):
        grid = load_grid(SWEEP_CONFIG, name)
        assert grid.observers == ("fresh", "filter")
        assert train.max_columns is None  # train's default: observer_training.DEFAULT_MAX_COLUMNS
        assert grid.observer_settings == {"filter": {"gains": list(DEFAULT_GAINS), "max_columns": DEFAULT_MAX_COLUMNS,
                                                     "select_rollouts": train.select_rollouts}}
        assert (grid.n, grid.horizon) == (train.select_n, SELECTION_HORIZON)


@pytest.mark.parametrize("edit, named", [
    (lambda g: g.pop("horizon"), "grids.tiny.horizon: missing (required)"),
    (lambda g: g.update(colour="red"), "grids.tiny.colour: unknown key (allowed: models, k, n, m, rounds"),
    (lambda g: g.update(k=[1, 0]), "grids.tiny.k[1]"),
    (lambda g: g.update(k=[1, 99]), "k = 99 exceeds n = 40"),
    (lambda g: g.update(models=["nope"]), "grids.tiny.models[0] = 'nope'"),
    (lambda g: g.update(observers=["filter"]), "grids.tiny.observers must be a list of observers that includes fresh"),
    (lambda g: g.update(observers=["fresh", "kalman"]), "grids.tiny.observers[1] = 'kalman' is not an observer"),
    (lambda g: g.pop("filter"), "grids.tiny.filter: missing (required when observers names filter)"),
    (lambda g: g.update(observers=["fresh"]), "grids.tiny.filter is given but observers does not name filter"),
    (lambda g: g["filter"].update(gains=[0.5, 1.5]), "grids.tiny.filter.gains[1] must be a number in (0, 1]"),
    (lambda g: g["filter"].pop("select_rollouts"), "grids.tiny.filter.select_rollouts: missing (required)"),
    (lambda g: g["filter"].update(max_columns=0), "grids.tiny.filter.max_columns must be a positive integer"),
])
def test_bad_grid_names_the_field(tmp_path, edit, named):
    import yaml

    config = shipped_sweep_config()
    edit(config["grids"]["tiny"])
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SweepConfigError, match=re.escape(named)):
        load_grid(path, "tiny")


@pytest.mark.parametrize("edit, named", [
    (lambda c: c.update(grid={}), "sweep.yaml: grid: unknown key (allowed: models, grids, continuous_grids)"),
    (lambda c: c["models"]["federated"].update(colour="red"),
     "models.federated.colour: unknown key (allowed: model, scenario, authors_protocol)"),
])
def test_bad_sweep_section_names_the_key(tmp_path, edit, named):
    import yaml

    config = yaml.safe_load(SWEEP_CONFIG.read_text())
    edit(config)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SweepConfigError, match=re.escape(named)):
        load_grid(path, "tiny")


def test_unknown_grid_is_a_cli_error(capsys):
    assert main(["sweep", "--grid", "huge", "--quiet"]) == 2
    assert "no grid 'grids.huge'" in capsys.readouterr().err


# ---------------------------------------------------------------- report

def _synthetic_results():
    rows = []
    for model in ("warehouse", "federated"):
        for k in (1, 2, 5, 10):
            base = dict.fromkeys(ROW_FIELDS)
            rows.append(dict(base, model=model, method="alternating", k=k, welfare=80 + k,
                             welfare_ci95=0.5, nash_gap=2 / np.sqrt(k), global_gain=2 / np.sqrt(k),
                             local_gain=0.1, rounds=3, converged=k > 1, eta=0.1, train_seconds=1.0,
                             n_count_vectors=k + 1, informed_gain=2 * (k ** -0.5 - 20 ** -0.5),
                             informed_gain_ci95=0.01, reference_k=20))
            rows.append(dict(base, model=model, method="subsample_mfq", k=k, welfare=75 + k,
                             welfare_ci95=0.5))
            rows.append(dict(base, model=model, method="glearn_cost", k=k, glearn_seconds=0.1 * k,
                             glearn_sweeps=50, glearn_peak_mb=float(k)))
        rows.append(dict(dict.fromkeys(ROW_FIELDS), model=model, method="uniform_random",
                         welfare=60.0, welfare_ci95=1.0))
        rows.append(dict(dict.fromkeys(ROW_FIELDS), model=model, method="best_constant_global",
                         welfare=84.0, welfare_ci95=0.4))
    return {
        "grid": {"name": "tiny", "models": [{"name": "warehouse"}, {"name": "federated"}],
                 "k": [1, 2, 5, 10], "n": 40, "m": 4, "rounds": 2, "horizon": 20, "seeds": 2,
                 "rollouts": 4, "full_observation_k": None, "seed": 0},
        "model_hashes": {"warehouse": "0" * 16, "federated": "1" * 16},
        "compute_seconds": 75.0,
        "units": [{"model": "warehouse", "unit": "k0001", "seconds": 75.0,
                   "finished_at": "2026-11-25T10:00:00+00:00"}],
        "rows": rows,
    }


def test_report_writes_pngs_and_keeps_handwritten_text(tmp_path):
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    doc.write_text("# Results\n\nHand-written discussion.\n")
    results = _synthetic_results()
    figures = write_report(results, doc, tmp_path / "docs" / "figures")
    assert len(figures) == 4
    for path in figures.values():
        assert path.read_bytes()[:8] == PNG_MAGIC
    first = doc.read_text()
    assert "Hand-written discussion." in first
    assert "](figures/tiny_welfare_vs_k.png)" in first
    assert "informed global gain ≈ 2·(1/√k − 1/√20) with R² = 1.00" in first
    assert "free exponent: 2·(k^-0.50 − 20^-0.50), R² = 1.00" in first
    assert "| 10 | 11 | 90.00 ± 0.50 | n/a | 85.00 ± 0.50 |" in first
    assert "| 1.00 (50) | 10 |" in first  # G-LEARN cost columns at k = 10
    assert "beats best constant global + local BR (84.00 ± 0.40) beyond both CIs at 2 of 4 k" in first
    write_report(results, doc, tmp_path / "docs" / "figures")
    assert doc.read_text() == first  # regenerating replaces the block, never duplicates it


def test_report_compares_the_observers_at_each_k(tmp_path):
    """Filter rows add a figure and a table: fresh vs filter per k, the paired gain, the choice, the cost."""
    results = _synthetic_results()
    for model in ("warehouse", "federated"):
        for k in (1, 2, 5, 10):
            observer = ({"name": "fresh", "gain": 1.0, "resolution": k, "prior": 0.0} if k == 10 else
                        {"name": "filter", "gain": 0.1, "resolution": 19 * k, "prior": 9.0 * k})
            gain = 0.0 if k == 10 else 8.0 - k / 2
            results["rows"].append(dict(
                dict.fromkeys(ROW_FIELDS), model=model, method="alternating_filter", k=k, welfare=80 + k + gain,
                welfare_ci95=0.5, observer=observer, gain_over_fresh=gain, gain_over_fresh_ci95=0.3,
                estimation_error=0.05, fresh_estimation_error=0.3, train_seconds=12.0, selection_seconds=2.0))
    results["grid"].update(observers=["fresh", "filter"],
                           filter={"gains": [0.5, 0.1], "max_columns": 500, "select_rollouts": 8})
    doc = tmp_path / "results.md"
    figures = write_report(results, doc, tmp_path / "figures")
    assert figures["observers_vs_k"].read_bytes()[:8] == PNG_MAGIC
    text = doc.read_text()
    assert "Observers: fresh, filter. The filter is trained as `altmarl train --observer filter`" in text
    assert ("| 2 | 82.00 ± 0.50 | 89.00 ± 0.50 | +7.00 ± 0.30 | gain 0.1, K = 38, prior 18 | 0.300 → 0.050 "
            "| 12 (2) |") in text
    assert "| 10 | 90.00 ± 0.50 | 90.00 ± 0.50 | +0.00 ± 0.30 | fresh (selected) |" in text
    assert "filter above fresh beyond the paired 95% CI at 3 of 4 k: k = [1, 2, 5]; never below it" in text
    assert "the selection chose fresh itself at k = [10]" in text
    # best constant 84.00 ± 0.40: fresh 80 + k reaches it from k = 5, the filter from k = 1 (88.5)
    assert ("filter at or above best constant global + local BR (84.00 ± 0.40) within the CIs at "
            "k = [1, 2, 5, 10]") in text
    assert "fresh at or above best constant global + local BR (84.00 ± 0.40) within the CIs at k = [5, 10]" in text
    assert "within both CIs of fresh at k = 10 (90.00 ± 0.50) from k = 2 with the filter, k = 10 fresh" in text


def test_replace_generated_touches_only_its_own_grid():
    text = replace_generated("# R\n", "full", "full body\n")
    text = replace_generated(text, "quick", "quick body\n")
    text = replace_generated(text, "full", "new full\n")
    assert "full body" not in text and text.count("new full") == 1 and "quick body" in text


# ---------------------------------------------------------------- end to end

def test_tiny_grid_end_to_end_then_resume_recomputes_nothing(tmp_path, capsys, toy_baseline):
    out, doc = tmp_path / "sweep", tmp_path / "results.md"
    argv = ["sweep", "--tiny", "--out", str(out), "--json", "--report", "--doc", str(doc)]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    grid = load_grid(SWEEP_CONFIG, "tiny")
    assert first["computed"] == count_units(grid) and first["skipped"] == 0
    points = sorted((out / "points").rglob("*.json"))
    stamps = {path: path.stat().st_mtime_ns for path in points}

    document = json.loads((out / "results.json").read_text())
    methods = {(row["model"], row["method"], row["k"]) for row in document["rows"]}
    for spec in grid.models:
        for k in grid.k:
            assert (spec.name, "alternating", k) in methods
            assert (spec.name, "subsample_mfq", k) in methods
            assert (spec.name, "alternating_uniform_start", k) in methods
        assert (spec.name, "uniform_random", None) in methods
        assert (spec.name, "best_constant_global", None) in methods
        assert (spec.name, toy_baseline.name, None) in methods  # registered once, swept and reported
        assert (spec.name, "full_observation", grid.full_observation_k) in methods
        assert {(spec.name, "glearn_cost", k) for k in grid.cost_k} <= methods
    for row in document["rows"]:
        if row["method"] == "glearn_cost":
            assert row["glearn_seconds"] > 0 and row["glearn_peak_mb"] >= 0 and row["glearn_sweeps"] > 0
            continue
        assert np.isfinite(row["welfare"]) and row["welfare_ci95"] >= 0
        if row["method"] == "alternating":
            assert row["nash_gap"] >= max(row["global_gain"], row["local_gain"]) - 1e-12
            assert 1 <= row["rounds"] <= grid.rounds
            assert row["reference_k"] == grid.full_observation_k and np.isfinite(row["informed_gain"])
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == list(ROW_FIELDS)
    assert len(csv_lines) == 1 + len(document["rows"])
    assert all(path.read_bytes()[:8] == PNG_MAGIC for path in (tmp_path / "figures").glob("*.png"))
    assert "### Grid `tiny`" in doc.read_text()

    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["computed"] == 0 and second["skipped"] == first["computed"]
    assert {path: path.stat().st_mtime_ns for path in points} == stamps
    _check_filter_units(grid, out, document, doc.read_text())
    _check_observer_axis_caches(tmp_path, out, capsys)


def _check_filter_units(grid, out, document, report):
    """Each filter row is the filter's pair, deployed under the observer it names, with the plain
    point's fresh pair as its paired reference; not the fresh point under another name."""
    from altmarl_ros.core.alternating import alternating_marl
    from altmarl_ros.core.evaluate import rollout_welfare
    from altmarl_ros.core.model import load_model
    from altmarl_ros.core.observers import ObserverSpec

    rows = {(row["model"], row["method"], row["k"]): row for row in document["rows"]}
    chose_filter = 0
    for spec in grid.models:
        game = load_model(spec.path)
        for k in grid.k:
            row, fresh = rows[(spec.name, "alternating_filter", k)], rows[(spec.name, "alternating", k)]
            observer = ObserverSpec.from_meta(row["observer"])
            # the pair at the recorded resolution, learned here without train_observed, and deployed
            # on the grid's streams under the recorded observer, gives the row's welfare exactly
            pair = alternating_marl(game, observer.resolution, m=grid.m, rounds=grid.rounds, seed=grid.seed)
            again = rollout_welfare(game, pair.pi_g, pair.pi_l, k, n=grid.n, horizon=grid.horizon,
                                    seeds=grid.seeds, rollouts=grid.rollouts, seed=grid.seed, observer=observer)
            assert row["welfare"] == again.mean and row["estimation_error"] == again.estimation_error
            # the paired reference is the plain fresh point (same pair, same streams)
            assert row["welfare"] - row["gain_over_fresh"] == pytest.approx(fresh["welfare"], abs=1e-9)
            if observer.name == "filter":
                chose_filter += 1
                assert observer.resolution > k and row["welfare"] != fresh["welfare"]
                assert row["estimation_error"] < row["fresh_estimation_error"]
            unit = json.loads((out / "points" / spec.name / f"filter_k{k:04d}.json").read_text())
            plain = json.loads((out / "points" / spec.name / f"k{k:04d}.json").read_text())
            assert unit["fingerprint"] != plain["fingerprint"]
            assert [r["method"] for r in unit["rows"]] == ["alternating_filter"]
    assert chose_filter >= len(grid.k)  # else the checks above never looked at a filter
    assert "](figures/tiny_observers_vs_k.png)" in report and "Observers on federated" in report


def _check_observer_axis_caches(tmp_path, out, capsys):
    """A changed filter block recomputes the filter units only; dropping filter computes nothing."""
    import yaml

    config = shipped_sweep_config()
    tiny = config["grids"]["tiny"]
    grid = load_grid(SWEEP_CONFIG, "tiny")
    n_filter = len(grid.models) * len(grid.k)
    plain = sorted(path for path in (out / "points").rglob("*.json") if not path.name.startswith("filter_"))
    stamps = {path: path.stat().st_mtime_ns for path in plain}
    argv = ["sweep", "--grid", "tiny", "--out", str(out), "--json", "--config", str(tmp_path / "sweep.yaml")]

    tiny["filter"]["gains"] = [0.25]
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    assert main(argv) == 0
    changed = json.loads(capsys.readouterr().out)
    assert changed["computed"] == n_filter and changed["skipped"] == count_units(grid) - n_filter
    assert {path: path.stat().st_mtime_ns for path in plain} == stamps
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {row["observer"]["gain"] for row in rows if row["method"] == "alternating_filter"} <= {0.25, 1.0}

    tiny["observers"] = ["fresh"]
    del tiny["filter"]
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    assert main(argv) == 0
    dropped = json.loads(capsys.readouterr().out)
    assert dropped["computed"] == 0 and dropped["skipped"] == count_units(grid) - n_filter
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows and not [row for row in rows if row["method"] == "alternating_filter"]


def test_glearn_probe_measures_its_own_peak_not_its_parents():
    """Started by a process holding 512 MB (as a long sweep is), the probe's growth at
    k = 30 still covers G-LEARN's cached draws: int32 [S_g, N_F, m] = 27.8 MB."""
    import subprocess
    import sys

    from altmarl_ros.core.counts import n_count_vectors

    parent_heap = np.ones(64 << 20)  # 512 MB, touched
    assert parent_heap.sum() == parent_heap.size
    k, m, n_sg = 30, 30, 5
    done = subprocess.run(
        [sys.executable, "-m", "altmarl_ros.experiments.glearn_probe",
         str(REPO / "config" / "models" / "warehouse.yaml"), str(k), str(m), "0"],
        capture_output=True, text=True, check=True)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    draw_cache_mb = n_sg * n_count_vectors(k, 5) * m * 4 / 2**20
    assert probe["converged"]
    assert draw_cache_mb <= probe["peak_growth_mb"] < probe["peak_rss_mb"] < 512
