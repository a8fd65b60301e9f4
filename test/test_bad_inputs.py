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

from altmarl_ros.cli import main
from altmarl_ros.core import budget
from altmarl_ros.core.model import make_game, model_yaml_text
from altmarl_ros.core.policy import build_policy, save_policy

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = (ROOT / "config" / "scenarios" / "warehouse_ring.yaml").read_text()
FLEET = (ROOT / "config" / "fleet.yaml").read_text()
SWEEP = (ROOT / "config" / "sweep.yaml").read_text()
WAREHOUSE = str(ROOT / "config" / "models" / "warehouse.yaml")
ROW_TIMEOUT_SEC = 30  # a hang, not a slow row: the 100k-deep YAML row took over 10 s on a loaded machine
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
    Row("demo --duration inf", ["demo", "--duration", "inf"], r"argument --duration: inf is out of range"),
    Row("demo --duration -5", ["demo", "--duration", "-5"], r"argument --duration: -5 is out of range"),
    Row("demo --rollouts 1", ["demo", "--rollouts", "1", "--fleet", "f.yaml"], r"--rollouts 1: need at least 2",
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
    Row("demo --retrain with a named existing --policy", ["demo", "--retrain", "--policy", "p.npz", "--fleet", "f.yaml"],
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
        {"s.yaml": scenario_with("count: 5 ", "count: 100000 ").replace("start_jitter: 0.1", "start_jitter: 0.000001")}),
    Row("scenario unknown key", S(), r"zones\.colour: unknown key",
        {"s.yaml": scenario_with("zones:\n", "zones:\n  colour: red\n")}),
    Row("scenario zones.count 1", S(), r"zones\.count: must be an integer >= 2",
        {"s.yaml": scenario_with("count: 5 ", "count: 1 ")}),
    Row("scenario gamma 1.5", S(), r"gamma: must be in \[0, 1\)", {"s.yaml": scenario_with("gamma: 0.95", "gamma: 1.5")}),
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
    Row("fleet unknown key", L(), r"/\*\*\.ros__parameters\.n_robot: unknown key", {"f.yaml": fleet_with("n_robots:", "n_robot:")}),
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
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    yield tmp_path
    budget.set_limit(None)
    os.environ.pop(budget.ENV_VAR, None)  # set by `--max-memory` rows for the node processes


def test_table_has_enough_rows():
    assert len(ROWS) >= 60
    assert len({row.name for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input(row, row_dir, capsys):
    _materialise(row_dir, row.files)
    before = _snapshot(row_dir)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # The row fails after ROW_TIMEOUT_SEC (SIGALRM interrupts Python code); a hang inside compiled
    # code, where no signal handler runs, ends the whole run at twice that.
    signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(ROW_TIMEOUT_SEC)
    faulthandler.dump_traceback_later(2 * ROW_TIMEOUT_SEC, exit=True, file=sys.__stderr__)
    try:
        with budget.limited(1 << 30) if "--max-memory" not in row.argv else _no_context():
            try:
                status = main(row.argv)
            except SystemExit as stop:  # argparse usage errors
                status = stop.code
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
