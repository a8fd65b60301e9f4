"""Count-vector ranking throughput inside a numba kernel (what G-LEARN and the evaluator pay per lookup).

Usage: .venv/bin/python bench/bench_counts.py [k ...]   (default k = 10 20 40 100; S = 5)
"""
import sys
import time

import numpy as np
from numba import njit

from altmarl_ros.core.counts import rank_kernel, unrank_kernel, enumerate_count_vectors

S, REPEATS = 5, 10


@njit(cache=True)
def _rank_all(table, repeats):
    checksum = 0
    for _ in range(repeats):
        for i in range(table.shape[0]):
            checksum += rank_kernel(table[i])
    return checksum


@njit(cache=True)
def _unrank_all(n_vectors, k, S, repeats):
    out = np.empty(S, dtype=np.int64)
    checksum = 0
    for _ in range(repeats):
        for r in range(n_vectors):
            unrank_kernel(r, k, out)
            checksum += out[0]
    return checksum


def main(ks):
    _rank_all(enumerate_count_vectors(2, S), 1)
    _unrank_all(3, 2, S, 1)
    print(f"{'k':>5} {'N_F':>10} {'rank/s':>10} {'unrank/s':>10}")
    for k in ks:
        table = enumerate_count_vectors(k, S)
        start = time.perf_counter()
        _rank_all(table, REPEATS)
        rank_rate = REPEATS * len(table) / (time.perf_counter() - start)
        start = time.perf_counter()
        _unrank_all(len(table), k, S, REPEATS)
        unrank_rate = REPEATS * len(table) / (time.perf_counter() - start)
        print(f"{k:>5} {len(table):>10} {rank_rate:>10.3g} {unrank_rate:>10.3g}")


if __name__ == "__main__":
    main([int(k) for k in sys.argv[1:]] or [10, 20, 40, 100])
