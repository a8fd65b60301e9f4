"""Count vectors F in N^S with sum(F) = k: ranking and enumeration.

What the global agent sees of its k sampled locals is a count vector F (F[j] =
how many are in local state j). Tables indexed by F use `rank(F)` in
[0, C(k+S-1, S-1)) instead of a dense (k+1)^S grid. The trainer, the evaluator
and the ROS coordinator all rank with this module, so a policy file's column
r always means the same F (scheme id RANKING_SCHEME, stored in policy files).

Scheme "colex-combinadic-v1": write F as stars and bars, k stars and S-1 bars
in k+S-1 slots; bar j sits at b_j = F[0] + ... + F[j] + j (strictly increasing).
rank(F) = sum_{j=0}^{S-2} C(b_j, j+1), the colexicographic rank of the bar set
in the combinatorial number system. So rank 0 is (0, ..., 0, k), the last rank
is (k, 0, ..., 0), and rank(F) depends only on F's first S-1 entries (not on k).
rank costs O(S) (table lookups); unrank O(S log k) (binary search per bar).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from altmarl_ros.errors import ModelError

RANKING_SCHEME = "colex-combinadic-v1"

# Pascal's triangle C(n, r) for n < _TABLE_N, r < _TABLE_R, frozen into the numba
# kernels as a constant. Entries that overflow int64 hold -1; no valid rank ever
# reads them (every term of a rank is <= the rank < N_F, which fits int64).
_TABLE_N, _TABLE_R = 512, 16


def _pascal_table() -> np.ndarray:
    table = np.full((_TABLE_N, _TABLE_R), -1, dtype=np.int64)
    limit = np.iinfo(np.int64).max
    for n in range(_TABLE_N):
        for r in range(_TABLE_R):
            value = math.comb(n, r)
            if value <= limit:
                table[n, r] = value
    return table


_BINOM = _pascal_table()


@njit(cache=True)
def _binom(n, r):
    """C(n, r) for the sizes rank/unrank meet (exact whenever it fits int64; table lookup when in range)."""
    if r < 0 or n < r:
        return 0
    if n < _TABLE_N and r < _TABLE_R:
        return _BINOM[n, r]
    r = min(r, n - r)  # so every partial product C(n, i), i <= r, is at most C(n, r)
    value = 1
    for i in range(r):
        # C(n, i + 1) = C(n, i) (n - i) / (i + 1), divided first: the product C(n, i) (n - i) itself
        # overflows int64 when C(n, r) > 2^63 / r, near the largest rank (it made those ranks wrong).
        # (i + 1) divides C(n, i) (n - i), so what of it does not divide C(n, i) divides (n - i).
        common = math.gcd(value, i + 1)
        value = (value // common) * ((n - i) // ((i + 1) // common))
    return value


@njit(cache=True)
def rank_kernel(F):
    """Rank of count vector F (any int dtype, length S >= 1); O(S). Usable in kernels."""
    rank = 0
    bar = -1
    for j in range(F.shape[0] - 1):
        bar += F[j] + 1
        rank += _binom(bar, j + 1)
    return rank


@njit(cache=True)
def unrank_kernel(r, k, out):
    """Write the count vector of rank r (sum k, length out.shape[0]) into out."""
    S = out.shape[0]
    upper = k + S - 1  # every bar position is < upper
    for j in range(S - 2, -1, -1):
        # largest bar position b in [j, upper) with C(b, j+1) <= r
        lo, hi = j, upper - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _binom(mid, j + 1) <= r:
                lo = mid
            else:
                hi = mid - 1
        r -= _binom(lo, j + 1)
        out[j + 1] = upper - lo - 1
        upper = lo
    out[0] = upper


@njit(cache=True, inline="always")
def successor_kernel(F):
    """F <- the count vector of rank(F) + 1, in place; O(S), no search (F must not be the last, (k, 0, ..., 0)).

    In bars, the next colex combination raises the lowest bar b_j that can move (F[j + 1] > 0)
    and packs the bars below it at 0..j-1: one agent moves from state j + 1 into state j,
    and states 0..j-1 give theirs to j. Sweeps over consecutive ranks use it instead of
    unrank, which costs a binary search per bar (~200 ns at S = 5 to 8; this ~10x less).
    """
    j = 0
    gathered = F[0]
    while F[j + 1] == 0:
        j += 1
        gathered += F[j]
    for i in range(j):
        F[i] = 0
    F[j] = gathered + 1
    F[j + 1] -= 1


@njit(cache=True)
def _enumerate(k, S, N):
    out = np.empty((N, S), dtype=np.int64)
    for r in range(N):
        unrank_kernel(r, k, out[r])
    return out


MAX_COUNT_BITS = 4096  # no table is larger; computing the exact count beyond this takes long


class CountsError(ModelError):
    """Bad k, S, rank or count vector given to the count-vector functions."""


def _check_k_S(k, S) -> tuple:
    for name, value, low in (("k", k, 0), ("S", S, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise CountsError(f"{name} is {value!r}; it must be an integer >= {low}")
    return int(k), int(S)


def n_count_vectors(k: int, S: int) -> int:
    """Number of count vectors of k agents over S states: C(k+S-1, S-1)."""
    k, S = _check_k_S(k, S)
    bits = (math.lgamma(k + S) - math.lgamma(k + 1) - math.lgamma(S)) / math.log(2)
    if bits > MAX_COUNT_BITS:  # math.comb would run for minutes on such sizes (k = S = 3e6: 40 s)
        raise CountsError(f"k = {k}, S = {S} give about 2^{bits:.3g} count vectors, far beyond any table "
                          f"(2^{MAX_COUNT_BITS} at most); use a smaller k or fewer local states")
    return math.comb(k + S - 1, S - 1)


def _check_int64_ranks(k: int, S: int) -> int:
    N = n_count_vectors(k, S)
    if N > np.iinfo(np.int64).max:
        raise CountsError(
            f"k = {k}, S = {S} gives {N} count vectors, more than an int64 rank can hold; "
            "use a smaller k"
        )
    return N


def _as_counts(F, name="F") -> np.ndarray:
    array = np.asarray(F)
    if array.ndim != 1 or array.shape[0] < 1 or not np.issubdtype(array.dtype, np.integer):
        raise CountsError(f"{name} must be a 1-D integer array of counts per local state; got {F!r}")
    if (array < 0).any():
        index = int(np.argmax(array < 0))
        raise CountsError(f"{name}[{index}] is {array[index]}; counts must be >= 0")
    return array.astype(np.int64)


def rank(F) -> int:
    """Rank of count vector F (1-D non-negative ints) in RANKING_SCHEME order."""
    counts = _as_counts(F)
    _check_int64_ranks(int(counts.sum()), counts.shape[0])
    return int(rank_kernel(counts))


def unrank(r: int, k: int, S: int) -> np.ndarray:
    """The count vector (int64 [S], sum k) whose rank is r."""
    N = _check_int64_ranks(*_check_k_S(k, S))
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < N:
        raise CountsError(f"rank r = {r!r} is out of range; for k = {k}, S = {S} it is in [0, {N})")
    out = np.empty(S, dtype=np.int64)
    unrank_kernel(int(r), int(k), out)
    return out


def enumerate_count_vectors(k: int, S: int) -> np.ndarray:
    """All count vectors as int64 [N_F, S]; row r has rank r."""
    N = _check_int64_ranks(*_check_k_S(k, S))
    return _enumerate(int(k), int(S), N)
