"""Bad inputs, one table row each: the command must end in one named error line, nothing else.

Every row runs `altmarl <argv>` in-process in a fresh directory holding the row's
files, and checks: exit status 2 (usage or input error); no traceback; the last
stderr line starts with "altmarl <command>: error:" and matches the row's pattern;
no file in the directory changed, vanished or appeared (directories may); and the
process's peak memory grew by less than PEAK_GROWTH_LIMIT (a guard that fires
after a multi-GB allocation is no guard). A watchdog ends the run if one row takes
longer than ROW_TIMEOUT_SEC (a hang). Add a row for every bad input found.
"""
from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import json
import os
import re
import resource
import signal
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from altmarl_ros.cli import main
from altmarl_ros.core import budget, work
from altmarl_ros.core.model import make_game, model_yaml_text
from altmarl_ros.core.policy import build_policy, save_policy

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = (ROOT / "config" / "scenarios" / "warehouse_ring.yaml").read_text()
FLEET = (ROOT / "config" / "fleet.yaml").read_text()
SWEEP = (ROOT / "config" / "sweep.yaml").read_text()
WAREHOUSE = str(ROOT / "config" / "models" / "warehouse.yaml")
ROW_TIMEOUT_SEC = 10  # a hang, not a slow row (issue 25: every row within 10 s)
PEAK_GROWTH_LIMIT = 1 << 30  # bytes of ru_maxrss growth one row may cause


def tiny_game(**changes):
    rng = np.random.default_rng(0)

    def rows(*shape):
        return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])

    arrays = dict(P_g=rows(2, 2, 2), P_l=rows(2, 2, 2, 2), r_g=rng.uniform(0, 1, (2, 2)),
                  r_l=rng.uniform(0, 2, (2, 2, 2)), gamma=0.9)
    arrays.update(changes)
    return make_game(**arrays)


TINY = tiny_game()
TINY_YAML = model_yaml_text(TINY)
OTHER = tiny_game(r_g=np.zeros((2, 2)))  # same sizes, different hash


def model_yaml(**changes) -> str:
    """The tiny model as YAML with some entries replaced (nested lists)."""
    import yaml

    document = {key: value.tolist() for key, value in arrays_of(TINY).items()}
    document["gamma"] = 0.9
    document.update(changes)
    return yaml.safe_dump(document)


def arrays_of(game) -> dict:
    return {key: np.asarray(getattr(game, key)) for key in ("P_g", "P_l", "r_g", "r_l", "mu0_g", "mu0_l")}


def npz_bytes(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


def policy_for(game=TINY, k=2, **meta_changes):
    n_f = 3  # C(k + 1, 1) count vectors for k = 2 over 2 local states
    return build_policy(np.zeros((2, n_f), np.int32), np.full((2, 2, 2), 0.5), k, game=game, **meta_changes)


def write_policy(path: Path, **arrays_and_meta) -> None:
    """A policy file with chosen members (meta as a dict is JSON-encoded)."""
    base = policy_for()
    members = {"pi_g": base.pi_g, "pi_l": base.pi_l, "meta": base.meta}
    members.update(arrays_and_meta)
    if isinstance(members.get("meta"), dict):
        members["meta"] = np.str_(json.dumps(members["meta"]))
    np.savez(path, **{key: value for key, value in members.items() if value is not None})


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def declared_huge_npz(path: Path, key: str, shape, others: dict) -> None:
    """An .npz whose member `key` declares `shape` float64 but stores only its header (tiny file)."""
    np.savez(path, **others)
    header = {"descr": "<f8", "fortran_order": False, "shape": tuple(shape)}
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{key}.npy", "w") as stream:
            np.lib.format.write_array_header_1_0(stream, header)
            stream.write(b"\0" * 4096)


def scenario_with(old: str, new: str) -> str:
    assert old in SCENARIO, old
    return SCENARIO.replace(old, new, 1)


def fleet_with(old: str, new: str) -> str:
    assert old in FLEET, old
    return FLEET.replace(old, new, 1)


@dataclass
class Row:
    name: str
    argv: list
    pattern: str  # regex searched in the error line
    files: dict = field(default_factory=dict)  # file name -> str | bytes | callable(path)
    env: dict = field(default_factory=dict)  # variable -> value (None: unset) while the row runs
    stdout: str = ""  # "full": /dev/full; "closed pipe": a pipe whose reader is closed
    setup: object = None  # callable(row directory) run after the files are written (e.g. a deleted cwd)


def T(model="m.yaml", *extra, k="2", out="out.npz"):
    return ["train", "--model", model, "--k", k, "--out", out, "--quiet", *extra]


def E(*extra, model="m.yaml", policy="p.npz"):
    return ["evaluate", "--model", model, "--policy", policy, "--n", "10", "--horizon", "5", "--seeds", "2",
            "--rollouts", "2", "--no-baselines", "--quiet", *extra]


def S(scenario="s.yaml", *extra):
    return ["train", "--scenario", scenario, "--k", "2", "--quiet", "--out", "out.npz", *extra]


def L(fleet="f.yaml", *extra):
    return ["launch", "--fleet", fleet, "--duration", "1", *extra]


M = {"m.yaml": TINY_YAML}
MP = {"m.yaml": TINY_YAML, "p.npz": lambda p: save_policy(policy_for(), p)}
NONUTF8 = b"name: caf\xe9\ngamma: 0.9\n"

ROWS = [
    # ------------------------------------------------------------------ model files
    Row("model yaml not UTF-8", T(), r"m\.yaml: the model file is not UTF-8", {"m.yaml": NONUTF8}),
    Row("model yaml alias bomb", T(), r"m\.yaml: its aliases expand", {"m.yaml": alias_bomb()}),
    Row("model yaml python tag", T(), r"m\.yaml: line 1, column 8: the tag .*python.* is not allowed", {
        "m.yaml": "gamma: !!python/object/apply:os.system ['touch pwned']\n"}),
    Row("model yaml nested 100k deep", T(), r"m\.yaml: line 1, column \d+: nested more than 64 levels deep",
        {"m.yaml": "gamma: " + "[" * 100_000 + "\n"}),
    Row("model yaml syntax error", T(), r"m\.yaml: not valid YAML", {"m.yaml": "gamma: [\n"}),
    Row("model yaml empty", T(), r"top level must be a mapping", {"m.yaml": ""}),
    Row("model yaml top-level list", T(), r"top level must be a mapping", {"m.yaml": "- 1\n- 2\n"}),
    Row("model unknown key", T(), r"unknown key\(s\) rewards", {"m.yaml": TINY_YAML + "rewards: 3\n"}),
    Row("model missing gamma", T(), r"missing key\(s\) gamma",
        {"m.yaml": TINY_YAML.replace("gamma: 0.9\n", "")}),
    Row("model gamma 1", T(), r"gamma is 1\.0; it must be in \[0, 1\)",
        {"m.yaml": TINY_YAML.replace("gamma: 0.9", "gamma: 1")}),
    Row("model gamma text", T(), r"gamma is 'fast'", {"m.yaml": TINY_YAML.replace("gamma: 0.9", "gamma: fast")}),
    Row("model gamma bool", T(), r"gamma is True", {"m.yaml": TINY_YAML.replace("gamma: 0.9", "gamma: true")}),
    Row("model P_l row sum", T("m.npz"), r"P_l\[0, 0, 0, :\] sums to", {"m.npz": lambda p: npz_bytes(
        p, gamma=0.9, **{**arrays_of(TINY), "P_l": np.full((2, 2, 2, 2), 0.4)})}),
    Row("model negative probability", T("m.npz"), r"P_g\[0, 0, 0\] is -0\.5; probabilities must be >= 0",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **{**arrays_of(TINY),
                                                      "P_g": np.tile([-0.5, 1.5], (2, 2, 1))})}),
    Row("model NaN reward", T("m.npz"), r"r_g\[0, 1\] is nan; every entry must be a finite number",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **{**arrays_of(TINY), "r_g": np.array([[0, np.nan], [0, 0]])})}),
    Row("model reward 1e308", T("m.npz"), r"r_l\[0, 0, 0\] is 1e\+308; rewards must be within \+-1e\+09",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **{**arrays_of(TINY), "r_l": np.full((2, 2, 2), 1e308)})}),
    Row("model inf transition", T("m.npz"), r"P_g\[0, 0, 0\] is inf",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **{**arrays_of(TINY), "P_g": np.full((2, 2, 2), np.inf)})}),
    Row("model complex r_g", T("m.npz"), r"m\.npz: r_g holds complex numbers",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **{**arrays_of(TINY), "r_g": TINY.r_g + 1j})}),
    Row("model string array", T("m.npz"), r"m\.npz: r_l is a string array",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **{**arrays_of(TINY), "r_l": np.array(["a", "b"])})}),
    Row("model pickled object", T("m.npz"), r"m\.npz: r_g holds Python objects \(a pickle\)",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **{**arrays_of(TINY),
                                                      "r_g": np.array([{"x": 1}, None], dtype=object)})}),
    Row("model npz declares 6.4 GB P_l", T("m.npz"), r"m\.npz: the arrays this file declares .*needs 5\.96 GiB, "
        r"over the memory budget of 1 GiB .*--max-memory",
        {"m.npz": lambda p: declared_huge_npz(p, "P_l", (200, 200, 200, 100),
                                              {"gamma": 0.9, **{k: v for k, v in arrays_of(TINY).items()
                                                                if k != "P_l"}})}),
    Row("model npz truncated", T("m.npz"), r"m\.npz: not a readable \.npz model file", {
        "m.npz": lambda p: (npz_bytes(p, gamma=0.9, **arrays_of(TINY)),
                            p.write_bytes(p.read_bytes()[:300]))}),
    Row("model npz not a zip", T("m.npz"), r"m\.npz: not a readable \.npz model file", {"m.npz": b"hello"}),
    Row("model npz extra key", T("m.npz"), r"m\.npz: unknown key\(s\) extra",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, extra=np.zeros(2), **arrays_of(TINY))}),
    Row("model npz gamma array", T("m.npz"), r"gamma has shape \(2,\); it must be a scalar",
        {"m.npz": lambda p: npz_bytes(p, gamma=np.array([0.9, 0.9]), **arrays_of(TINY))}),
    Row("model ragged rows", T(), r"P_g is not a numeric array",
        {"m.yaml": model_yaml(P_g=[[[0.5, 0.5], [1.0]], [[1.0, 0.0], [0.0, 1.0]]])}),
    Row("model wrong dimensions", T(), r"r_g has 1 dimensions", {"m.yaml": model_yaml(r_g=[1.0, 2.0])}),
    Row("model probability as text", T(), r"P_l is not a numeric array",
        {"m.yaml": model_yaml(P_l=[[[["a", "b"]] * 2] * 2] * 2)}),
    Row("model r_l wrong shape", T(), r"r_l has shape \(2, 2, 3\); expected \(2, 2, 2\)",
        {"m.yaml": model_yaml(r_l=np.zeros((2, 2, 3)).tolist())}),
    Row("model wrong suffix", T("m.txt"), r"m\.txt: unknown model file type", {"m.txt": TINY_YAML}),
    Row("model file missing", T("absent.yaml"), r"absent\.yaml: no such model file"),
    Row("model is a directory", T("dir.yaml"), r"dir\.yaml: no such model file", {"dir.yaml/x": "x"}),
    # ------------------------------------------------------------------ policy files
    Row("policy missing", E(policy="absent.npz"), r"absent\.npz: no such policy file", M),
    Row("policy truncated", E(), r"p\.npz: not a readable policy file",
        {**M, "p.npz": lambda p: (save_policy(policy_for(), p), p.write_bytes(p.read_bytes()[:200]))}),
    Row("policy pickled meta", E(), r"p\.npz: meta holds Python objects",
        {**M, "p.npz": lambda p: write_policy(p, meta=np.array([{"k": 2}], dtype=object))}),
    Row("policy extra member", E(), r"p\.npz: policy file has keys",
        {**M, "p.npz": lambda p: write_policy(p, extra=np.zeros(1))}),
    Row("policy meta not JSON", E(), r"p\.npz: meta: not valid JSON",
        {**M, "p.npz": lambda p: write_policy(p, meta=np.str_("{not json"))}),
    Row("policy wrong format version", E(), r"format_version is 99",
        {**M, "p.npz": lambda p: write_policy(p, meta={**policy_for().meta, "format_version": 99})}),
    Row("policy action out of range", E(), r"p\.npz: pi_g\[0, 0\]: is 7; global actions are 0\.\.1",
        {**M, "p.npz": lambda p: write_policy(p, pi_g=np.full((2, 3), 7, np.int32))}),
    Row("policy NaN pi_l", E(), r"p\.npz: pi_l\[0, 0, 0\]: is nan",
        {**M, "p.npz": lambda p: write_policy(p, pi_l=np.full((2, 2, 2), np.nan))}),
    Row("policy float pi_g", E(), r"p\.npz: pi_g: has dtype float64",
        {**M, "p.npz": lambda p: write_policy(p, pi_g=np.zeros((2, 3)))}),
    Row("policy declares 8 GB pi_g", E(), r"p\.npz: the arrays this file declares .*over the memory budget",
        {**M, "p.npz": lambda p: declared_huge_npz(p, "pi_g", (2, 500_000_000), {
            "pi_l": policy_for().pi_l, "meta": np.str_(json.dumps(policy_for().meta))})}),
    Row("policy of another model (same sizes)", E(), r"p\.npz does not match: model hash",
        {**M, "p.npz": lambda p: save_policy(policy_for(OTHER), p)}),
    Row("policy learned from a simulator scored on a model", E(),
        r"p\.npz does not match: it was learned from scenario 'ring' .*evaluate it with --scenario ring",
        {**M, "p.npz": lambda p: save_policy(policy_for(None, n_ag=2, scenario=("ring", "0123456789abcdef")), p)}),
    Row("policy for a model evaluated on a scenario", ["evaluate", "--scenario", "s.yaml", "--policy", "p.npz",
                                                       "--quiet"],
        r"p\.npz does not match: .*scenario hash None", {"s.yaml": SCENARIO, **MP}),
    # ------------------------------------------------------------------ flags
    Row("train --k 0", T(k="0"), r"argument --k: 0 is out of range", M),
    Row("train --k text", T(k="ten"), r"argument --k: 'ten' is not an integer", M),
    Row("train --k 1000000 (int32 ranks)", T(WAREHOUSE, "--select-n", "2000000", "--max-work", "1e11", k="1000000"),
        r"beyond int32 ranks"),
    Row("train --k above --select-n", T(WAREHOUSE, k="1001"), r"--select-n 1000 is below --k 1001"),
    Row("train --k 400 on the warehouse model (20 GiB)", T(WAREHOUSE, "--max-work", "1e11", k="400"),
        r"G-LEARN on 5 x 1093567501 .*needs [\d.]+ GiB, over the memory budget .*use a smaller --k, or raise "
        r"--max-memory"),
    Row("train --k 3000000000", T(k="3000000000"), r"argument --k: 3000000000 is out of range", M),
    Row("train --m huge", T("m.yaml", "--m", "99999999999"), r"argument --m: .* out of range", M),
    Row("train --tol 0", T("m.yaml", "--tol", "0"), r"argument --tol: 0 is out of range", M),
    Row("train --tol nan", T("m.yaml", "--tol", "nan"), r"argument --tol: nan is out of range", M),
    Row("train --eta -1", T("m.yaml", "--eta", "-1"), r"argument --eta: -1 is out of range", M),
    Row("train --rounds 0", T("m.yaml", "--rounds", "0"), r"argument --rounds: 0 is out of range", M),
    Row("train --seed -1", T("m.yaml", "--seed", "-1"), r"argument --seed: -1 is out of range", M),
    Row("train --max-memory nonsense", T("m.yaml", "--max-memory", "12Q"), r"--max-memory '12Q': give a size", M),
    Row("train --max-memory 0", T("m.yaml", "--max-memory", "0"), r"must be at least 1 byte", M),
    Row("train --max-memory 1K", T("m.yaml", "--max-memory", "1K"), r"over the memory budget of 1 KiB "
        r"\(--max-memory\)", M),
    Row("train --samples without --scenario", T("m.yaml", "--samples", "5"), r"apply to --scenario training", M),
    Row("evaluate --n 5000000000", E("--n", "5000000000"), r"argument --n: 5000000000 is out of range", MP),
    Row("evaluate --n 2147483647 (24 GB)", E("--n", "2147483647"), r"rollout state of n = 2147483647 agents "
        r".*over the memory budget", MP),
    Row("evaluate --horizon 1e11", E("--horizon", "100000000000"), r"argument --horizon: .* out of range", MP),
    Row("evaluate --horizon 2e6", E("--horizon", "2000000"), r"horizon: 2000000 epochs is more than 1000000", MP),
    Row("evaluate --horizon 1e11 as float", E("--horizon", "1e11"), r"argument --horizon: '1e11' is not an "
        r"integer", MP),
    Row("evaluate too many rollouts", E("--seeds", "2000", "--rollouts", "1000"), r"seeds x rollouts = 2000000",
        MP),
    Row("evaluate k > n", E("--n", "1"), r"k = 2 exceeds the number of local agents n = 1", MP),
    Row("evaluate --dirichlet-alpha 0", E("--dirichlet-alpha", "0"), r"argument --dirichlet-alpha: 0 is out",
        MP),
    Row("evaluate --reply-loss 1", E("--reply-loss", "1"), r"argument --reply-loss: 1 is out of range: use a "
        r"finite number in \[0, 1\)", MP),
    Row("evaluate --reply-loss -0.1", E("--reply-loss", "-0.1"), r"argument --reply-loss: -0\.1 is out of range",
        MP),
    Row("demo --duration inf", ["demo", "--duration", "inf"], r"argument --duration: inf is out of range"),
    Row("demo --duration -5", ["demo", "--duration", "-5"], r"argument --duration: -5 is out of range"),
    Row("demo --rollouts 1", ["demo", "--rollouts", "1", "--fleet", "f.yaml"], r"argument --rollouts: 1 is out of "
                                                                               r"range: use an integer in \[2, ",
        {"f.yaml": FLEET}),
    Row("launch --duration nan", L("f.yaml", "--duration", "nan"), r"argument --duration: nan is out of range",
        {"f.yaml": FLEET}),
    Row("render --n 2e9 robots", ["render", "--scenario", "s.yaml", "--n", "2000000000", "--out", "x.png",
                                   "--max-work", "1e11"],
        r"(simulated fleet|frames) of n = 2000000000 robots needs .* over the memory budget", {"s.yaml": SCENARIO}),
    # ------------------------------------------------------------------ outputs
    Row("train --out is the model", T("m.npz", out="m.npz"), r"--out m\.npz is also an input",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **arrays_of(TINY))}),
    Row("train --out is the model by another path", T("m.npz", out="sub/../m.npz"), r"is also an input",
        {"m.npz": lambda p: npz_bytes(p, gamma=0.9, **arrays_of(TINY)), "sub/keep": "x"}),
    Row("train --out is a directory", T(out="d.npz"), r"--out d\.npz is a directory", {**M, "d.npz/x": "x"}),
    Row("train --out under /proc", T(out="/proc/altmarl/p.npz"), r"--out /proc/altmarl/p\.npz: cannot write "
        r"there", M),
    Row("train --out read-only file", T(out="ro.npz"), r"--out ro\.npz: the file exists and is read-only",
        {**M, "ro.npz": lambda p: (p.write_bytes(b"keep"), p.chmod(0o444))}),
    Row("train --out not .npz", T(out="p.txt"), r"--out p\.txt: policy files end in \.npz", M),
    Row("evaluate --policy is a model", E(policy="m.yaml"), r"m\.yaml: not a readable policy file", M),
    Row("scenario named ..", ["train", "--scenario", "s.yaml", "--k", "2", "--quiet"],
        r"name: '\.\.' cannot name a directory", {"s.yaml": scenario_with("name: warehouse_ring", 'name: ".."')}),
    Row("demo --retrain with a named existing "
        "--policy", ["demo", "--retrain", "--policy", "p.npz", "--fleet", "f.yaml"],
        r"--retrain --policy p\.npz: that file exists and a policy file named with --policy is never overwritten",
        {"f.yaml": FLEET, **MP}),
    Row("demo --policy trained elsewhere", ["demo", "--policy", "p.npz", "--fleet", "f.yaml"],
        r"p\.npz does not match: .*scenario hash None", {"f.yaml": FLEET, **MP}),
    Row("render --out is the policy", ["render", "--scenario", "s.yaml", "--policy", "p.npz", "--out", "p.npz"],
        r"--out p\.npz is also an input", {"s.yaml": SCENARIO, **MP}),
    # ------------------------------------------------------------------ scenarios
    Row("scenario not UTF-8", S(), r"s\.yaml.*not UTF-8", {"s.yaml": NONUTF8}),
    Row("scenario alias bomb", S(), r"s\.yaml.*aliases expand", {"s.yaml": alias_bomb()}),
    Row("scenario zones.count 100000 (224 GiB)", S("s.yaml", "--max-work", "1e11"),
        r"100000-zone scenario .* needs .* over the memory budget .*zones\.count",
        {"s.yaml": scenario_with("count: "
                                 "5 ", "count: 100000 ").replace("start_jitter: 0.1", "start_jitter: 0.000001")}),
    Row("scenario unknown key", S(), r"zones\.colour: unknown key",
        {"s.yaml": scenario_with("zones:\n", "zones:\n  colour: red\n")}),
    Row("scenario zones.count 1", S(), r"zones\.count: must be an integer >= 2",
        {"s.yaml": scenario_with("count: 5 ", "count: 1 ")}),
    Row("scenario gamma "
        "1.5", S(), r"gamma: must be in \[0, 1\)", {"s.yaml": scenario_with("gamma: 0.95", "gamma: 1.5")}),
    Row("scenario reward 1e308", S(), r"rewards\.service: must be within \+-1e\+09",
        {"s.yaml": scenario_with("service: 10.0", "service: 1.0e+308")}),
    Row("scenario reward text", S(), r"rewards\.worker_energy: must be a number",
        {"s.yaml": scenario_with("worker_energy: 0.5", "worker_energy: lots")}),
    Row("scenario file missing", S("absent.yaml"), r"no such file: absent\.yaml"),
    Row("scenario unknown name", S("no_such_scenario"), r"unknown scenario 'no_such_scenario'"),
    Row("scenario python tag", S(), r"s\.yaml: line 1, column 7: the tag .*python.* is not allowed",
        {"s.yaml": "name: !!python/name:os.system\n"}),
    # ------------------------------------------------------------------ fleet files
    Row("fleet not UTF-8", L(), r"f\.yaml.*not UTF-8", {"f.yaml": NONUTF8}),
    Row("fleet alias bomb", L(), r"f\.yaml.*aliases expand", {"f.yaml": alias_bomb()}),
    Row("fleet section typo fleet_simm", L(), r"f\.yaml: fleet_simm: unknown key \(allowed: /\*\*, fleet_sim",
        {"f.yaml": FLEET + "fleet_simm:\n  ros__parameters:\n    seed: 3\n"}),
    Row("fleet unknown "
        "key", L(), r"/\*\*\.ros__parameters\.n_robot: unknown key", {"f.yaml": fleet_with("n_robots:", "n_robot:")}),
    Row("fleet n_robots 0", L("f.yaml", "--set", "n_robots=0"), r"n_robots = 0", {"f.yaml": FLEET}),
    Row("fleet k > n_robots", L("f.yaml", "--set", "n_robots=3", "--set", "k=5"), r"k = 5: must be between 1 and",
        {"f.yaml": FLEET}),
    Row("fleet k text", L("f.yaml", "--set", "k=ten"), r"'k' must be int", {"f.yaml": FLEET}),
    Row("fleet n_robots 1000000", L("f.yaml", "--set", "n_robots=1000000"),
        r"n_robots = 1000000 .* over the memory budget|n_robots = 1000000 .*at most", {"f.yaml": FLEET}),
    Row("fleet --set without =", L("f.yaml", "--set", "k5"), r"--set 'k5': write KEY=VALUE", {"f.yaml": FLEET}),
    Row("fleet without /** section", L(), r"needs a top-level '/\*\*:' section", {"f.yaml": "coordinator: {}\n"}),
    Row("fleet file missing", L("absent.yaml"), r"absent\.yaml.*cannot read"),
    Row("fleet control_period 0.0001", L("f.yaml", "--set", "control_period=0.0001"),
        r"control_period.*too small", {"f.yaml": FLEET}),
    # ------------------------------------------------------------------ sweep config
    Row("sweep config not UTF-8", ["sweep", "--config", "w.yaml", "--tiny", "--quiet"], r"w\.yaml.*not UTF-8",
        {"w.yaml": NONUTF8}),
    Row("sweep config alias bomb", ["sweep", "--config", "w.yaml", "--tiny", "--quiet"], r"w\.yaml.*aliases expand",
        {"w.yaml": alias_bomb()}),
    Row("sweep unknown grid", ["sweep", "--config", "w.yaml", "--grid", "nope", "--quiet"], r"nope",
        {"w.yaml": SWEEP}),
]

# ---------------------------------------------------------------------------------------------- issue 25
# One family per block, each with at least ten rows: YAML, npz, policy metadata, ROS names, the
# environment, outputs, wrong numbers (settings a real run refuses, accepted nowhere), work ceilings.


def herding_npz(path: Path, scenario: str = "warehouse_ring_hard", k: int = 5) -> None:
    """A valid scenario policy (the test suite's herding dispatcher) for launch and demo rows."""
    from _herding_policy import herding_policy
    from altmarl_sim.scenario import load_scenario

    save_policy(herding_policy(load_scenario(scenario), k), path)


def patched_zip(path: Path, *, flags: int = 0, method=None, **arrays) -> None:
    """np.savez of `arrays`, then every member's zip headers patched: general-purpose `flags` set
    (bit 0: encrypted) and the compression `method` replaced (99: unknown to zipfile)."""
    np.savez(path, **arrays)
    data = bytearray(path.read_bytes())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + flag_at] |= flags
            if method is not None:
                data[start + method_at:start + method_at + 2] = method.to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(data))


def corrupt_deflate(path: Path, **arrays) -> None:
    """np.savez_compressed of `arrays` with bytes in the middle of the first member's data flipped."""
    np.savez_compressed(path, **arrays)
    data = bytearray(path.read_bytes())
    name_length = int.from_bytes(data[26:28], "little")
    first = 30 + name_length + int.from_bytes(data[28:30], "little")
    for i in range(first + 20, first + 60):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def npy_member(path: Path, name: str, header: bytes, body: bytes = b"", **others) -> None:
    """An .npz whose member `name` has a hand-written .npy header dict (`header`) and `body`."""
    np.savez(path, **others)
    padded = header + b" " * (-(len(header) + 11) % 64) + b"\n"
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"{name}.npy", b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded + body)


def random_model(n_sg: int, n_sl: int) -> dict:
    """Arrays of a random model with n_sg global and n_sl local states, two actions each."""
    rng = np.random.default_rng(0)

    def rows(*shape):
        return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])

    return dict(P_g=rows(n_sg, 2, n_sg), P_l=rows(n_sl, n_sg, 2, n_sl), r_g=rng.uniform(0, 1, (n_sg, 2)),
                r_l=rng.uniform(0, 1, (n_sl, n_sg, 2)), gamma=0.9)


MODEL_ARRAYS = {"gamma": 0.9, **{key: value for key, value in arrays_of(TINY).items()}}
WITHOUT_RG = {key: value for key, value in MODEL_ARRAYS.items() if key != "r_g"}
META = policy_for().meta
SWEEP_ABS = SWEEP.replace("model: models/", f"model: {ROOT / 'config' / 'models'}/")
TINY_GRID = SWEEP_ABS  # the shipped grids with the model paths made absolute
PS = {"f.yaml": FLEET, "p.npz": herding_npz}  # a fleet whose policy (p.npz) fits its scenario


def D(*extra, fleet="f.yaml"):
    """launch --dry-run with the row's policy: checks everything a launch checks, starts nothing."""
    return ["launch", "--fleet", fleet, "--dry-run", "--set", "policy=p.npz", "--set", "n_robots=6", *extra]


def SW(*extra, config="w.yaml", grid="tiny"):
    return ["sweep", "--config", config, "--grid", grid, "--quiet", *extra]


def meta_with(**changes) -> dict:
    return {**META, **changes}


def nested(depth: int):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def results_dir(document) -> dict:
    return {"r/results.json": json.dumps(document) if not isinstance(document, str) else document}


# ------------------------------------------------------------------ YAML (one guard: safe_files.parse_yaml)
# Every YAML file a command reads goes through one guard, so every fault of the family is tried on every
# file: the fault's text is appended to a valid file, and the error names the file (and where it can, the
# line and column).
YAML_FILES = {"model yaml": ("m.yaml", T(), TINY_YAML), "scenario": ("s.yaml", S(), SCENARIO),
              "fleet": ("f.yaml", L(), FLEET), "sweep config": ("w.yaml", SW(), SWEEP)}
AT = r"line \d+, column \d+: "
NOT_A_VALUE = r"not valid YAML \(a value does not fit its tag"
YAML_FAULTS = {  # fault -> (text appended, what the error says after "<file>: "); {first}: the file's first key
    "duplicate key": ("{first}: 1\n", AT + "the key '{first}' is given again"),
    "integer key": ("1: x\n", AT + "the key 1 is not text"),
    "yes as key": ("yes: 1\n", AT + "the key True is not text"),
    "null key": ("~: 1\n", AT + "the key None is not text"),
    "list as key": ("? [1, 2]\n: x\n", AT + r"the key \[1, 2\] is not text"),
    "binary tag": ("extra: !!binary aGk=\n", AT + "the tag .*binary is not allowed"),
    "set tag": ("extra: !!set {a, b}\n", AT + "the tag .*set is not allowed"),
    "timestamp tag": ("extra: !!timestamp 2024-01-01\n", AT + "the tag .*timestamp is not allowed"),
    "omap tag": ("extra: !!omap [a: 1]\n", AT + "the tag .*omap is not allowed"),
    "custom tag": ("extra: !ros_param 0.95\n", AT + "the tag !ros_param is not allowed"),
    "5000-digit integer": ("extra: " + "9" * 5000 + "\n", AT + "an integer of 5000 digits"),
    "integer 2^64": ("extra: 18446744073709551616\n", AT + "the integer 18446744073709551616 does not fit"),
    "float tag on text": ("extra: !!float abc\n", NOT_A_VALUE),
    "bool tag on text": ("extra: !!bool maybe\n", NOT_A_VALUE),
    "control character": ("extra: a\x07\n", r"not valid YAML \(.*special characters"),
    "NUL byte": ("# \0\n", "holds a NUL byte at character \\d+"),
    "nested 70 deep": ("deep: " + "[" * 70 + "]" * 70 + "\n", AT + "nested more than 64 levels deep"),
    "nested 70 deep (block style)": ("".join(f"{'  ' * i}a{i}:\n" for i in range(70)) + "  " * 70 + "x: 1\n",
                                     AT + "nested more than 64 levels deep"),
    "nested 100k deep, unclosed": ("deep: " + "[" * 100_000 + "\n", AT + "nested more than 64 levels deep"),
}


def yaml_fault_rows():
    for kind, (name, argv, text) in YAML_FILES.items():
        first = re.search(r"^([A-Za-z_]\w*):", text, re.M).group(1)
        for fault, (appended, says) in YAML_FAULTS.items():
            yield Row(f"{kind} {fault}", argv, re.escape(name) + ": " + says.replace("{first}", first),
                      {name: text + appended.replace("{first}", first)})


ROWS += [*yaml_fault_rows(),
    Row("model gamma a date", T(), r"gamma is '2024-01-01'", {"m.yaml": TINY_YAML.replace("gamma: 0.9",
                                                                                          "gamma: 2024-01-01")}),
    Row("model gamma an impossible date", T(), r"gamma is '2024-13-45'",
        {"m.yaml": TINY_YAML.replace("gamma: 0.9", "gamma: 2024-13-45")}),
    Row("scenario reward a timestamp", S(), r"rewards\.service: must be a number, got '2024-01-01 12:00:00'",
        {"s.yaml": scenario_with("service: 10.0", "service: 2024-01-01 12:00:00")}),
    Row("fleet seed a date", L(), r"'seed' must be int, got '2024-02-30'", {"f.yaml": fleet_with("seed: 0",
                                                                                             "seed: 2024-02-30")}),
    Row("--set seed beyond 64 bits", L("f.yaml", "--set", "seed=99999999999999999999"),
        r"--set seed: line 1, column 1: the integer 99999999999999999999 does not fit", {"f.yaml": FLEET}),
    Row("--set duplicate key in a mapping", L("f.yaml", "--set", "robots={a: 1, a: 2}"),
        r"--set robots: line 1, column \d+: the key 'a' is given again", {"f.yaml": FLEET}),
    Row("--set binary tag", L("f.yaml", "--set", "policy=!!binary aGk="), r"--set policy: .*binary is not allowed",
        {"f.yaml": FLEET}),
    Row("--set NUL byte", L("f.yaml", "--set", "policy=a\0b"), r"--set policy: holds a NUL byte", {"f.yaml": FLEET}),
    Row("--set nested 100 deep", L("f.yaml", "--set", "robots=" + "[" * 100 + "]" * 100),
        r"--set robots: line 1, column \d+: nested more than 64", {"f.yaml": FLEET}),

    # ------------------------------------------------------------------ npz (one guard: safe_files.load_npz)
    Row("model npz encrypted member", T("m.npz"), r"m\.npz: not a readable \.npz model file \(RuntimeError: .*"
        r"encrypted", {"m.npz": lambda p: patched_zip(p, flags=1, **MODEL_ARRAYS)}),
    Row("model npz unknown compression", T("m.npz"), r"m\.npz: not a readable \.npz model file "
        r"\(NotImplementedError: .*compression", {"m.npz": lambda p: patched_zip(p, method=99, **MODEL_ARRAYS)}),
    Row("model npz corrupt deflate", T("m.npz"), r"m\.npz: not a readable \.npz model file \((error|BadZipFile)",
        {"m.npz": lambda p: corrupt_deflate(p, **{**MODEL_ARRAYS, "P_l": np.full((2, 2, 2, 2), 0.5)})}),
    Row("model npz shape beyond 2^64", T("m.npz"), r"m\.npz: the arrays this file declares .*needs more than 8 EiB",
        {"m.npz": lambda p: npy_member(p, "r_g", b"{'descr': '<f8', 'fortran_order': False, 'shape': "
                                                 b"(18446744073709551616, 4), }", **WITHOUT_RG)}),
    Row("model npz negative shape", T("m.npz"), r"m\.npz: r_g declares the shape \(-2, 2\); sizes are >= 0",
        {"m.npz": lambda p: npy_member(p, "r_g", b"{'descr': '<f8', 'fortran_order': False, 'shape': (-2, 2), }",
                                       **WITHOUT_RG)}),
    Row("model npz header not a dict", T("m.npz"), r"m\.npz: not a readable \.npz model file \(ValueError",
        {"m.npz": lambda p: npy_member(p, "r_g", b"[1, 2, 3]", **WITHOUT_RG)}),
    Row("model npz header syntax error", T("m.npz"), r"m\.npz: not a readable \.npz model file",
        {"m.npz": lambda p: npy_member(p, "r_g", b"{'descr': '<f8', 'shape': (2,", **WITHOUT_RG)}),
    Row("model npz data shorter than its header", T("m.npz"), r"m\.npz: not a readable \.npz model file",
        {"m.npz": lambda p: npy_member(p, "r_g", b"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
                                       b"\0" * 8, **WITHOUT_RG)}),
    Row("model npz void dtype", T("m.npz"), r"m\.npz: r_g holds dtype \|V8",
        {"m.npz": lambda p: npy_member(p, "r_g", b"{'descr': '|V8', 'fortran_order': False, 'shape': (2, 2), }",
                                       b"\0" * 32, **WITHOUT_RG)}),
    Row("model npz member not .npy", T("m.npz"), r"m\.npz: not a readable \.npz model file \(ValueError",
        {"m.npz": lambda p: (np.savez(p, **MODEL_ARRAYS),
                             zipfile.ZipFile(p, "a").__enter__().writestr("notes.txt", "hello"))}),
    Row("model npz 100 members", T("m.npz"), r"m\.npz: holds 107 members \(at most 64\)",
        {"m.npz": lambda p: np.savez(p, **MODEL_ARRAYS, **{f"x{i}": np.zeros(1) for i in range(100)})}),
    Row("model npz empty zip", T("m.npz"), r"m\.npz: missing key\(s\)",
        {"m.npz": lambda p: zipfile.ZipFile(p, "w").close()}),
    Row("policy npz encrypted member", E(), r"p\.npz: not a readable policy file \(RuntimeError",
        {**M, "p.npz": lambda p: patched_zip(p, flags=1, pi_g=policy_for().pi_g, pi_l=policy_for().pi_l,
                                             meta=np.str_(json.dumps(META)))}),
    Row("policy npz unknown compression", E(), r"p\.npz: not a readable policy file \(NotImplementedError",
        {**M, "p.npz": lambda p: patched_zip(p, method=99, pi_g=policy_for().pi_g, pi_l=policy_for().pi_l,
                                             meta=np.str_(json.dumps(META)))}),
    Row("policy npz corrupt deflate", E(), r"p\.npz: not a readable policy file",
        {**M, "p.npz": lambda p: corrupt_deflate(p, pi_l=np.full((2, 2, 2), 0.5), pi_g=policy_for().pi_g,
                                                 meta=np.str_(json.dumps(META)))}),
    Row("policy npz shape beyond 2^64", E(), r"p\.npz: the arrays this file declares .*more than 8 EiB",
        {**M, "p.npz": lambda p: npy_member(p, "pi_g", b"{'descr': '<i4', 'fortran_order': False, 'shape': "
                                                        b"(2, 99999999999999999999999), }", pi_l=policy_for().pi_l,
                                            meta=np.str_(json.dumps(META)))}),
    Row("policy npz meta a number", E(), r"p\.npz: meta holds float64 numbers",
        {**M, "p.npz": lambda p: write_policy(p, meta=np.float64(1.0))}),
    Row("scenario cache npz corrupt", S(), r"zones\.count: must be an integer >= 2",
        {"s.yaml": scenario_with("count: 5 ", "count: 1 "), "runs/warehouse_ring/counts.npz": b"PK\x03\x04junk"}),
    # ------------------------------------------------------------------ policy metadata JSON (safe_files.parse_json)
    Row("policy meta nested 100k deep", E(), r"p\.npz: meta: JSON nested more than 32 levels deep",
        {**M, "p.npz": lambda p: write_policy(p, meta=np.str_("[" * 100_000 + "]" * 100_000))}),
    Row("policy meta config nested 40 deep", E(), r"p\.npz: meta: JSON nested more than 32 levels deep",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(config={"x": nested(40)}))}),
    Row("policy meta sizes 3e6 (math.comb)", E(), r"p\.npz: policy meta k = 3000000, S = 3000000 give about "
        r"2\^6e\+06 count vectors, far beyond any table",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(
            sizes={"n_sg": 2, "n_ag": 2, "n_sl": 3_000_000, "n_al": 2},
            observer={**META["observer"], "resolution": 3_000_000}))}),
    Row("policy meta size 10^30", E(), r"policy meta sizes is .*1000000000000000000000000000000.*integers n_sg, n_ag, "
        r"n_sl, n_al in \[1, 2147483647\]",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(sizes={**META["sizes"], "n_sl": 10 ** 30}))}),
    Row("policy meta size negative", E(), r"policy meta sizes is .*-2.*in \[1, 2147483647\]",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(sizes={**META["sizes"], "n_sg": -2}))}),
    Row("policy meta size a float", E(), r"policy meta sizes is .*2\.5.*in \[1, 2147483647\]",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(sizes={**META["sizes"], "n_ag": 2.5}))}),
    Row("policy meta k 2^40", E(), r"policy meta k is 1099511627776; it must be an integer in \[1, 2147483647\]",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(k=2 ** 40))}),
    Row("policy meta k true", E(), r"policy meta k is True", {**M, "p.npz": lambda p: write_policy(
        p, meta=meta_with(k=True))}),
    Row("policy meta a list", E(), r"policy meta must be a dict", {**M, "p.npz": lambda p: write_policy(
        p, meta=np.str_("[1, 2]"))}),
    Row("policy meta 5000-digit integer", E(), r"p\.npz: meta: not valid JSON \(Exceeds the limit",
        {**M, "p.npz": lambda p: write_policy(p, meta=np.str_('{"k": ' + "7" * 5000 + "}"))}),
    Row("policy meta observer gain 10^400", E(), r"observer\.gain: must be a finite number, got an integer of 401",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(observer={**META["observer"], "gain": 10 ** 400}))}),
    Row("policy meta observer name a dict", E(), r"observer: is \{'x': 1\}; a tabular model's observers are fresh, "
        r"filter",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(observer={**META["observer"], "name": {"x": 1}}))}),
    Row("policy meta observer continuous-only", E(), r"observer: is 'pool', which runs on continuous models only; a "
        r"tabular model's observers are fresh, filter$",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(observer={**META["observer"], "name": "pool"}))}),
    Row("policy meta model_hash a number", E(), r"policy meta model_hash is 12; it must be text",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(model_hash=12))}),
    Row("policy meta scenario name a list", E(), r"policy meta scenario is .*use None or",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(scenario={"name": [1], "hash": "x"}))}),
    Row("policy meta 20k unknown keys", E(), r"unknown key\(s\) \[k0, k1, .*\.\.\.\]",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(**{f"k{i}": 0 for i in range(20_000)}))}),
    Row("policy meta empty", E(), r"p\.npz: meta: not valid JSON", {**M, "p.npz": lambda p: write_policy(
        p, meta=np.str_(""))}),
    # ------------------------------------------------------------------ ROS names (names.py validators)
    *(Row(name, D("--set", setting), pattern, PS) for name, setting, pattern in
      yaml.safe_load(Path(__file__).with_name("bad_ros_names.yaml").read_text())),
    Row("robot_names 300 characters", D("--set", f"robot_names=[{'a' * 300}, b, c, d, e, f]"),
        r"robot_names\[0\]: 'aaaa.*is not a robot name.*at most 200 characters", PS),
    Row("robot_names in the fleet file with depot", D(), r"robot_names\[0\]: 'depot' is the depot's",
        {**PS, "f.yaml": fleet_with("    seed: 0", "    seed: 0\n    robot_names: [depot, a, b, c, d, e]")}),
    # ------------------------------------------------------------------ environment (environment.py)
    Row("ROS_DOMAIN_ID not a number", D(), r"ROS_DOMAIN_ID='abc': must be an integer in 0\.\.232", PS,
        env={"ROS_DOMAIN_ID": "abc"}),
    Row("ROS_DOMAIN_ID 233", D(), r"ROS_DOMAIN_ID='233': must be an integer in 0\.\.232", PS,
        env={"ROS_DOMAIN_ID": "233"}),
    Row("ROS_DOMAIN_ID -1", D(), r"ROS_DOMAIN_ID='-1'", PS, env={"ROS_DOMAIN_ID": "-1"}),
    Row("ROS_DOMAIN_ID 1e3", ["demo", "--fleet", "f.yaml"], r"ROS_DOMAIN_ID='1e3'", PS, env={"ROS_DOMAIN_ID": "1e3"}),
    Row("ROS_LOG_DIR under /proc", D(), r"ROS_LOG_DIR=/proc/altmarl/log: .*not a writable directory", PS,
        env={"ROS_LOG_DIR": "/proc/altmarl/log"}),
    Row("ROS_LOG_DIR is a file", D(), r"ROS_LOG_DIR=.*f\.yaml: .*not a writable directory", PS,
        env={"ROS_LOG_DIR": "f.yaml"}),
    Row("ROS_HOME under /proc", D(), r"ROS_HOME=/proc/altmarl: ROS 2 writes its node logs to /proc/altmarl/log", PS,
        env={"ROS_HOME": "/proc/altmarl", "ROS_LOG_DIR": None}),
    Row("ROS_AUTOMATIC_DISCOVERY_RANGE unknown", D(), r"ROS_AUTOMATIC_DISCOVERY_RANGE='WIDE'", PS,
        env={"ROS_AUTOMATIC_DISCOVERY_RANGE": "WIDE"}),
    Row("NUMBA_NUM_THREADS 0", T(), r"NUMBA_NUM_THREADS='0': must be an integer in 1\.\.1024", M,
        env={"NUMBA_NUM_THREADS": "0"}),
    Row("NUMBA_NUM_THREADS abc", E(), r"NUMBA_NUM_THREADS='abc'", MP, env={"NUMBA_NUM_THREADS": "abc"}),
    Row("NUMBA_NUM_THREADS -1", S(), r"NUMBA_NUM_THREADS='-1'", {"s.yaml": SCENARIO}, env={"NUMBA_NUM_THREADS": "-1"}),
    Row("NUMBA_NUM_THREADS 100000", T(), r"NUMBA_NUM_THREADS='100000'", M, env={"NUMBA_NUM_THREADS": "100000"}),
    Row("NUMBA_CACHE_DIR under /proc", T(), r"NUMBA_CACHE_DIR=/proc/altmarl: not a writable directory", M,
        env={"NUMBA_CACHE_DIR": "/proc/altmarl"}),
    Row("ALTMARL_MAX_MEMORY nonsense", T(), r"ALTMARL_MAX_MEMORY 'lots': give a size", M,
        env={"ALTMARL_MAX_MEMORY": "lots"}),
    Row("ALTMARL_MAX_WORK nonsense", T(), r"ALTMARL_MAX_WORK 'forever': give a duration", M,
        env={"ALTMARL_MAX_WORK": "forever"}),
    Row("ALTMARL_MAX_WORK 0", T(), r"ALTMARL_MAX_WORK '0': must be above 0", M, env={"ALTMARL_MAX_WORK": "0"}),
    Row("working directory deleted", E(), r"the current directory cannot be read \(No such file or directory",
        MP, setup=lambda d: (os.mkdir(d / "gone"), os.chdir(d / "gone"), os.rmdir(d / "gone"))),
    Row("stdout is /dev/full", E(), r"stdout is /dev/full, which takes no output", MP, stdout="full"),
    Row("stdout a closed pipe", D(), r"stdout: the reader closed the pipe", PS, stdout="closed pipe"),
    # ------------------------------------------------------------------ outputs (atomic.check_output)
    Row("train --out a symlink to /dev/null", T(out="dev.npz"), r"--out dev\.npz is a special file",
        {**M, "dev.npz": lambda p: p.symlink_to("/dev/null")}),
    Row("train --out a FIFO", T(out="fifo.npz"), r"--out fifo\.npz is a special file",
        {**M, "fifo.npz": lambda p: os.mkfifo(p)}),
    Row("train --out name too long", T(out="p" * 250 + ".npz"), r"the file name is 254 bytes; .* at most \d+ bytes",
        M),
    Row("render --out /dev/null", ["render", "--scenario", "s.yaml", "--out", "/dev/null"],
        r"--out /dev/null is a special file", {"s.yaml": SCENARIO}),
    Row("render --out a directory", ["render", "--scenario", "s.yaml", "--out", "d.png"], r"--out d\.png is a "
        r"directory", {"s.yaml": SCENARIO, "d.png/x": "x"}),
    Row("render --out the scenario", ["render", "--scenario", "s.yaml", "--out", "s.yaml"],
        r"--out s\.yaml is also an input", {"s.yaml": SCENARIO}),
    Row("render --out not a picture", ["render", "--scenario", "s.yaml", "--out", "x.txt"],
        r"--out x\.txt: picture files end in \.png or \.gif", {"s.yaml": SCENARIO}),
    Row("sweep --doc is its --config", SW("--report", "--doc", "w.yaml", "--out", "r"), r"--doc w\.yaml is also an "
        r"input", {"w.yaml": TINY_GRID}),
    Row("sweep --doc is its own results.json", SW("--report", "--doc", "r/results.json", "--out", "r"),
        r"--doc r/results\.json is also an input", {"w.yaml": TINY_GRID}),
    Row("sweep --doc /dev/null", SW("--report", "--doc", "/dev/null", "--out", "r"), r"--doc /dev/null is a special",
        {"w.yaml": TINY_GRID}),
    Row("sweep --doc a directory", SW("--report", "--doc", "d", "--out", "r"), r"--doc d is a directory",
        {"w.yaml": TINY_GRID, "d/x": "x"}),
    Row("sweep --doc a model of the grid", SW("--report", "--doc", str(ROOT / "config/models/federated.yaml"),
                                              "--out", "r"), r"--doc .*federated\.yaml is also an input",
        {"w.yaml": TINY_GRID}),
    Row("sweep --figures is a file", SW("--report", "--doc", "doc.md", "--figures", "w.yaml", "--out", "r"),
        r"--figures w\.yaml is also an input", {"w.yaml": TINY_GRID}),
    Row("sweep --figures a file of its own", SW("--report", "--doc", "doc.md", "--figures", "f.txt", "--out", "r"),
        r"--figures f\.txt exists and is not a directory", {"w.yaml": TINY_GRID, "f.txt": "keep"}),
    Row("sweep --out is its config", SW("--out", "w.yaml"), r"--out w\.yaml is also an input", {"w.yaml": TINY_GRID}),
    Row("sweep --out a file", SW("--out", "o.txt"), r"--out o\.txt exists and is not a directory",
        {"w.yaml": TINY_GRID, "o.txt": "keep"}),
    Row("sweep --out under "
        "/proc", SW("--out", "/proc/altmarl"), r"--out /proc/altmarl: cannot write there \(No such file",
        {"w.yaml": TINY_GRID}),
    Row("sweep --report-only results {}", ["sweep", "--report-only", "--out", "r", "--doc", "doc.md"],
        r"r/results\.json: grid: is missing or not a dict", results_dir({})),
    Row("sweep --report-only results not JSON", ["sweep", "--report-only", "--out", "r", "--doc", "doc.md"],
        r"r/results\.json: not valid JSON", results_dir("{oops")),
    Row("sweep --report-only results nested 100k", ["sweep", "--report-only", "--out", "r", "--doc", "doc.md"],
        r"r/results\.json: JSON nested more than 32", results_dir("[" * 100_000 + "]" * 100_000)),
    Row("sweep --report-only rows without fields", ["sweep", "--report-only", "--out", "r", "--doc", "doc.md"],
        r"r/results\.json: rows\[0\]: needs the fields",
        results_dir({"grid": {"name": "tiny", "k": [1], "models": []}, "rows": [{}], "units": [],
                     "model_hashes": {}, "compute_seconds": 0})),
    Row("sweep --report-only without results", ["sweep", "--report-only", "--out", "none", "--doc", "doc.md"],
        r"no sweep results at none/results\.json"),
    Row("sweep --report-only doc not UTF-8", ["sweep", "--report-only", "--out", "r", "--doc", "doc.md"],
        r"doc\.md: the report document is not UTF-8",
        {**results_dir({"grid": {"name": "tiny", "k": [1], "models": []}, "rows": [], "units": [],
                        "model_hashes": {}, "compute_seconds": 0}), "doc.md": NONUTF8}),
    # ------------------------------------------------------------------ wrong numbers never exit 0
    Row("launch --dry-run seed -1", D("--set", "seed=-1"), r"/\*\*\.seed: = -1: must be >= 0", PS),
    Row("launch --dry-run control_period nan", D("--set", "control_period=.nan"),
        r"control_period: = nan: must be a finite number > 0", PS),
    Row("launch --dry-run decision_period inf", D("--set", "decision_period=.inf"),
        r"decision_period: = inf: must be a finite number > 0", PS),
    Row("launch --dry-run odom_timeout 0", D("--set", "odom_timeout=0"), r"odom_timeout: = 0\.0: must be", PS),
    Row("launch --dry-run command_timeout -3", D("--set", "command_timeout=-3"), r"command_timeout: = -3\.0", PS),
    Row("launch --dry-run cmd_vel_timeout 1e300", D("--set", "cmd_vel_timeout=1.0e+300"),
        r"cmd_vel_timeout: = 1e\+300: .*at most 1e\+09", PS),
    Row("launch --dry-run real_time_factor -1", D(), r"fleet_sim\.real_time_factor: = -1\.0: must be a finite number "
        r">= 0", {**PS, "f.yaml": fleet_with("real_time_factor: 1.0", "real_time_factor: -1.0")}),
    Row("launch --dry-run empty policy", ["launch", "--fleet", "f.yaml", "--dry-run", "--set", "policy="],
        r"policy: is empty", PS),
    Row("launch --dry-run empty scenario", D("--set", "scenario="), r"scenario: is empty", PS),
    Row("launch --dry-run policy missing", ["launch", "--fleet", "f.yaml", "--dry-run", "--set", "policy=none.npz"],
        r"none\.npz: no such policy file", PS),
    Row("launch --dry-run policy of another scenario", D("--set", "scenario=warehouse_ring"),
        r"p\.npz does not match: .*scenario hash", PS),
    Row("launch --dry-run k not the policy's", D("--set", "k=3"), r"k = 3 .* the policy was trained for k = 5", PS),
    Row("launch --dry-run pose_source unknown", D("--set", "pose_source=gps"), r"pose_source: = 'gps': choose one of",
        PS),
    Row("launch --dry-run goal_pose in the simulator", D("--set", "command_type=goal_pose"),
        r"command_type = 'goal_pose': the simulator takes twist, twist_stamped", PS),
    Row("launch --dry-run robots id negative", D("--set", "robots=[-1]"), r"robot id -1 is negative", PS),
    Row("evaluate a policy with model_hash null", E(), r"it records no model hash \(model_hash null\)",
        {**M, "p.npz": lambda p: write_policy(p, meta=meta_with(model_hash=None))}),
    Row("train --model with --sampler sim", T("m.yaml", "--sampler", "sim"),
        r"--sampler and --samples apply to --scenario training only", M),
    Row("train --model with --samples", T("m.yaml", "--samples", "10"),
        r"--sampler and --samples apply to --scenario training only", M),
    Row("train --scenario with --dirichlet-alpha", ["train", "--scenario", "warehouse_ring", "--k", "2", "--quiet",
                                                    "--out", "o.npz", "--dirichlet-alpha", "0.3"],
        r"--dirichlet-alpha applies to --model training; a scenario starts its robots", {}),
    Row("evaluate --scenario with --dirichlet-alpha", ["evaluate", "--scenario", "warehouse_ring", "--policy", "p.npz",
                                                       "--dirichlet-alpha", "0.3", "--quiet"],
        r"--dirichlet-alpha applies to --model evaluation; a scenario starts its robots", {}),
    Row("train --max-columns 1", T("m.yaml", "--max-columns", "1"), r"--max-columns 1: pi_g at k = 2 itself has 3 "
        r"count vectors .*raise it to at least 3", M),
    Row("train --observer pool on a tabular model", T("m.yaml", "--observer", "pool"),
        r"--observer: is 'pool', which runs on continuous models only; a tabular model's observers are fresh, "
        r"filter$", M),
    Row("train --max-columns with --observer fresh", T("m.yaml", "--observer", "fresh", "--max-columns", "9"),
        r"--max-columns caps the resolution of an observer chosen among candidates \(filter\); --observer fresh "
        r"trains pi_g at k", M),
    # ------------------------------------------------------------------ work ceilings (core/work.py)
    Row("train --m 1e8", T(WAREHOUSE, "--m", "100000000", "--max-memory", "1T", k="10"),
        r"training at k = 10, m = 100000000.*G-LEARN gathers.*over the work ceiling of 6 h \(default\)"),
    Row("train --select-n 1e8", T(WAREHOUSE, "--select-n", "100000000", k="10"),
        r"training at k = 10, .*--select-n 100000000.*agent-steps.*over the work ceiling"),
    Row("train --select-rollouts 1e7", T(WAREHOUSE, "--select-rollouts", "10000000", k="10"),
        r"--select-rollouts 10000000.*over the work ceiling"),
    Row("train --k 200 filter on the warehouse model", T(WAREHOUSE, "--max-columns", "1000000000", "--max-memory",
                                                         "1T", k="200"), r"training at k = 200.*over the work ceiling"),
    Row("train --scenario --samples 1e9", S("s.yaml", "--samples", "1000000000", "--max-memory", "1000T"),
        r"robot control steps.*over the work ceiling", {"s.yaml": SCENARIO}),
    Row("train a model with S_g = 1500 (L-LEARN's pair chain)", T("big.npz", "--max-work", "1h"),
        r"training at k = 2.*dense flops, about 1\.\d+ h on this kind of machine, over the work ceiling of 1 h",
        {"big.npz": lambda p: npz_bytes(p, **random_model(1500, 2))}),
    Row("train a model with S_l = 400", T("big.npz", "--max-work", "10"),
        r"training at k = 2.*dense flops, about [\d.]+ s .*over the work ceiling of 10 s",
        {"big.npz": lambda p: npz_bytes(p, **random_model(2, 400))}),
    Row("train --max-work 0.1 "
        "s", T("m.yaml", "--max-work", "0.1"), r"over the work ceiling of 0\.1 s \(--max-work\)", M),
    Row("evaluate 1e17 agent-steps", E("--n", "1000000", "--horizon", "1000000", "--seeds", "100", "--rollouts",
                                       "1000"), r"evaluating n = 1000000 .*agent-steps.*over the work ceiling", MP),
    Row("evaluate baselines over the ceiling", ["evaluate", "--model", "m.yaml", "--policy", "p.npz", "--n", "100000",
                                                "--horizon", "100000", "--seeds", "10", "--rollouts", "100"],
        r"evaluating .*\(\d+ policies with the baselines\).*over the work ceiling", MP),
    Row("render --epochs 2e9", ["render", "--scenario", "s.yaml", "--epochs", "2000000000", "--out", "x.gif"],
        r"rendering n = 200 robots over 2000000000 epochs.*over the work ceiling", {"s.yaml": SCENARIO}),
    Row("render --n 2e8 gif", ["render", "--scenario", "s.yaml", "--n", "200000000", "--out", "x.gif",
                               "--max-memory", "1T"], r"rendering n = 200000000 robots.*over the work ceiling",
        {"s.yaml": SCENARIO}),
    Row("launch n_robots=500 within --duration 1", L("f.yaml", "--set", "n_robots=500"),
        r"n_robots = 500: its nodes take about 8\.3\d* s to build, longer than --duration 1 s", {"f.yaml": FLEET}),
    Row("launch n_robots=5000", L("f.yaml", "--set", "n_robots=5000", "--max-memory", "1T"),
        r"n_robots = 5000: its nodes take about 1\.39 min to build", {"f.yaml": FLEET}),
    Row("launch n_robots=2000000", ["launch", "--fleet", "f.yaml", "--set", "n_robots=2000000", "--max-memory", "4T"],
        r"starting a ROS fleet of n_robots = 2000000: 2e\+06 robots started.*over the work ceiling", {"f.yaml": FLEET}),
    Row("demo --rollouts 2e9", ["demo", "--fleet", "f.yaml", "--rollouts", "2000000000"],
        r"offline evaluation of 2000000000 rollouts.*over the work ceiling", {"f.yaml": FLEET}),
    Row("demo --duration 1e9", ["demo", "--fleet", "f.yaml", "--duration", "1000000000"],
        r"offline evaluation of 100 rollouts of n = 200 robots over 1000000000 epochs", {"f.yaml": FLEET}),
    Row("sweep grid at k = 400", SW("--out", "r", grid="big"), r"the sweep of grid big.*over the work ceiling",
        {"w.yaml": TINY_GRID.replace("grids:\n", "grids:\n  big: {k: [400], n: 1000, m: 30, rounds: 1, horizon: 10, "
                                                 "seeds: 1, rollouts: 2, full_observation_k: null, cost_k: [], "
                                                 "seed: 0, observers: [fresh], models: [warehouse]}\n", 1)}),
]


def _snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and os.access(p, os.R_OK)}


def _materialise(directory: Path, files: dict) -> None:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


@pytest.fixture
def row_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for variable in (budget.ENV_VAR, work.ENV_VAR):
        monkeypatch.delenv(variable, raising=False)
    yield tmp_path
    os.chdir(ROOT)  # a row may have deleted its working directory
    budget.set_limit(None)
    work.set_limit(None)
    for variable in (budget.ENV_VAR, work.ENV_VAR):
        os.environ.pop(variable, None)  # set by `--max-memory` / `--max-work` rows for the node processes


FAMILY_MARKERS = {  # each family of issue 25 has at least ten rows whose names start like this
    "YAML": ("model yaml", "scenario", "fleet", "sweep config", "--set", "model gamma"),
    "npz": ("model npz", "policy npz", "scenario cache npz"),
    "policy metadata": ("policy meta",),
    "ROS names": ("robot_names", "robot_template", "pose_topic", "map_frame"),
    "environment": ("ROS_", "NUMBA_", "ALTMARL_", "working directory", "stdout"),
    "outputs": ("train --out", "render --out", "sweep --doc", "sweep --figures", "sweep --out", "sweep --report-only"),
    "wrong numbers": ("launch --dry-run", "evaluate a policy with model_hash", "train --max-columns"),
    "work": ("train --m 1e8", "train --select", "train a model with", "train --k 200", "train --scenario "
                                                                                       "--samples", "train --max-work",
             "evaluate 1e17", "evaluate baselines over", "render --epochs", "render --n 2e8", "launch n_robots",
             "demo --rollouts", "demo --duration 1e9", "sweep grid"),
}


def test_table_has_enough_rows():
    assert len(ROWS) >= 250
    assert len({row.name for row in ROWS}) == len(ROWS)
    for family, prefixes in FAMILY_MARKERS.items():
        assert sum(row.name.startswith(prefixes) for row in ROWS) >= 10, family


@contextlib.contextmanager
def _row_stdout(kind: str):
    """sys.stdout replaced as the row asks (the real file descriptor, as a shell redirect gives)."""
    if not kind:
        yield
        return
    saved = sys.stdout
    if kind == "full":
        stream = open("/dev/full", "w")
    else:
        read_end, write_end = os.pipe()
        os.close(read_end)
        stream = os.fdopen(write_end, "w")
    sys.stdout = stream
    try:
        yield
    finally:
        sys.stdout = saved
        with contextlib.suppress(OSError):
            stream.close()


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input(row, row_dir, capsys, monkeypatch):
    _materialise(row_dir, row.files)
    for variable, value in row.env.items():
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
    if row.setup is not None:
        row.setup(row_dir)
    before = _snapshot(row_dir)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # The row fails after ROW_TIMEOUT_SEC (SIGALRM interrupts Python code); a hang inside compiled
    # code, where no signal handler runs, ends the whole run at twice that.
    signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(ROW_TIMEOUT_SEC)
    faulthandler.dump_traceback_later(2 * ROW_TIMEOUT_SEC, exit=True, file=sys.__stderr__)
    try:
        with budget.limited(1 << 30) if "--max-memory" not in row.argv else _no_context(), _row_stdout(row.stdout):
            try:
                status = main(row.argv)
            except SystemExit as stop:  # argparse usage errors
                status = stop.code
    except RowTimeout as timeout:  # raised wherever the signal landed, maybe at a frame without a line number,
        pytest.fail(str(timeout), pytrace=False)  # whose traceback pytest 9.1 cannot format (an INTERNALERROR)
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert status == 2, err
    command = row.argv[0]
    assert lines and lines[-1].startswith(f"altmarl {command}: error: "), err
    assert re.search(row.pattern, lines[-1]), f"{lines[-1]!r} does not match {row.pattern!r}"
    assert _snapshot(row_dir) == before, "a file was written, changed or removed"
    assert peak_growth < PEAK_GROWTH_LIMIT, f"peak memory grew by {peak_growth / 2**20:.0f} MiB"


class RowTimeout(BaseException):
    """A row ran longer than ROW_TIMEOUT_SEC: a hang (a BaseException, so no `except Exception` swallows it)."""


def _timed_out(signum, frame):
    raise RowTimeout(f"the command ran longer than {ROW_TIMEOUT_SEC} s")


class _no_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
