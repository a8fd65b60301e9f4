"""Mutation testing with cosmic-ray: one module at a time, with that module's own tests.

    bash scripts/mutation.sh                  # every module below, one after the other
    bash scripts/mutation.sh counts evaluate  # just these
    bash scripts/mutation.sh --list           # the table below

For each module: cosmic-ray lists every one-token mutant of the module (or of the
named functions), the operators below that make mostly uncompilable or
no-op mutants are dropped, a seeded sample of `budget` mutants is kept (the
same sample on every run), and cosmic-ray runs the module's tests once per
mutant (`scripts/mutant_tests.sh`: pytest -x in a fresh NUMBA_CACHE_DIR, so no
kernel compiled from the unmutated source is reused; numba's cache checks only
the stamp of a kernel's own file, not of the njit functions it calls from
other files). Sessions and a survivors' report go to build/mutation/<name>.*.
Runs in .venv-mutation (cosmic-ray, pinned in requirements-mutation.txt); the
tests themselves run in the project's .venv.
"""
from __future__ import annotations

import ast
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutation"
SAMPLE_SEED = 11


@dataclass(frozen=True)
class Target:
    path: str
    tests: str  # pytest arguments: the module's own tests
    budget: int  # mutants sampled (one pytest run each)
    timeout: float  # s per mutant; a mutant that hangs past it counts as killed
    functions: tuple = ()  # only mutate inside these top-level functions/classes (all when empty)


TARGETS = {
    "counts": Target("altmarl_ros/core/counts.py", "test/test_counts.py", 30, 240),
    "model": Target("altmarl_ros/core/model.py", "test/test_model.py", 40, 240),
    "policy": Target("altmarl_ros/core/policy.py", "test/test_policy.py", 30, 240),
    "llearn": Target("altmarl_ros/core/llearn.py", "test/test_llearn.py", 14, 480),
    "alternating": Target("altmarl_ros/core/alternating.py", "test/test_alternating.py", 12, 600),
    # G-LEARN was one file of 18 sampled mutants until it was split by job (docs/testing.md)
    "glearn": Target("altmarl_ros/core/glearn.py", "test/test_glearn.py test/test_glearn_storage.py", 8, 300),
    "glearn_draws": Target("altmarl_ros/core/glearn_draws.py", "test/test_glearn.py test/test_glearn_storage.py",
                           8, 300),
    "glearn_memory": Target("altmarl_ros/core/glearn_memory.py", "test/test_glearn_storage.py", 6, 300),
    "fused": Target("altmarl_ros/core/fused.py", "test/test_glearn.py test/test_llearn.py", 4, 480),
    # the rollout kernel's filter path is tested against the observer's own references in test_observer
    "evaluate": Target("altmarl_ros/core/evaluate.py", "test/test_evaluate.py test/test_observer.py", 16, 600),
    "observer": Target("altmarl_ros/core/observer.py", "test/test_observer.py", 20, 480),
    "observer_training": Target("altmarl_ros/core/observer_training.py", "test/test_observer_training.py",
                                14, 480),
    "coordinator": Target("altmarl_ros/nodes/coordinator.py",
                          "test/test_nodes.py -k decision_schedule", 20, 240,
                          ("decision_schedule",)),
    "validate": Target("altmarl_ros/nodes/_validate.py", "test/test_node_helpers.py", 16, 240,
                       ("CommandCheck", "odometry_problem")),
    "rollout": Target("sim/rollout.py", "test/test_sim_learning.py -k 'rollout or afresh'", 16, 480,
                      ("check_policy", "running_observer", "run_episode", "sim_rollout_welfare")),
}

# Dropped operators, and why: bitwise, shift, power and modulo stand-ins for float
# arithmetic are type errors under numba or change a value wildly (killed by any
# test, so they would only pad the score); `is` for `==` on numbers is a no-op or
# a type error; RemoveDecorator removes @njit (same semantics, only slower) or
# @dataclass (nothing works); VariableReplacer/VariableInserter make hundreds of
# mutants per module, mostly name errors.
EXCLUDED_OPERATORS = (
    r"core/ReplaceBinaryOperator_\w+_(BitOr|BitAnd|BitXor|LShift|RShift|Pow|Mod)$",
    r"core/ReplaceBinaryOperator_(BitOr|BitAnd|BitXor|LShift|RShift|Pow|Mod)_\w+$",
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
    r"core/ReplaceComparisonOperator_(Is|IsNot)_(Eq|NotEq|Lt|LtE|Gt|GtE)$",
    r"core/ReplaceUnaryOperator_\w*Invert\w*$",
    r"core/RemoveDecorator$",
    r"core/Variable(Replacer|Inserter)$",
)


def _config(name: str, target: Target) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    config = OUT / f"{name}.toml"
    config.write_text(f"""[cosmic-ray]
module-path = "{target.path}"
timeout = {target.timeout}
excluded-modules = []
test-command = "bash scripts/mutant_tests.sh {target.tests}"

[cosmic-ray.distributor]
name = "local"
""")
    return config


def _line_ranges(path: Path, names) -> list:
    tree = ast.parse(path.read_text())
    ranges = [(node.lineno, node.end_lineno) for node in tree.body
              if getattr(node, "name", None) in names]
    missing = set(names) - {node.name for node in tree.body if hasattr(node, "name")}
    if missing:
        sys.exit(f"mutation: {path} has no top-level {sorted(missing)}; fix TARGETS in {__file__}")
    return ranges


def _select(session: Path, target: Target) -> tuple:
    """Mark every mutant outside the sample as skipped; (all mutants, kept after filters, sampled)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    excluded = re.compile("|".join(EXCLUDED_OPERATORS))
    ranges = _line_ranges(ROOT / target.path, target.functions) if target.functions else None
    with use_db(str(session), WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items, key=lambda item: item.job_id)
        kept = [item for item in items
                if not excluded.match(item.mutations[0].operator_name)
                and (ranges is None or any(lo <= item.mutations[0].start_pos[0] <= hi for lo, hi in ranges))]
        kept.sort(key=lambda item: (item.mutations[0].start_pos, item.mutations[0].operator_name,
                                    item.mutations[0].occurrence))
        sample = random.Random(SAMPLE_SEED).sample(kept, min(target.budget, len(kept)))
        chosen = {item.job_id for item in sample}
        skipped = [item.job_id for item in items if item.job_id not in chosen]
        db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                     output="not in the sample"))
    return len(items), len(kept), len(sample)


def _summary(name: str, session: Path, sizes: tuple) -> str:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    survivors, killed, other = [], 0, 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.test_outcome == TestOutcome.SURVIVED:
                mutation = item.mutations[0]
                survivors.append(f"--- {item.job_id} {mutation.operator_name} line {mutation.start_pos[0]}\n"
                                 f"{result.diff}")
            elif result.test_outcome == TestOutcome.KILLED:
                killed += 1
            else:
                other += 1
    total, kept, sampled = sizes
    line = (f"{name}: {total} mutants, {kept} after operator/function filters, {sampled} sampled: "
            f"{killed} killed, {len(survivors)} survived, {other} incompetent")
    (OUT / f"{name}.survivors.txt").write_text(line + "\n\n" + "\n".join(survivors))
    return line


def run(name: str) -> str:
    target = TARGETS[name]
    config = _config(name, target)
    session = OUT / f"{name}.sqlite"
    session.unlink(missing_ok=True)
    cosmic_ray = Path(sys.executable).parent / "cosmic-ray"
    subprocess.run([str(cosmic_ray), "init", str(config), str(session)], cwd=ROOT, check=True)
    sizes = _select(session, target)
    print(f"mutation {name}: {sizes[2]} of {sizes[0]} mutants sampled; tests: {target.tests}", flush=True)
    subprocess.run([str(cosmic_ray), "exec", str(config), str(session)], cwd=ROOT, check=True)
    return _summary(name, session, sizes)


def main(argv) -> int:
    if argv == ["--list"]:
        for name, target in TARGETS.items():
            print(f"{name:12s} {target.path:34s} budget {target.budget:3d}  {target.tests}")
        return 0
    unknown = [name for name in argv if name not in TARGETS]
    if unknown:
        print(f"mutation: unknown module(s) {unknown}; choose from {list(TARGETS)}", file=sys.stderr)
        return 2
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "altmarl_ros", "sim"],
                           cwd=ROOT, capture_output=True, text=True).stdout
    if dirty:
        print(f"mutation: commit or stash your changes to the sources first (mutants are written in place):\n{dirty}",
              file=sys.stderr)
        return 2
    lines = [run(name) for name in (argv or TARGETS)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
