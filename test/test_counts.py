"""Count-vector ranking and enumeration against independent references (itertools, closed forms)."""
import itertools
import math

import numpy as np
import pytest
from numba import njit

from altmarl_ros.core.counts import (
    RANKING_SCHEME,
    CountsError,
    rank_kernel,
    successor_kernel,
    enumerate_count_vectors,
    n_count_vectors,
    rank,
    unrank,
)
from altmarl_ros.errors import AltmarlError

pytestmark = pytest.mark.kernels  # all fast with NUMBA_DISABLE_JIT=1 (scripts/coverage.sh)


def brute_force_count_vectors(k, S):
    """Every F in N^S with sum k, by filtering the dense (k+1)^S grid."""
    return {F for F in itertools.product(range(k + 1), repeat=S) if sum(F) == k}


def test_scheme_id_is_stable():
    assert RANKING_SCHEME == "colex-combinadic-v1"


@pytest.mark.parametrize("S", [1, 2, 3, 4, 5])
def test_rank_unrank_is_a_bijection_onto_range(S):
    for k in range(13):
        vectors = brute_force_count_vectors(k, S)
        N = n_count_vectors(k, S)
        assert N == len(vectors) == math.comb(k + S - 1, S - 1)
        ranks = {rank(np.array(F)): F for F in vectors}
        assert sorted(ranks) == list(range(N))  # injective onto [0, N)
        for r, F in ranks.items():
            assert tuple(unrank(r, k, S)) == F
        table = enumerate_count_vectors(k, S)
        assert table.shape == (N, S) and table.dtype == np.int64
        assert [tuple(row) for row in table] == [ranks[r] for r in range(N)]


@pytest.mark.parametrize("S", [2, 3, 5, 8])
def test_successor_steps_through_every_rank_in_order(S):
    """successor_kernel (no search) against unrank (a binary search per bar), from rank 0 to the last."""
    step = njit(lambda F: successor_kernel(F))
    for k in (0, 1, 2, 7):
        N = n_count_vectors(k, S)
        F = unrank(0, k, S)
        for r in range(1, N):
            step(F)
            assert tuple(F) == tuple(unrank(r, k, S)), (k, S, r)


def test_rank_order_is_colex_on_bar_positions():
    """Row r+1 is the colex successor of row r: compare bar sets from the last bar down."""
    table = enumerate_count_vectors(6, 4)
    bars = np.cumsum(table[:, :-1], axis=1) + np.arange(3)
    keys = [tuple(row[::-1]) for row in bars]
    assert keys == sorted(keys)
    assert tuple(table[0]) == (0, 0, 0, 6) and tuple(table[-1]) == (6, 0, 0, 0)


def test_paper_size_counts_and_large_k():
    assert n_count_vectors(40, 5) == 135_751
    F = np.array([7, 0, 13, 11, 9])
    assert tuple(unrank(rank(F), 40, 5)) == tuple(F)
    big = np.array([400, 300, 200, 100, 0])  # beyond the Pascal table: exact arithmetic path
    assert tuple(unrank(rank(big), 1000, 5)) == tuple(big)
    assert rank(np.array([0, 0, 0, 0, 1000])) == 0
    assert rank(np.array([1000, 0, 0, 0, 0])) == n_count_vectors(1000, 5) - 1


def _colex_rank(F):
    """The scheme's definition in Python integers: sum_j C(b_j, j + 1), b_j = F[0] + ... + F[j] + j."""
    bars = np.cumsum(F[:-1]) + np.arange(len(F) - 1)
    return sum(math.comb(int(b), j + 1) for j, b in enumerate(bars))


@pytest.mark.parametrize("S", [3, 4, 5, 8])
def test_ranks_are_exact_up_to_the_largest_k_an_int64_rank_holds(S):
    """At the largest k with N_F <= 2^63 - 1 (found by bisection on math.comb), every rank and unrank is the
    definition's, the last rank N_F - 1 included; at k + 1 ranking is refused. Partial products of C(n, r)
    beyond int64 once made the ranks near the top wrap (S = 4: 3.07e18 for the last rank, 9.22e18)."""
    low, high = 1, 2**40
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if math.comb(mid + S - 1, S - 1) <= 2**63 - 1 else (low, mid - 1)
    k = low
    N = math.comb(k + S - 1, S - 1)
    assert n_count_vectors(k, S) == N
    rng = np.random.default_rng(S)
    vectors = [np.array([k] + [0] * (S - 1)), np.array([0] * (S - 1) + [k]), np.array([k - 1] + [0] * (S - 2) + [1])]
    for _ in range(20):
        cuts = np.sort(rng.integers(0, k + 1, S - 1))
        vectors.append(np.diff(np.concatenate([[0], cuts, [k]])))
    for F in vectors:
        expected = _colex_rank(F)
        assert rank(F) == expected, F
        assert tuple(unrank(expected, k, S)) == tuple(F)
    assert rank(vectors[0]) == N - 1
    with pytest.raises(CountsError, match="more than an int64 rank can hold"):
        rank(np.array([k + 1] + [0] * (S - 1)))


@njit(cache=True)
def _rank_all(table):
    out = np.empty(table.shape[0], dtype=np.int64)
    for i in range(table.shape[0]):
        out[i] = rank_kernel(table[i])
    return out


def test_njit_rank_inside_another_kernel():
    table = enumerate_count_vectors(10, 5)
    assert np.array_equal(_rank_all(table), np.arange(len(table)))
    assert np.array_equal(_rank_all(table.astype(np.int32)), np.arange(len(table)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: unrank(10, 3, 3),  # N = 10: ranks 0..9
        lambda: unrank(-1, 3, 3),
        lambda: n_count_vectors(-1, 3),
        lambda: n_count_vectors(3, 0),
        lambda: enumerate_count_vectors(2.5, 3),
        lambda: rank(np.array([1, -1, 2])),
        lambda: rank(np.array([0.5, 1.5])),
        lambda: n_count_vectors(True, 3),
    ],
)
def test_bad_arguments_raise_named_errors(call):
    with pytest.raises(CountsError) as info:
        call()
    assert isinstance(info.value, AltmarlError)


def test_unrank_error_names_the_range():
    with pytest.raises(CountsError, match=r"\[0, 10\)"):
        unrank(10, 3, 3)


def test_rank_errors_name_the_bad_entry_and_the_shape():
    with pytest.raises(CountsError, match=r"F\[2\] is -1; counts must be >= 0"):
        rank(np.array([2, 0, -1]))  # the first negative entry, not the first zero
    with pytest.raises(CountsError, match="1-D integer array"):
        rank(np.ones((2, 2), np.int64))


def test_ranks_beyond_the_pascal_table_match_the_combinadic_in_exact_integers():
    """600 local states, k = 2: the bar positions reach past the table (n >= 512, r >= 16) and C(n, r)
    with r close to n, whose partial products overflow int64 unless r is reduced to n - r. Reference:
    sum of C(bar_j, j + 1) in Python integers; the empty count vector is refused."""
    S, k = 600, 2
    for ones in ((0, 0), (0, S - 1), (1, 300), (S - 2, S - 1), (S - 1, S - 1)):
        F = np.zeros(S, dtype=np.int64)
        np.add.at(F, list(ones), 1)
        bars = np.cumsum(F[:-1] + 1) - 1
        expected = sum(math.comb(int(bar), j + 1) for j, bar in enumerate(bars))
        assert rank(F) == expected
        assert np.array_equal(unrank(expected, k, S), F)
    for not_a_vector in (np.zeros(0, dtype=np.int64), np.int64(3)):  # empty, 0-d
        with pytest.raises(CountsError, match="1-D integer array"):
            rank(not_a_vector)


def test_count_vectors_are_counted_up_to_2_to_the_4096_and_refused_beyond():
    """docs/operations.md: count vectors beyond 2^4096 are refused. With S = 2052 the largest k under it (found by exact
    integers, math.comb) is counted exactly, the next k (about one bit more) is refused."""
    S = 2052

    def log2_exact(k):
        n = math.comb(k + S - 1, S - 1)
        return n.bit_length() - 1 + math.log2(n / 2 ** (n.bit_length() - 1))

    k = next(k for k in range(1900, 2300) if log2_exact(k + 1) > 4096)
    assert 4095 < log2_exact(k) <= 4096
    assert n_count_vectors(k, S) == math.comb(k + S - 1, S - 1)
    with pytest.raises(CountsError, match=r"far beyond any table \(2\^4096 at most\)"):
        n_count_vectors(k + 1, S)
