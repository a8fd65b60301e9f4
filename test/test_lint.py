"""The tree passes ruff with the project's rules (ruff.toml), as the ROS anchors run flake8 as a test."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args, cwd=ROOT):
    pytest.importorskip("ruff", reason="ruff is installed by ./test.sh (requirements-test.txt)")
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_tree_passes_ruff():
    result = ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_configured_rules_catch_what_they_are_chosen_for(tmp_path):
    """ruff.toml's selection is live: each rule family it names flags its kind of mistake."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f(items=[]):\n    return [lambda: i for i in items] + [undefined]" + " " * 80
                   + "\n")
    result = ruff("check", "--config", str(ROOT / "ruff.toml"), "--output-format", "concise", str(bad))
    found = {code for code in ("F401", "F821", "B006", "B023", "E501") if f" {code} " in result.stdout}
    assert found == {"F401", "F821", "B006", "B023", "E501"}, result.stdout
