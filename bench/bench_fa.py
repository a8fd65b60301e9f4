"""FA learners on Setup B (core/fa_learn.py, fa_alternating.py): what a training run costs, and the
FA agent-step rate core/work.py prices training and evaluation with.

  import             seconds to import jax + optax + the FA modules (paid by train/evaluate --model setup_b only)
  rollouts           FA agent-steps/s of one TRPO step's collection (120 rollouts x 40 steps x 500 locals,
                     locals sampling their network), first call (compile) and steady state
  TRPO step          seconds of one trust-region update plus critic fit on that batch, either side
  training run       seconds of one ALTERNATING-MARL run at each k (the default settings, 10 rounds at most)

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false .venv/bin/python bench/bench_fa.py [--k 1 75] [--runs 1]

The authors report ~21 s per training run, flat in k (their README, Setup B).
"""
import argparse
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 75])
    parser.add_argument("--runs", type=int, default=1, help="training runs per k (seeds 0, 1, ...)")
    args = parser.parse_args()

    started = time.perf_counter()
    import jax
    import numpy as np

    from altmarl_ros.core.continuous import BimodalLine
    from altmarl_ros.core.fa_alternating import FAConfig, FATrainer, check_config, fa_alternating
    from altmarl_ros.core.fa_learn import RolloutSpec, rollouts
    print(f"import             {time.perf_counter() - started:.2f} s")

    game = BimodalLine()
    config = check_config(game, 1, FAConfig())
    trainer = FATrainer(game, 1, config, seed=0)
    spec = RolloutSpec(n=config.n, k=1, horizon=config.horizon, local_mode="sample", tracked=config.tracked)
    steps = config.episodes * config.horizon * config.n
    for label in ("first call", "steady"):
        s_g, s_l = game.initial(np.random.default_rng(0), config.n, config.episodes)
        t = time.perf_counter()
        jax.block_until_ready(rollouts(game, spec, trainer.glob.actor, trainer.loc.actor, jax.random.PRNGKey(0),
                                       s_g, s_l))
        print(f"rollouts {label:<10} {steps / (time.perf_counter() - t):.3g} FA agent-steps/s "
              f"({time.perf_counter() - t:.2f} s)")
    for side, step in (("global", lambda: trainer.trpo_g(1)), ("local", trainer.l_step)):
        step()  # compile
        t = time.perf_counter()
        step()
        iters = 1 if side == "global" else config.l_iters
        print(f"TRPO step {side:<7}  {(time.perf_counter() - t) / iters:.2f} s (collection included)")
    for k in args.k:
        for seed in range(args.runs):
            result = fa_alternating(game, k, FAConfig(), seed=seed)
            print(f"training run k = {k:<3} seed {seed}: {result.seconds:.1f} s, {len(result.rounds)} rounds, "
                  f"selection welfare {result.welfare:.2f}")


if __name__ == "__main__":
    main()
