"""Ours, not the authors': runs their Setup B protocol at one k, in their own venv, for bench/bench_authors.py.

Their `run_experiment.py` hard-codes its k list and writes figures into their checkout, so this driver imports
their modules unchanged and calls their `run_single_k(k, n_eval_seeds, n_train_seeds, local_algo='trpo')`: 3
training runs (their `AlternatingMARLFA.train()` defaults: 10 outer iterations, horizon 40), the best kept by
their `evaluate(20 rollouts, seed 0)`, then `evaluate(30 rollouts, horizon 50, seed s)` for each evaluation seed
and their single-step mode accuracy (1000 starts, seed 99). Two additions, neither changing their algorithm:
each `train()` call is timed (they report only the sum), and torch and numpy's global generator (their local
agents sample actions with np.random) are seeded once (`--seed`; they leave both unseeded), so a run repeats.
One line `AUTHORS-RESULT {json}` on stdout is the result.

    build/authors-venv/bin/python bench/authors_driver.py --authors CHECKOUT --k 1 [--train-seeds 3] [--eval-seeds 10]

Imports nothing of altmarl_ros: their venv does not have it.
"""
import argparse
import json
import os
import sys
import time

RESULT_PREFIX = "AUTHORS-RESULT "


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", required=True, help="a checkout of github.com/emiletimothy/alternating-marl")
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--train-seeds", type=int, default=3)
    parser.add_argument("--eval-seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seeds torch and np.random once, before the first run")
    args = parser.parse_args()

    os.environ.setdefault("MPLBACKEND", "Agg")  # run_experiment imports pyplot; nothing is drawn
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    sys.path.insert(0, os.path.join(os.path.abspath(args.authors), "scripts", "function_approximation"))
    import run_experiment
    import training

    seconds = []
    train = training.AlternatingMARLFA.train

    def timed_train(self, *positional, **named):
        started = time.perf_counter()
        history = train(self, *positional, **named)
        seconds.append(time.perf_counter() - started)
        return history

    training.AlternatingMARLFA.train = timed_train
    started = time.perf_counter()
    result = run_experiment.run_single_k(args.k, n_eval_seeds=args.eval_seeds, n_train_seeds=args.train_seeds,
                                         local_algo="trpo")
    print(RESULT_PREFIX + json.dumps({
        "k": int(result["k"]), "train_seconds": seconds, "seed_means": [float(v) for v in result["values"]],
        "mode_accuracy": float(result["mode_acc"]), "seconds": time.perf_counter() - started,
        "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
