"""Observers on Setup B under the authors' protocol (docs/continuous.md, Observers; docs/results.md): for each
k and observer (fresh, pool, filter with their defaults, core/fa_observer.py), train 3 runs (seeds 0, 1, 2) of
ALTERNATING-MARL with that observer in every rollout and keep the best by selection welfare, then evaluate
every run on 10 seeds x 30 rollouts (n = 500, horizon 50). Prints per configuration the kept run's welfare
(95% CI over the 300 rollouts, std of the 10 seed means), the mean of the three runs, the observer's
estimation error (total variation to the fleet's histogram, mean over steps), mode accuracy and training
seconds; then the k = 5 / k = 75 ratios with 95% CIs. Both ratios' runs are evaluated on the same starts and
streams, so the CI is the delta method on the paired rollouts: it covers the evaluation, not which training run
was kept. Which run is kept varies more, so the ratio is also given run by run: the two configurations' runs
of the same training seed (the same initial networks and training starts; --more adds folders of further
seeds), with a Student t CI over seeds.

Each configuration is experiments/continuous_sweep.protocol_point, as `altmarl sweep` runs a point of a
continuous grid. Resumable: each configuration's result goes to OUT/<observer>_k<k>.json (and its kept policy
.npz) as it ends. --report-only reads the saved results and trains nothing (a missing one is an error), so the
tables of docs/results.md are printed again from the files: one markdown row per configuration, the ratios'
rows and the training runs' wall time.

    ALTMARL_JAX_CACHE=build/jax-cache nice -n 10 .venv/bin/python bench/bench_fa_observers.py \\
        [--k 1 5 75] [--observers fresh pool filter] [--out runs/setup_b/observers] [--global-step supervised] \\
        [--report-only] [--figure PNG]
"""
import argparse
import json
import os
import time
from pathlib import Path

from altmarl_ros.core.observers import CONTINUOUS, PAPER_OBSERVER, observers_on

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

ORDER = ((5, "filter"), (75, "fresh"), (75, "filter"), (5, "fresh"), (5, "pool"), (75, "pool"),
         (1, "fresh"), (1, "pool"), (1, "filter"))  # training order


def paired_ratio(a, b):
    """mean(a) / mean(b) and its 95% half-width by the delta method on paired values."""
    import numpy as np

    from altmarl_ros.core.evaluate import mean_ci95

    a, b = np.ravel(a), np.ravel(b)
    ratio = a.mean() / b.mean()
    return ratio, mean_ci95((a - ratio * b) / b.mean())[1]


def seed_paired_ratio(a: dict, b: dict):
    """Training seed -> welfare of a run, for two configurations: the mean over their common seeds of the
    per-seed ratio, its 95% half-width (Student t over seeds) and the seeds. A seed fixes the networks'
    initialisation and the training starts, which decide most of a run's welfare whatever k and observer."""
    from altmarl_ros.core.evaluate import mean_ci95

    seeds = sorted(set(a) & set(b))
    return (*mean_ci95([a[seed] / b[seed] for seed in seeds]), seeds)


def run_configuration(game, k, name, args):
    from altmarl_ros.core.fa_alternating import FAConfig, check_config
    from altmarl_ros.core.fa_observer import default_observer
    from altmarl_ros.experiments.continuous_sweep import protocol_point

    inputs = "summary" if args.global_step == "supervised" else "state+summary"  # as altmarl train does
    config = check_config(game, k, FAConfig(observer=default_observer(name, k, game.horizon_eval),
                                            global_rule=args.global_step, global_inputs=inputs))
    return protocol_point(game, k, config, train_seeds=range(args.seed, args.seed + args.train_seeds),
                          eval_seeds=args.eval_seeds,
                          rollouts=args.rollouts, policy_path=args.out / f"{name}_k{k}.npz")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 75])
    parser.add_argument("--observers", nargs="+", default=list(observers_on(CONTINUOUS)))
    parser.add_argument("--train-seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--global-step", choices=("trpo", "supervised"), default="trpo",
                        help="supervised: the authors' dispatcher (histogram only, trained on single starts) "
                             "deployed on the observer's estimate")
    parser.add_argument("--eval-seeds", type=int, default=10)
    parser.add_argument("--rollouts", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("runs/setup_b/observers"))
    parser.add_argument("--figure", type=Path, help="also draw welfare and mode accuracy against k per observer "
                                                    "(the continuous sweep's figure) to this PNG")
    parser.add_argument("--more", type=Path, nargs="*", default=[],
                        help="result folders of further training seeds (--seed 3 --out ...): their runs join "
                             "the runs' mean and its ratio")
    parser.add_argument("--report-only", action="store_true",
                        help="print the tables from the saved results in --out (and --more) and train nothing")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from altmarl_ros.core.continuous import BimodalLine

    game = BimodalLine()
    results = {}
    for k, name in ORDER:
        if k not in args.k or name not in args.observers:
            continue
        path = args.out / f"{name}_k{k}.json"
        if not path.exists() and args.report_only:
            parser.error(f"--report-only: no saved result {path}; drop --report-only to compute it")
        if not path.exists():
            started = time.perf_counter()
            found = run_configuration(game, k, name, args)
            found["wall_seconds"] = time.perf_counter() - started
            path.write_text(json.dumps(found))
        results[k, name] = json.loads(path.read_text())
    print("| k | observer | welfare ± std of seed means (kept run) | 95% CI | runs, by training seed | TV error "
          "| mode accuracy | Nash gap | s per run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in sorted(results, key=lambda key: (key[0], observers_on(CONTINUOUS).index(key[1]))):
        report_row(results[key])
    print(f"training wall time: {sum(found['wall_seconds'] for found in results.values()) / 60:.0f} min for "
          f"{sum(len(found['runs']) for found in results.values())} runs")
    runs = {key: {run["seed"]: run["welfare"] for folder in [args.out, *args.more]
                  if (folder / f"{key[1]}_k{key[0]}.json").exists()
                  for run in json.loads((folder / f"{key[1]}_k{key[0]}.json").read_text())["runs"]}
            for key in results}
    report_ratios(results, runs)
    if args.figure:
        from altmarl_ros.experiments.continuous_sweep import results_document, write_figure

        grid = {"name": args.out.name, "model": game.name, "train_seeds": args.train_seeds,
                "eval_seeds": args.eval_seeds, "rollouts": args.rollouts}
        print(f"wrote {write_figure(results_document(grid, game.content_hash(), results.values()), args.figure)}")


def report_row(found):
    """One markdown row: the kept run's figures, every run's welfare (the kept one in bold) and seconds."""
    from altmarl_ros.experiments.continuous_sweep import kept_run

    kept = kept_run(found)
    runs = " / ".join(f"**{run['welfare']:.1f}**" if run is kept else f"{run['welfare']:.1f}" for run in found["runs"])
    print(f"| {found['k']} | {found['observer']['name']} | {kept['welfare']:.1f} ± {kept['seed_means_std']:.1f} "
          f"| ± {kept['welfare_ci']:.1f} | {runs} | {kept['estimation_error']:.3f} "
          f"| {100 * kept['mode_accuracy']:.1f}% "
          f"| {kept['nash_gap']:.2f} | {' / '.join(format(run['seconds'], '.0f') for run in found['runs'])} |",
          flush=True)


def report_ratios(results, runs):
    """Markdown rows: each k = 1 and k = 5 configuration against k = 75 with its own observer and with fresh, then
    each observer against fresh at the same k (what the observer itself adds)."""
    from altmarl_ros.experiments.continuous_sweep import kept_run

    names = observers_on(CONTINUOUS)
    pairs = [((small, name), (75, reference)) for small in (5, 1) for name in names
             for reference in dict.fromkeys((name, PAPER_OBSERVER))]
    pairs += [((k, name), (k, PAPER_OBSERVER)) for k in (1, 5, 75) for name in names if name != PAPER_OBSERVER]
    print("| ratio | kept runs (95% CI, paired rollouts) | run by run (95% CI over training seeds) | seeds |")
    print("|---|---|---|---|")
    for top, bottom in (pair for pair in pairs if pair[0] in results and pair[1] in results):
        ratio, ci = paired_ratio(*(kept_run(results[key])["returns"] for key in (top, bottom)))
        by_seed, by_seed_ci, seeds = seed_paired_ratio(runs[top], runs[bottom])
        print(f"| k = {top[0]} {top[1]} / k = {bottom[0]} {bottom[1]} | {100 * ratio:.1f}% ± {100 * ci:.1f} "
              f"| {100 * by_seed:.1f}% ± {100 * by_seed_ci:.1f} | {', '.join(map(str, seeds))} |")


if __name__ == "__main__":
    main()
