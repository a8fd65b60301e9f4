"""The authors' Setup B code beside ours, in one run (issue 26): training seconds per run and welfare for both.

Their code (github.com/emiletimothy/alternating-marl, scripts/function_approximation) runs in its own venv,
build/authors-venv, made with the system python3 and bench/authors-requirements.txt (torch 2.13.0 CPU), never
the project's; a stamp (the requirements and the Python version) makes the second run reuse it. Their code is
never copied here: --authors names a checkout, and bench/authors_driver.py (ours) calls their run_single_k.

Per k, with the same protocol on both sides (their README: 3 training seeds, the best kept; 10 evaluation seeds
x 30 rollouts of n = 500, horizon 50; mode accuracy on 1000 starts):
  authors' code    their supervised dispatcher + TRPO locals (run_experiment.run_single_k, --algo trpo)
  ours, supervised their G-step with their local budget: `altmarl train --model setup_b --global-step supervised
                   --l-iters 1 --tracked 1 --eta 0` (docs/results.md, Setup B)
  ours, TRPO       `altmarl train --model setup_b` (TRPO on both sides)
Welfare is the mean of the per-seed means, its 95% CI Student t over those means (the same statistic for both:
their evaluate returns only per-seed means), and their "±" (np.std of the per-seed means). Everything runs on
one thread (torch, XLA, numba), one system at a time.

    nice -n 10 .venv/bin/python bench/bench_authors.py --authors ../alternating-marl [--k 1 75] \\
        [--train-seeds 3] [--eval-seeds 10] [--systems authors supervised trpo]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # single-threaded runs, set before numpy loads; not when a test imports the helpers
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from authors_driver import RESULT_PREFIX  # noqa: E402  (bench/, beside this script; imports no torch)

from altmarl_ros.core.evaluate import mean_ci95  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AUTHORS_URL = "https://github.com/emiletimothy/alternating-marl"
DRIVER = ROOT / "bench" / "authors_driver.py"
REQUIREMENTS = ROOT / "bench" / "authors-requirements.txt"
THEIR_SETUP_B = "scripts/function_approximation/training.py"
SYSTEMS = {"authors": ("authors' code", "supervised G-step, TRPO locals"),
           "supervised": ("ours", "supervised G-step, authors' local budget"),
           "trpo": ("ours", "TRPO G-step on (s_g, histogram)")}
PUBLISHED = "authors' README: k = 1 127.8 ± 4.2, k = 75 152.0 ± 5.7, mode accuracy 54% / 81%, ~21 s per run"


def checkout_problem(path) -> str | None:
    """One line saying what is wrong with --authors and how to get a checkout, or None if it is one."""
    if path is None:
        return f"--authors is required: a checkout of the authors' code (git clone {AUTHORS_URL})"
    if not (Path(path) / THEIR_SETUP_B).is_file():
        return (f"--authors {path}: no {THEIR_SETUP_B} there; point it at a checkout of the authors' code "
                f"(git clone {AUTHORS_URL})")
    return None


def venv_stamp(requirements: str, python_version: str) -> str:
    """What the venv was built from: a changed pin or another Python rebuilds it."""
    return hashlib.sha256(f"{python_version}\n{requirements}".encode()).hexdigest()


def venv_is_current(venv: Path, stamp: str) -> bool:
    stamp_file = venv / "altmarl-bench.stamp"
    return (venv / "bin" / "python").exists() and stamp_file.exists() and stamp_file.read_text() == stamp


def ensure_venv(venv: Path, python: str) -> tuple[Path, str]:
    """The authors' venv, built (python -m venv, pip install -r authors-requirements.txt) unless its stamp matches;
    returns its python and what was done. Raises RuntimeError with one line if it cannot be built."""
    version = subprocess.run([python, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    stamp = venv_stamp(REQUIREMENTS.read_text(), version)
    if venv_is_current(venv, stamp):
        return venv / "bin" / "python", f"reused ({version})"
    started = time.perf_counter()
    for command in ([python, "-m", "venv", "--clear", str(venv)],
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed: {last_line(done.stderr)}")
    (venv / "altmarl-bench.stamp").write_text(stamp)
    return venv / "bin" / "python", f"built in {time.perf_counter() - started:.0f} s ({version})"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def parse_driver_output(stdout: str, k: int, train_seeds: int, eval_seeds: int) -> dict:
    """The driver's result line, every field checked (ValueError naming the field)."""
    lines = [line[len(RESULT_PREFIX):] for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if len(lines) != 1:
        raise ValueError(f"expected one {RESULT_PREFIX.strip()} line from the driver, got {len(lines)}")
    found = json.loads(lines[0])
    for name, length in (("train_seconds", train_seeds), ("seed_means", eval_seeds)):
        values = found.get(name)
        if not isinstance(values, list) or len(values) != length or not np.all(np.isfinite(values)):
            raise ValueError(f"driver field {name}: expected {length} finite numbers, got {values!r}")
    for name in ("mode_accuracy", "seconds"):
        if not isinstance(found.get(name), (int, float)) or not np.isfinite(found[name]):
            raise ValueError(f"driver field {name}: expected a finite number, got {found.get(name)!r}")
    if found.get("k") != k:
        raise ValueError(f"driver field k: expected {k}, got {found.get('k')!r}")
    return found


def run_authors(python: Path, authors: Path, k: int, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([str(python), str(DRIVER), "--authors", str(authors), "--k", str(k),
                           "--train-seeds", str(args.train_seeds), "--eval-seeds", str(args.eval_seeds)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the authors' code failed at k = {k}: {last_line(done.stderr)}")
    return parse_driver_output(done.stdout, k, args.train_seeds, args.eval_seeds)


def run_ours(game, k: int, system: str, args) -> dict:
    """What `altmarl train` then `altmarl evaluate` (--model setup_b) do, through the same library calls."""
    from altmarl_ros.core.fa_alternating import FAConfig, check_config, mode_accuracy, protocol_returns, train_best_of
    from altmarl_ros.core.fa_policy import build_fa_policy

    if system == "supervised":
        config = FAConfig(global_rule="supervised", global_inputs="summary", l_iters=1, tracked=1, eta=0.0)
    else:
        config = FAConfig()
    config = check_config(game, k, config)
    started = time.perf_counter()
    (_, kept), runs = train_best_of(game, k, config, list(range(args.train_seeds)))
    returns = protocol_returns(game, k, kept.global_params, kept.local_params, n=game.default_n,
                               horizon=game.horizon_eval, seeds=args.eval_seeds, rollouts_=30,
                               global_inputs=config.global_inputs)
    policy = build_fa_policy(game, k, kept.global_params, kept.local_params, global_inputs=config.global_inputs,
                             hidden=config.hidden)
    return {"k": k, "train_seconds": [run.seconds for _, run in runs], "seed_means": returns.mean(axis=1).tolist(),
            "mode_accuracy": mode_accuracy(game, k, policy), "seconds": time.perf_counter() - started}


def table(rows: list[dict]) -> list[str]:
    """The side-by-side table (markdown): one row per (system, k) result."""
    lines = ["| system | configuration | k | training s per run: mean (range) | welfare ± 95% CI | ± std "
             "(authors') | mode accuracy | protocol s |", "|---|---|---:|---|---|---|---:|---:|"]
    for row in rows:
        system, configuration = SYSTEMS[row["system"]]
        seconds = np.asarray(row["train_seconds"])
        mean, ci = mean_ci95(row["seed_means"])
        lines.append(f"| {system} | {configuration} | {row['k']} | {seconds.mean():.1f} ({seconds.min():.1f}–"
                     f"{seconds.max():.1f}) | {mean:.1f} ± {ci:.1f} | ± {np.std(row['seed_means']):.1f} | "
                     f"{100 * row['mode_accuracy']:.1f}% | {row['seconds']:.0f} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, help=f"a checkout of their code (git clone {AUTHORS_URL})")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 75])
    parser.add_argument("--train-seeds", type=int, default=3, help="training runs per k, the best kept (theirs: 3)")
    parser.add_argument("--eval-seeds", type=int, default=10, help="evaluation seeds of 30 rollouts (theirs: 10)")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "authors-venv")
    parser.add_argument("--python", default="python3", help="the interpreter that makes their venv")
    args = parser.parse_args()
    from altmarl_ros.core.continuous import continuous_model

    game = continuous_model("setup_b")
    if args.train_seeds < 1 or args.eval_seeds < 2:
        parser.error("--train-seeds must be >= 1 and --eval-seeds >= 2 (a CI needs two seed means)")
    if not all(1 <= k <= game.default_n for k in args.k):
        parser.error(f"--k {args.k}: each k must be in 1..{game.default_n} (the k-subset is drawn from n locals)")
    problem = checkout_problem(args.authors) if "authors" in args.systems else None
    if problem is not None:
        sys.exit(problem)

    print(f"{time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"k {args.k}, {args.train_seeds} training seeds, {args.eval_seeds} evaluation seeds x 30 rollouts",
          flush=True)
    systems = list(args.systems)
    if "authors" in systems:
        try:
            python, done = ensure_venv(args.venv, args.python)
            print(f"authors' venv {args.venv}: {done}", flush=True)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as error:
            print(f"cannot run the authors' code: {error}", flush=True)
            systems.remove("authors")
    rows = []
    for k in args.k:
        for system in list(systems):
            if system != "authors":
                found = run_ours(game, k, system, args)
            else:
                try:
                    found = run_authors(python, args.authors, k, args)
                except (RuntimeError, ValueError) as error:
                    print(f"cannot run the authors' code: {error}", flush=True)
                    systems.remove(system)
                    continue
            rows.append({"system": system, **found})
            print(table(rows[-1:])[-1], f"load {os.getloadavg()[0]:.2f}", flush=True)
    print()
    print("\n".join(table(rows)))
    print(f"({PUBLISHED}; welfare CI: Student t over the {args.eval_seeds} per-seed means; protocol s: the k's "
          f"training, selection and evaluation, wall clock; load at the end {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
