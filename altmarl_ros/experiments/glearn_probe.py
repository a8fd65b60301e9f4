"""Time and peak memory of one cold-start G-LEARN, measured in a fresh process.

Run as `python -m altmarl_ros.experiments.glearn_probe MODEL K M SEED`; prints one JSON
object. A fresh process because peak RSS is a per-process high-water mark and a long
sweep's heap keeps freed memory: in the sweep's own process the growth caused by one
G-LEARN is not observable. The probe first runs G-LEARN at k = 1 (loads the compiled
kernels and warms the allocator), takes ru_maxrss, then runs the measured call;
`peak_growth_mb` is how far the measured call raised the high-water mark, i.e. the
memory G-LEARN at this k needs beyond the warmed-up interpreter (`peak_rss_mb`).
The local policy is uniform, as in the SUBSAMPLE-MFQ baseline.
"""
import json
import resource
import sys
import time


def _max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure(model_path, k, m, seed):
    import numpy as np

    from altmarl_ros.core.glearn import g_learn
    from altmarl_ros.core.model import load_model

    game = load_model(model_path)
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    g_learn(game, uniform, 1, m=2, seed=seed)
    baseline = _max_rss_mb()
    started = time.perf_counter()
    learned = g_learn(game, uniform, k, m=m, seed=seed)
    seconds = time.perf_counter() - started
    peak = _max_rss_mb()
    return {"seconds": seconds, "sweeps": int(learned.sweeps), "converged": bool(learned.converged),
            "peak_growth_mb": peak - baseline, "peak_rss_mb": peak}


if __name__ == "__main__":
    path, k, m, seed = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(measure(path, k, m, seed)))
