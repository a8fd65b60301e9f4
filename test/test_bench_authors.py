"""bench/bench_authors.py's pure helpers: the checkout check, the venv stamp, the driver's result line, the table.

No torch and no authors' code: the bench runs those; these check what it makes of them.
"""
import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # as when run as a script: authors_driver beside it
    spec = importlib.util.spec_from_file_location("bench_authors", ROOT / "bench" / "bench_authors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(monkeypatch):
    return _load_bench(monkeypatch)


def test_importing_the_bench_leaves_the_environment_alone(monkeypatch):
    """Its single-threaded settings are for its own runs: a test worker that imports it and later compiles a
    numba kernel would read another NUMBA_NUM_THREADS than its running threads have (a RuntimeError)."""
    before = dict(os.environ)
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS"):
        monkeypatch.delenv(name, raising=False)  # setdefault would hide a change where they are set already
    unset = dict(os.environ)
    try:
        _load_bench(monkeypatch)
        assert dict(os.environ) == unset
    finally:
        os.environ.clear()
        os.environ.update(before)


def test_a_missing_or_wrong_checkout_says_how_to_get_one(bench, tmp_path):
    clone = "git clone https://github.com/emiletimothy/alternating-marl"
    assert clone in bench.checkout_problem(None)
    problem = bench.checkout_problem(tmp_path)
    assert str(tmp_path) in problem and clone in problem and "\n" not in problem
    setup_b = tmp_path / "scripts" / "function_approximation"
    setup_b.mkdir(parents=True)
    (setup_b / "training.py").write_text("")
    assert bench.checkout_problem(tmp_path) is None


def test_the_venv_is_reused_only_with_its_stamp(bench, tmp_path):
    stamp = bench.venv_stamp("torch==2.13.0\n", "Python 3.11.7")
    assert not bench.venv_is_current(tmp_path, stamp)  # no interpreter, no stamp
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    assert not bench.venv_is_current(tmp_path, stamp)  # an interpreter but no stamp: an interrupted build
    (tmp_path / "altmarl-bench.stamp").write_text(stamp)
    assert bench.venv_is_current(tmp_path, stamp)
    assert not bench.venv_is_current(tmp_path, bench.venv_stamp("torch==2.14.1\n", "Python 3.11.7"))
    assert not bench.venv_is_current(tmp_path, bench.venv_stamp("torch==2.13.0\n", "Python 3.12.1"))


def _driver_stdout(prefix, **changes):
    found = {"k": 5, "train_seconds": [20.5, 22.0], "seed_means": [130.0, 126.0, 128.0], "mode_accuracy": 0.61,
             "seconds": 70.0, "torch": "2.13.0+cpu", "threads": 1, **changes}
    return f"something their code printed\n{prefix}{json.dumps(found)}\n"


def test_the_driver_result_line_is_read_among_other_output(bench):
    found = bench.parse_driver_output(_driver_stdout(bench.RESULT_PREFIX), k=5, train_seeds=2, eval_seeds=3)
    assert found["seed_means"] == [130.0, 126.0, 128.0] and found["train_seconds"] == [20.5, 22.0]
    assert found["mode_accuracy"] == 0.61


@pytest.mark.parametrize("stdout, field", [
    ("no result at all\n", "one AUTHORS-RESULT line"),
    ("two", "one AUTHORS-RESULT line"),
    ({"seed_means": [130.0, 126.0]}, "seed_means"),
    ({"train_seconds": [20.5, float("nan")]}, "train_seconds"),
    ({"mode_accuracy": None}, "mode_accuracy"),
    ({"k": 1}, "field k"),
])
def test_a_wrong_driver_result_names_the_field(bench, stdout, field):
    if stdout == "two":
        stdout = _driver_stdout(bench.RESULT_PREFIX) * 2
    elif isinstance(stdout, dict):
        stdout = _driver_stdout(bench.RESULT_PREFIX, **stdout)
    with pytest.raises(ValueError, match=field):
        bench.parse_driver_output(stdout, k=5, train_seeds=2, eval_seeds=3)


def test_the_table_row_against_figures_worked_by_hand(bench):
    row = {"system": "authors", "k": 75, "train_seconds": [10.0, 20.0, 33.0], "seed_means": [1.0, 2.0, 3.0, 4.0],
           "mode_accuracy": 0.813, "seconds": 99.4}
    header, rule, line = bench.table([row])
    assert header.count("|") == rule.count("|") == line.count("|")
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    # mean 2.5; sample sd sqrt(5/3) = 1.291, / sqrt(4) = 0.6455, x t(0.975, 3 df) = 3.1824 -> 2.054;
    # the authors' np.std (ddof 0) sqrt(1.25) = 1.118
    assert cells == ["authors' code", "supervised G-step, TRPO locals", "75", "21.0 (10.0–33.0)", "2.5 ± 2.1",
                     "± 1.1", "81.3%", "99"]
