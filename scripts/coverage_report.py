"""Branch coverage by area, the nodes' decision, validation and stop paths, and every uncovered branch.

Reads coverage.py's JSON report (scripts/coverage.sh writes build/coverage/coverage.json) and prints:
the figures for core/ and sim/ (target: 95% each), the named node functions (target: 100%), a table
per module, and each module's missing lines and branches ("12->14": the jump from line 12 to line 14
never taken; "->exit": leaving the function). Exit 1 when a target is missed or a named function is
no longer in the report (renamed: update NODE_PATHS). docs/testing.md, Branch coverage, lists what is
left uncovered and why.

Two figures per area: "total" is coverage.py's own figure with --cov-branch, (lines run + branches
taken) / (lines + branches), the one the targets apply to; "branches" is taken branches / all branches.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

AREAS = {"core/": "altmarl_ros/core/", "sim/": "sim/", "nodes/ (all; for reference)": "altmarl_ros/nodes/"}
TARGET_AREAS = {"core/": 95.0, "sim/": 95.0}
# The nodes' decision, validation and stop paths (issue 28): a whole module (None), or its functions.
NODE_PATHS = {
    "altmarl_ros/nodes/_validate.py": None,
    "altmarl_ros/nodes/_stop.py": None,
    "altmarl_ros/core/decision.py": None,
    "altmarl_ros/nodes/coordinator.py": ("decision_schedule", "CoordinatorNode.decide", "CoordinatorNode._depot_pose",
                                         "CoordinatorNode._why_no_depot_pose", "CoordinatorNode._sampled_what",
                                         "CoordinatorNode.stop_robots", "CoordinatorNode.on_stop",
                                         "CoordinatorNode.on_resume"),
    "altmarl_ros/nodes/local_agents.py": ("LocalAgentsNode.on_command", "LocalAgentsNode.on_stopped",
                                          "LocalAgentsNode.stop_robots", "LocalAgentsNode._staleness",
                                          "LocalAgentsNode.control", "LocalAgentsNode.destroy_node"),
    "altmarl_ros/nodes/_goals.py": ("GoalSender.hold_all",),
}
FIELDS = ("num_statements", "missing_lines", "num_branches", "covered_branches", "num_partial_branches")


def figures(summaries) -> dict:
    """Summed counts and both percentages of coverage.py summaries."""
    total = {key: sum(s[key] for s in summaries) for key in FIELDS}
    run = total["num_statements"] - total["missing_lines"] + total["covered_branches"]
    total["branch_pct"] = 100.0 * total["covered_branches"] / total["num_branches"] if total["num_branches"] else 100.0
    total["total_pct"] = 100.0 * run / (total["num_statements"] + total["num_branches"]) \
        if total["num_statements"] + total["num_branches"] else 100.0
    return total


def row(name: str, f: dict) -> str:
    return (f"{name:<52} {f['num_statements']:>5} {f['missing_lines']:>5} {f['num_branches']:>6} "
            f"{f['num_branches'] - f['covered_branches']:>6} {f['branch_pct']:>8.1f}% {f['total_pct']:>6.1f}%")


HEADER = f"{'':<52} {'lines':>5} {'miss':>5} {'branch':>6} {'miss':>6} {'branches':>9} {'total':>7}"


def missing(entry: dict) -> str:
    """Missing lines and branches as coverage.py prints them, e.g. `12, 30->exit, 41->44`."""
    branches = [f"{a}->{'exit' if b < 0 else b}" for a, b in entry["missing_branches"]]
    lines = [str(line) for line in entry["missing_lines"]]
    return ", ".join(sorted(lines + branches, key=lambda s: int(s.split("-")[0])))


def main(path: str) -> int:
    measured = json.loads(Path(path).read_text())["files"]
    # coverage.py names the checkout's files relative to it; an absolute name is another copy of the package
    # (a process that imported an installed one), not this checkout's code.
    files = {name: entry for name, entry in measured.items() if not Path(name).is_absolute()}
    shortfalls = []
    print("Branch coverage by area (scripts/coverage.sh; docs/testing.md, Branch coverage)")
    print(HEADER)
    for area, prefix in AREAS.items():
        f = figures([e["summary"] for name, e in files.items() if name.startswith(prefix)])
        print(row(area, f))
        if area in TARGET_AREAS and f["total_pct"] < TARGET_AREAS[area]:
            shortfalls.append(f"{area} below {TARGET_AREAS[area]:g}%")
    print("\nThe nodes' decision, validation and stop paths (target 100%)")
    print(HEADER)
    for module, functions in NODE_PATHS.items():
        entry = files.get(module)
        for name in (None,) if functions is None else functions:
            label = f"{module.split('/', 1)[1]}" + ("" if name is None else f" {name}")
            part = entry if name is None else (entry or {}).get("functions", {}).get(name)
            if part is None:
                print(f"{label:<52} not in the report")
                shortfalls.append(f"{label} not in the report")
                continue
            f = figures([part["summary"]])
            print(row(label, f) + (f"   missing: {missing(part)}" if f["total_pct"] < 100 else ""))
            if f["total_pct"] < 100:
                shortfalls.append(f"{label} below 100%")
    print("\nPer module, with every line and branch not run")
    print(HEADER)
    for name, entry in sorted(files.items()):
        f = figures([entry["summary"]])
        print(row(name, f))
        if f["total_pct"] < 100:
            print(f"    missing: {missing(entry)}")
    if len(files) < len(measured):
        print(f"\n({len(measured) - len(files)} files outside this checkout left out)")
    for shortfall in shortfalls:
        print(f"coverage: {shortfall}", file=sys.stderr)
    return 1 if shortfalls else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/coverage/coverage.json"))
