"""The mutation harness's numba-cache pruning (scripts/mutant_cache.py) keeps no entry a mutant can make stale.

Each mutant starts from a cache warmed on the unmutated sources less these entries, so an entry
wrongly kept would let a kernel run its unmutated callee and a mutant survive for no reason.
"""
import importlib.util
from pathlib import Path

from numba.core.caching import _CacheLocator

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutant_cache.py"
spec = importlib.util.spec_from_file_location("mutant_cache", SCRIPT)
mutant_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutant_cache)


def _tree(root: Path, files: dict) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_stale_sources_are_the_mutated_file_and_its_importers_by_every_import_form(tmp_path):
    _tree(tmp_path, {
        "altmarl_ros/__init__.py": "",
        "altmarl_ros/core/__init__.py": "",
        "altmarl_ros/core/rng.py": "X = 1\n",
        "altmarl_ros/core/counts.py": "from .rng import X\n",  # relative, a name in the module
        "altmarl_ros/core/glearn.py": "from altmarl_ros.core import counts\n",  # a module from its package
        "altmarl_ros/core/evaluate.py": "def f():\n    import altmarl_ros.core.glearn as g\n",  # lazy, dotted
        "altmarl_ros/core/policy.py": "from . import rng\n",  # relative, the module itself
        "altmarl_ros/core/model.py": "import numpy\nfrom altmarl_ros.core.policy import nothing_of_counts\n",
        "altmarl_ros/nodes/__init__.py": "",
        "altmarl_ros/nodes/coordinator.py": "from ..core.counts import rank\n",  # two levels up
        "sim/__init__.py": "",
        "sim/rollout.py": "from altmarl_sim.kinematics import step\n",
        "sim/kinematics.py": "from altmarl_ros.core.evaluate import f\n",
        "sim/ring.py": "import math\n",
        "test/_helper.py": "from altmarl_sim import rollout\n",
        "test/test_x.py": "import _helper\n",
    })
    stale = mutant_cache.stale_sources(tmp_path, tmp_path / "altmarl_ros/core/counts.py")
    assert {p.relative_to(tmp_path).as_posix() for p in stale} == {
        "altmarl_ros/core/counts.py", "altmarl_ros/core/glearn.py", "altmarl_ros/core/evaluate.py",
        "altmarl_ros/nodes/coordinator.py", "sim/kinematics.py", "sim/rollout.py", "test/_helper.py",
        "test/test_x.py"}
    assert mutant_cache.stale_sources(tmp_path, tmp_path / "sim/ring.py") == {(tmp_path / "sim/ring.py").resolve()}


def test_only_the_entries_of_the_stale_files_are_selected_where_numba_puts_them(tmp_path):
    source = tmp_path / "src" / "glearn.py"
    source.parent.mkdir()
    cache = tmp_path / "cache"
    folder = cache / _CacheLocator.get_suitable_cache_subpath(str(source))
    other = cache / _CacheLocator.get_suitable_cache_subpath(str(tmp_path / "elsewhere" / "glearn.py"))
    for directory, names in ((folder, ["glearn.sweep-40.py311.nbi", "glearn.sweep-40.py311.1.nbc",
                                       "glearn_draws.fill-9.py311.nbi", "glearnx.f-1.py311.nbi"]),
                             (other, ["glearn.sweep-40.py311.nbi"])):
        directory.mkdir(parents=True)
        for name in names:
            (directory / name).write_text("")
    entries = mutant_cache.stale_entries(cache, {source})
    assert entries == [folder / "glearn.sweep-40.py311.1.nbc", folder / "glearn.sweep-40.py311.nbi"]
    assert mutant_cache.stale_entries(cache, {tmp_path / "src" / "never_cached.py"}) == []
