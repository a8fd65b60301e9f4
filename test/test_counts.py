"""Count-vector ranking and sampling against independent references (itertools, closed forms)."""
import itertools
import math

import numpy as np
import pytest
from numba import njit

from altmarl_ros.core.counts import (
    RANKING_SCHEME,
    CountsError,
    rank_kernel,
    _sample_next_counts,
    enumerate_count_vectors,
    n_count_vectors,
    rank,
    sample_next_counts,
    unrank,
)
from altmarl_ros.errors import AltmarlError


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


P_TILDE = np.array([[0.5, 0.3, 0.2], [0.0, 0.1, 0.9], [0.25, 0.25, 0.5]])
COUNTS = np.array([6, 3, 1])


def test_sample_next_counts_preserves_sum_and_matches_mean():
    rng = np.random.default_rng(7)
    batch = np.tile(COUNTS, (20_000, 1))
    samples = sample_next_counts(batch, P_TILDE, rng)
    assert samples.shape == batch.shape
    assert (samples.sum(axis=1) == COUNTS.sum()).all() and (samples >= 0).all()
    expected = COUNTS @ P_TILDE
    stderr = samples.std(axis=0) / np.sqrt(len(samples))
    assert (np.abs(samples.mean(axis=0) - expected) < 5 * stderr + 1e-12).all()
    single = sample_next_counts(COUNTS, P_TILDE, rng)
    assert single.shape == (3,) and single.sum() == 10


@njit(cache=True)
def _kernel_samples(F, P, n, seed):
    np.random.seed(seed)
    out = np.empty((n, F.shape[0]), dtype=np.int64)
    for i in range(n):
        _sample_next_counts(F, P, out[i])
    return out


def test_kernel_sampler_preserves_sum_matches_mean_and_is_seeded():
    samples = _kernel_samples(COUNTS, P_TILDE, 20_000, 3)
    assert (samples.sum(axis=1) == COUNTS.sum()).all() and (samples >= 0).all()
    expected = COUNTS @ P_TILDE
    stderr = samples.std(axis=0) / np.sqrt(len(samples))
    assert (np.abs(samples.mean(axis=0) - expected) < 5 * stderr + 1e-12).all()
    # state 1's agents never move to state 0: P_TILDE[1, 0] == 0 is respected exactly
    deterministic = _kernel_samples(np.array([0, 4, 0]), P_TILDE, 2000, 4)
    assert (deterministic[:, 0] == 0).all()
    assert np.array_equal(samples, _kernel_samples(COUNTS, P_TILDE, 20_000, 3))


def test_kernel_sampler_exact_distribution_on_tiny_case():
    """Two agents in state 0 with P = [0.5, 0.5]: next F is (2,0), (1,1), (0,2) w.p. 1/4, 1/2, 1/4."""
    samples = _kernel_samples(np.array([2, 0]), np.array([[0.5, 0.5], [0.0, 1.0]]), 40_000, 5)
    freq = np.array([(samples[:, 0] == a).mean() for a in (2, 1, 0)])
    assert np.allclose(freq, [0.25, 0.5, 0.25], atol=0.015)


def test_sample_next_counts_rejects_bad_matrix():
    rng = np.random.default_rng(0)
    with pytest.raises(CountsError, match=r"P_tilde\[1, :\] sums to"):
        sample_next_counts(COUNTS, np.array([[1.0, 0, 0], [0.5, 0.4, 0], [0, 0, 1.0]]), rng)
    with pytest.raises(CountsError, match="shape"):
        sample_next_counts(COUNTS, np.eye(2), rng)
