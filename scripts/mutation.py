"""Mutation testing with cosmic-ray: one module at a time, with that module's own tests.

    bash scripts/mutation.sh                      # every module below, one after the other
    bash scripts/mutation.sh counts evaluate      # just these
    bash scripts/mutation.sh glearn --shard 2/4   # the second of four disjoint quarters of glearn's mutants
    bash scripts/mutation.sh evaluate --sample 60 # a seeded sample of 60 instead of the whole module
    bash scripts/mutation.sh observer --cold      # every mutant on an empty numba cache (to time the warm one)
    bash scripts/mutation.sh atomic --survivors   # only the previous run's survivors and timeouts (after new tests)
    bash scripts/mutation.sh evaluate --functions _rng_streams  # every mutant of these functions (after an edit)
    bash scripts/mutation.sh --list               # the table below

For each module: cosmic-ray lists every one-token mutant of the module (or of the
named functions), the operators below that make mostly uncompilable or
no-op mutants are dropped, and every mutant left is run (budget None: the whole
module) or a seeded sample of `budget` of them (the same sample on every run);
`--sample n` samples n instead; `--shard i/N` keeps every N-th of those, from the i-th. The module's tests first run
once on the unmutated sources, warming a numba cache (and showing they pass);
the cache entries the module's mutants can make stale (its own kernels and those
of every file importing it, transitively: scripts/mutant_cache.py) are then
deleted, and cosmic-ray runs the tests once per mutant from a copy of what is left
(`scripts/mutant_tests.sh`: pytest -x). A mutant gets the target's timeout or three times the
unmutated run, whichever is longer (that run is timed under the same load); a mutant that still times out
counts as killed but is listed apart, and `--survivors` runs it again (on a busy machine a slow survivor
can time out). Sessions, the cache and a survivors' report go to build/mutation/<name>[.shard-i-of-N].*.
Runs in .venv-mutation (cosmic-ray, pinned in requirements-mutation.txt); the tests themselves run in the
project's venv (ALTMARL_VENV, default .venv).
"""
from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutation"
PYTHON = Path(os.environ.get("ALTMARL_VENV", ROOT / ".venv")) / "bin" / "python"
SAMPLE_SEED = 11
WHOLE = None  # a Target's budget: every mutant left after the filters


@dataclass(frozen=True)
class Target:
    path: str
    tests: str  # pytest arguments: the tests that exercise the module (a few seconds a run)
    budget: int | None  # mutants sampled (one pytest run each), or WHOLE
    timeout: float  # s per mutant at least (3x the unmutated run if longer); a mutant past it counts as killed
    functions: tuple = ()  # only mutate inside these functions, classes or Class.method (all when empty)


# Whole modules (issue 28), except the two node files, mutated only in their decision, validation
# and stop functions (scripts/coverage_report.py's NODE_PATHS): the rest of a node is ROS plumbing.
GUARDS = "test/test_guards.py test/test_rule_branches.py -k 'not simulator_arguments'"
TARGETS = {
    "counts": Target("altmarl_ros/core/counts.py", "test/test_counts.py", WHOLE, 240),
    "model": Target("altmarl_ros/core/model.py", "test/test_model.py", 40, 240),
    "policy": Target("altmarl_ros/core/policy.py", "test/test_policy.py", WHOLE, 240),
    "atomic": Target("altmarl_ros/core/atomic.py", f"{GUARDS} test/test_policy.py", WHOLE, 240),
    "safe_files": Target("altmarl_ros/core/safe_files.py",
                         f"{GUARDS} test/test_policy.py test/test_model.py test/test_safe_files.py", WHOLE, 240),
    # test_glearn_storage's one test of the budget (check_learning_size under budget.limited), not the whole file
    # (over a minute per surviving mutant; its other tests give G-LEARN a max_memory, never the budget)
    "budget": Target("altmarl_ros/core/budget.py", f"test/test_budget.py {GUARDS} "
                     "test/test_glearn_storage.py::test_the_size_check_budgets_the_plan_not_int32_draws", WHOLE, 240),
    "decision": Target("altmarl_ros/core/decision.py", "test/test_decision.py test/test_node_helpers.py",
                       WHOLE, 240),
    "kinematics": Target("sim/kinematics.py", "test/test_kinematics.py test/test_ring.py", WHOLE, 240),
    "validate": Target("altmarl_ros/nodes/_validate.py", "test/test_node_helpers.py test/test_command_safety.py",
                       WHOLE, 240),
    "stop": Target("altmarl_ros/nodes/_stop.py", "test/test_stop_signals.py", WHOLE, 240),
    # the fast tests first (decision_schedule's unit tests, then a few seconds of graph): most mutants then
    # fail in seconds, not after test_nodes' 40 s waits
    "coordinator": Target("altmarl_ros/nodes/coordinator.py",
                          " ".join(f"test/test_node_helpers.py::test_decision_schedule_{name}" for name in (
                              "decides_once_in_every_period_with_a_tick", "boundary_is_exact_to_the_nanosecond",
                              "restarts_only_on_a_clock_more_than_a_period_before_the_last_boundary"))
                          + " test/test_coordinator.py test/test_nodes.py test/test_node_paths.py", WHOLE,
                          480, ("decision_schedule", "CoordinatorNode.decide", "CoordinatorNode._depot_pose",
                                "CoordinatorNode._why_no_depot_pose", "CoordinatorNode._sampled_what",
                                "CoordinatorNode.stop_robots", "CoordinatorNode.on_stop",
                                "CoordinatorNode.on_resume")),
    "local_agents": Target("altmarl_ros/nodes/local_agents.py",
                           "test/test_local_agents.py test/test_node_paths.py test/test_nodes.py", WHOLE,
                           480, ("LocalAgentsNode.on_command", "LocalAgentsNode.on_stopped",
                                 "LocalAgentsNode.stop_robots", "LocalAgentsNode._staleness",
                                 "LocalAgentsNode.control", "LocalAgentsNode.destroy_node")),
    "llearn": Target("altmarl_ros/core/llearn.py", "test/test_llearn.py test/test_llearn_limits.py", WHOLE, 480),
    "alternating": Target("altmarl_ros/core/alternating.py", "test/test_alternating.py", WHOLE, 600),
    # G-LEARN was one file of 18 sampled mutants until it was split by job (docs/testing.md). A mutant's run is
    # mostly numba compiling _sweep, once per count of code fields (n_sl - 1): first test_glearn_mutants and the
    # checks that compile nothing else (their sweeps have n_sl = 2), then brute force and a code layout on that
    # compile, every layout on a second (n_sl = 9), then both files whole (--keep-duplicates: pytest would
    # otherwise merge the named tests back into their files' order; the 16 named tests, run twice, take
    # milliseconds once compiled)
    "glearn": Target("altmarl_ros/core/glearn.py",
                     "--keep-duplicates test/test_glearn_mutants.py "
                     "test/test_glearn.py::test_bad_input_names_the_field "
                     "test/test_glearn.py::test_slow_mode_steps_follow_a_steady_span_ratio "
                     "test/test_glearn.py::test_extrapolation_step_removes_one_geometric_mode "
                     "test/test_glearn.py::test_the_exact_fixed_point_on_each_side_of_the_eight_global_states_the_sweep"
                     "_sums_in_registers 'test/test_glearn_storage.py::test_codes_decode_every_field_width[2]' "
                     "test/test_glearn_storage.py::test_every_layout_of_a_tiny_game_gives_the_ranks_answer "
                     "test/test_glearn.py test/test_glearn_storage.py", WHOLE, 300),
    # the draws against brute force first (seconds once compiled), before the learners' minutes
    "glearn_draws": Target("altmarl_ros/core/glearn_draws.py",
                           "test/test_glearn_draws.py test/test_glearn.py test/test_glearn_storage.py", WHOLE, 300),
    # the planning arithmetic first (seconds): most mutants die there, before test_glearn_storage's minute
    "glearn_memory": Target("altmarl_ros/core/glearn_memory.py",
                            "test/test_glearn_memory.py test/test_glearn_storage.py", WHOLE, 300),
    "fused": Target("altmarl_ros/core/fused.py", "test/test_fused.py test/test_glearn.py test/test_llearn.py", WHOLE,
                    480),
    # the rollout kernel's filter path is tested against the observer's own references in test_observer
    "evaluate": Target("altmarl_ros/core/evaluate.py", "test/test_evaluate.py test/test_observer.py", WHOLE, 600),
    "observer": Target("altmarl_ros/core/observer.py", "test/test_observer.py", WHOLE, 480),
    "observer_training": Target("altmarl_ros/core/observer_training.py", "test/test_observer_training.py",
                                14, 480),
    # every test file that imports the module (its FA, twin and loader functions are tested beside the nodes), the
    # seconds-long test_rollout_budget first
    "rollout": Target("sim/rollout.py", "test/test_rollout_budget.py test/test_sim_learning.py test/test_decision.py "
                      "test/test_pettingzoo.py test/test_continuous_ring.py test/test_continuous_ring_nodes.py", WHOLE,
                      480),
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


TIMEOUT_FACTOR = 3  # a mutant's timeout in unmutated runs (those recompile what a mutant recompiles)
TIMED_OUT = "timeout"  # cosmic-ray's output for a mutant killed by its timeout


def _config(stem: str, target: Target, template: Path, unmutated_seconds: float) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    config = OUT / f"{stem}.toml"
    config.write_text(f"""[cosmic-ray]
module-path = "{target.path}"
timeout = {max(target.timeout, TIMEOUT_FACTOR * unmutated_seconds):.0f}
excluded-modules = []
test-command = "bash scripts/mutant_tests.sh {template} {target.tests}"

[cosmic-ray.distributor]
name = "local"
""")
    return config


def _line_ranges(path: Path, names) -> list:
    """(first, last) lines of each named top-level function or class, or `Class.method`."""
    tree = ast.parse(path.read_text())
    found = {}
    for node in tree.body:
        if hasattr(node, "name"):
            found[node.name] = node
            for inner in getattr(node, "body", ()):
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{inner.name}"] = inner
    missing = set(names) - set(found)
    if missing:
        sys.exit(f"mutation: {path} has no function or method {sorted(missing)}: check --functions, or TARGETS in "
                 f"{__file__}")
    return [(found[name].lineno, found[name].end_lineno) for name in names]


def _timed_out(result) -> bool:
    return (result.output or "").strip() == TIMED_OUT


def _survived(session: Path) -> set:
    """(operator, occurrence) of each mutant that survived or timed out in a session: the same mutant in a
    new session of the same source."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    if not session.exists():
        sys.exit(f"mutation: no earlier run in {session} to take the survivors of")
    with use_db(str(session), WorkDB.Mode.open) as db:
        return {(item.mutations[0].operator_name, item.mutations[0].occurrence)
                for item, result in db.completed_work_items
                if result.test_outcome == TestOutcome.SURVIVED or _timed_out(result)}


def _select(session: Path, target: Target, shard: tuple, sample, only=None) -> tuple:
    """Mark every mutant outside the run (or not in `only`) as skipped; (all mutants, kept after filters, run)."""
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
        budget = target.budget if sample is None else sample
        chosen = kept if budget is WHOLE else random.Random(SAMPLE_SEED).sample(kept, min(budget, len(kept)))
        index, count = shard
        chosen = chosen[index - 1::count]
        if only is not None:
            chosen = [item for item in chosen
                      if (item.mutations[0].operator_name, item.mutations[0].occurrence) in only]
        chosen_ids = {item.job_id for item in chosen}
        skipped = [item.job_id for item in items if item.job_id not in chosen_ids]
        db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                     output="not in this run"))
    return len(items), len(kept), len(chosen)


def _warm_cache(stem: str, target: Target, cold: bool) -> tuple:
    """A numba cache for the mutants to start from: warmed by the tests on the unmutated sources,
    less the entries the module's mutants can make stale; empty with `cold`. (cache, the unmutated run's s)"""
    template = OUT / f"{stem}.numba-cache"
    shutil.rmtree(template, ignore_errors=True)
    template.mkdir(parents=True)
    if cold:
        return template, 0.0
    started = time.perf_counter()
    warm = subprocess.run(["bash", "scripts/mutant_tests.sh", str(template), *shlex.split(target.tests)], cwd=ROOT,
                          env={**os.environ, "MUTANT_WARM_IN_PLACE": "1"})
    seconds = time.perf_counter() - started
    if warm.returncode != 0:
        sys.exit(f"mutation: the tests of {stem} fail on the unmutated sources: {target.tests}")
    entries = sum(1 for _ in template.rglob("*.nbi"))
    subprocess.run([str(PYTHON), "scripts/mutant_cache.py", str(template), target.path], cwd=ROOT, check=True)
    print(f"mutation {stem}: unmutated run {seconds:.1f} s; {entries} kernels cached, "
          f"{sum(1 for _ in template.rglob('*.nbi'))} kept for the mutants", flush=True)
    return template, seconds


def _summary(stem: str, session: Path, sizes: tuple, seconds: float) -> str:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    survivors, timed_out, killed, other = [], [], 0, 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            mutation = item.mutations[0]
            listed = f"--- {item.job_id} {mutation.operator_name} line {mutation.start_pos[0]}\n{result.diff}"
            if result.test_outcome == TestOutcome.SURVIVED:
                survivors.append(listed)
            elif result.test_outcome == TestOutcome.KILLED:
                killed += 1
                if _timed_out(result):
                    timed_out.append(listed)
            else:
                other += 1
    total, kept, ran = sizes
    line = (f"{stem}: {total} mutants, {kept} after operator/function filters, {ran} run: "
            f"{killed} killed ({len(timed_out)} by the timeout), {len(survivors)} survived, {other} incompetent; "
            f"{seconds:.0f} s, {seconds / max(ran, 1):.1f} s per mutant")
    report = line + "\n\n" + "\n".join(survivors)
    if timed_out:
        report += ("\n\nTimed out (counted as killed; a hang, or a survivor slowed by the load: --survivors "
                   "runs them again):\n\n" + "\n".join(timed_out))
    (OUT / f"{stem}.survivors.txt").write_text(report)
    return line


def run(name: str, shard: tuple, cold: bool, sample, survivors: bool, functions: tuple = ()) -> str:
    target = TARGETS[name]
    if functions:
        target = replace(target, budget=WHOLE, functions=functions)
    stem = name + (f".sample-{sample}" if sample else "") + \
        (f".shard-{shard[0]}-of-{shard[1]}" if shard != (1, 1) else "") + \
        (f".only-{'-'.join(functions)}" if functions else "")
    template, unmutated_seconds = _warm_cache(stem, target, cold)
    config = _config(stem, target, template, unmutated_seconds)
    session = OUT / f"{stem}.sqlite"
    only = _survived(session) if survivors else None
    session.unlink(missing_ok=True)
    cosmic_ray = Path(sys.executable).parent / "cosmic-ray"
    subprocess.run([str(cosmic_ray), "init", str(config), str(session)], cwd=ROOT, check=True)
    sizes = _select(session, target, shard, sample, only)
    print(f"mutation {stem}: {sizes[2]} of {sizes[0]} mutants; tests: {target.tests}", flush=True)
    started = time.perf_counter()
    subprocess.run([str(cosmic_ray), "exec", str(config), str(session)], cwd=ROOT, check=True)
    return _summary(stem, session, sizes, time.perf_counter() - started)


def _shard(text: str) -> tuple:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"--shard takes i/N with 1 <= i <= N, not {text!r}")
    return int(index), int(count)


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"any of {list(TARGETS)} (none: all)")
    parser.add_argument("--shard", type=_shard, default=(1, 1), help="i/N: every N-th mutant, from the i-th")
    parser.add_argument("--sample", type=int, help="a seeded sample of this many mutants (instead of the budget)")
    parser.add_argument("--cold", action="store_true", help="start every mutant on an empty numba cache")
    parser.add_argument("--survivors", action="store_true",
                        help="only the mutants the previous run left alive or timed out")
    parser.add_argument("--functions", type=lambda text: tuple(text.split(",")), default=(),
                        help="NAME[,NAME...]: every mutant inside these functions or Class.method (one module)")
    parser.add_argument("--list", action="store_true", help="the modules, their tests and budgets")
    args = parser.parse_args(argv)
    if args.list:
        for name, target in TARGETS.items():
            size = "whole" if target.budget is WHOLE else f"{target.budget:5d}"
            print(f"{name:14s} {target.path:34s} {size:>5s}  {target.tests}"
                  + (f"  (only {', '.join(target.functions)})" if target.functions else ""))
        return 0
    unknown = [name for name in args.modules if name not in TARGETS]
    if unknown:
        print(f"mutation: unknown module(s) {unknown}; choose from {list(TARGETS)}", file=sys.stderr)
        return 2
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "altmarl_ros", "sim"],
                           cwd=ROOT, capture_output=True, text=True).stdout
    if dirty:
        print(f"mutation: commit or stash your changes to the sources first (mutants are written in place):\n{dirty}",
              file=sys.stderr)
        return 2
    if args.functions and len(args.modules) != 1:
        print("mutation: --functions names functions of one module: name that module", file=sys.stderr)
        return 2
    lines = [run(name, args.shard, args.cold, args.sample, args.survivors, args.functions)
             for name in (args.modules or TARGETS)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
