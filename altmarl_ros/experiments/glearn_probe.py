"""Time and peak memory of one cold-start G-LEARN, measured in a fresh process.

Run as `python -m altmarl_ros.experiments.glearn_probe MODEL K M SEED`; prints one JSON
object. A fresh process because peak RSS is a per-process high-water mark and a long
sweep's heap keeps freed memory: in the sweep's own process the growth caused by one
G-LEARN is not observable. The probe first runs G-LEARN at k = 1 (loads the compiled
kernels and warms the allocator), reads the peak RSS, then runs the measured call;
`peak_growth_mb` is how far the measured call raised the high-water mark, i.e. the
memory G-LEARN at this k needs beyond the warmed-up interpreter (`peak_rss_mb`).
The peak is VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and
exec, so a probe started by a 600 MB sweep would start from the sweep's peak.
The local policy is uniform, as in the SUBSAMPLE-MFQ baseline.
"""
import json
import sys
import time


def peak_rss_mb():
    """This process's own peak resident set (VmHWM of /proc/self/status), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (peak memory is measured on Linux only)")


def measure(model_path, k, m, seed):
    import numpy as np

    from altmarl_ros.core.glearn import g_learn
    from altmarl_ros.core.model import load_model

    game = load_model(model_path)
    uniform = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
    g_learn(game, uniform, 1, m=2, seed=seed)
    baseline = peak_rss_mb()
    started = time.perf_counter()
    learned = g_learn(game, uniform, k, m=m, seed=seed)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    return {"seconds": seconds, "sweeps": int(learned.sweeps), "converged": bool(learned.converged),
            "peak_growth_mb": peak - baseline, "peak_rss_mb": peak}


if __name__ == "__main__":
    path, k, m, seed = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(measure(path, k, m, seed)))
