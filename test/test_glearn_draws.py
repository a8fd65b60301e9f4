"""G-LEARN's fixed draws (core/glearn_draws.py) against brute force on a tiny instance.

The alias tables must give the conditional binomials' probabilities exactly; every stored,
decoded or recomputed draw must be the one a plain Python walk through the documented
counters, uniforms and tables gives; codes must be the documented fields of the cumulative
counts, escaping exactly when one leaves its window. test_glearn checks the draws' law
statistically and test_glearn_storage the learner's answer; this file pins each path's draws.
"""
import math

import numpy as np
import pytest

from _learn_reference import count_vectors
from altmarl_ros.core.glearn_draws import (CODE_BITS, ESCAPE, _alias_pick, _binomial_alias, _binomial_columns,
                                           _draw_rank_one, code_shifts, draw_scratch, fill_draws, make_draws,
                                           next_in_block, sample_draw_costs, successors, with_escapes_stored)
from altmarl_ros.core.rng import counter_uniform

# Nine local states leave 16 // 8 = 2 bits a code field, so k = 3 agents already escape; rows of P with
# a zero, a certain move and ties exercise the alias tables' edge cases.
K, M, S_G, S_L = 3, 4, 2, 9


@pytest.fixture(scope="module")
def P_fused():
    P = np.random.default_rng(3).dirichlet(np.ones(S_L) * 0.7, size=(S_G, S_L))
    P[0, 0] = np.eye(S_L)[4]  # moves to 4 for sure
    P[0, 1] = [0.5, 0.0, 0.25, 0.25, 0, 0, 0, 0, 0]  # a zero before the end of its order, and a tie
    P[1, 2] = np.full(S_L, 1 / S_L)
    return P


@pytest.fixture(scope="module")
def draws(P_fused):
    return make_draws(P_fused, K, M, seed=9)


@pytest.fixture(scope="module")
def vectors():
    return count_vectors(K, S_L)


def _reference_counts(draws, F, f, g, i):
    """Draw i of (g, F = vectors[f]) by the documented recipe, one binomial at a time in Python: source j's
    t-th target (draws.order) takes x of the n agents left, from the uniform of counter
    S_l^2 ((f S_g + g) m + i) + (j S_l + t): entry floor(u (n + 1)) of the alias table, kept when the
    fraction left is below its acceptance, else its alias."""
    counts = np.zeros(S_L, np.int64)
    counter = S_L * S_L * ((f * S_G + g) * M + i)
    for j in range(S_L):
        n = int(F[j])
        for t in range(S_L - 1):
            if n == 0:
                break
            y = counter_uniform(draws.key, np.uint64(counter + j * S_L + t)) * (n + 1)
            x = min(int(y), n)
            record = draws.choice[g, j, t, n, x]
            x = int(record[2] if y - x < draws.accept[g, j, t, n, x, 0] else record[3])
            counts[draws.order[g, j, t]] += x
            n -= x
        counts[draws.order[g, j, S_L - 1]] += n
    return counts


@pytest.fixture(scope="module")
def reference(draws, vectors):
    """Every draw's counts [n_f, S_g, m, S_l], by _reference_counts."""
    return np.array([[[_reference_counts(draws, F, f, g, i) for i in range(M)] for g in range(S_G)]
                     for f, F in enumerate(vectors)])


def _ranks(reference, vectors):
    index = {tuple(F): r for r, F in enumerate(vectors)}
    return np.array([[[index[tuple(c)] for c in by_g] for by_g in row] for row in reference])


def _code(counts, F, g, mean_cum):
    """The documented code: field j = c_j + j - base_j of the cumulative count c_j, in 16 // (S_l - 1) bits,
    base_j = round(E[c_j]) + j - half the window; ESCAPE when a field leaves [0, 2^bits)."""
    bits = CODE_BITS // (S_L - 1)
    code = 0
    for j in range(S_L - 1):
        mean = sum(F[s] * mean_cum[g, s, j] for s in range(S_L))
        field = int(counts[: j + 1].sum()) + j - (math.floor(mean + 0.5) + j - 2 ** (bits - 1))
        if not 0 <= field < 2**bits:
            return ESCAPE
        code += field << (bits * j)
    return code


def _stored(draws, layout, rows, keep_escapes):
    """draws with `rows` rows stored in `layout` (as G-LEARN's _Surrogate stores them) and the per-row
    escape counts fill_draws made."""
    store = np.full((rows, S_G, M), 12345, np.int32 if layout == "ranks" else np.uint16)
    draws = draws._replace(**{layout: store})
    index = np.zeros(rows + 1, np.int64)
    fill_draws(draws, index[1:])
    counted = index[1:].copy()
    if keep_escapes:
        draws = with_escapes_stored(draws, index)
    return draws, counted


def test_alias_tables_give_the_conditional_binomials_exactly(P_fused, draws):
    """Entry e of row (g, j, t, n) is picked with probability 1/(n + 1), kept with its acceptance, else
    replaced by its alias: the sum over entries is Binomial(n, p_t / (mass left before t)) for the t-th most
    likely target (ties by index), to rounding."""
    for g in range(S_G):
        for j in range(S_L):
            order = sorted(range(S_L), key=lambda s: -P_fused[g, j, s])
            assert list(draws.order[g, j]) == order
            left = 1.0
            for t in range(S_L - 1):
                p = P_fused[g, j, order[t]]
                q = min(p / left, 1.0) if left > 0 else 1.0
                left -= p
                for n in range(K + 1):
                    induced = np.zeros(n + 1)
                    for e in range(n + 1):
                        accept = draws.accept[g, j, t, n, e, 0]
                        assert draws.choice[g, j, t, n, e, 2] == e
                        induced[e] += accept / (n + 1)
                        induced[draws.choice[g, j, t, n, e, 3]] += (1 - accept) / (n + 1)
                    exact = [math.comb(n, x) * q**x * (1 - q) ** (n - x) for x in range(n + 1)]
                    np.testing.assert_allclose(induced, exact, rtol=0, atol=1e-12, err_msg=str((g, j, t, n)))


def test_the_alias_kernel_stays_in_its_buffers(P_fused, draws):
    """The kernel's own Python (numpy checks every index; compiled numba does not) builds the same tables."""
    accept, alias = _binomial_alias.py_func(P_fused, draws.order, K)
    assert np.array_equal(accept, draws.accept[..., 0]) and np.array_equal(alias, draws.choice[..., 3])


def test_an_alias_pick_keeps_its_entry_only_below_the_acceptance():
    """A fraction equal to the acceptance takes the alias: an entry of probability 0 (acceptance 0) is
    never drawn, even at fraction 0."""
    records = np.zeros((2, 2))  # two entries: acceptance 0.0 and 0.5, aliases 1 and 0
    records[1, 0] = 0.5
    choice = records.view(np.int32)
    choice[:, 2], choice[:, 3] = [0, 1], [1, 0]
    accept, choice = records.ravel(), choice.ravel()
    picks = [_alias_pick(accept, choice, np.uint64(at), fraction)
             for at, fraction in ((0, 0.0), (0, 0.9), (1, 0.0), (1, 0.4999), (1, 0.5), (1, 0.9))]
    assert picks == [1, 1, 1, 1, 0, 0]


def test_the_decoding_tables(P_fused, draws):
    """cols[j, n] = C(n, j + 1), the terms of a rank; field j of a code starts at bit (16 // (S_l - 1)) j;
    mean_cum the expected cumulative moves; nothing is stored yet (escape_start holds rows + 1 = 1 entry)."""
    expected = [[[sum(P_fused[g, s, :j + 1]) for j in range(S_L - 1)] for s in range(S_L)] for g in range(S_G)]
    np.testing.assert_allclose(draws.mean_cum, expected, rtol=0, atol=1e-12)
    for n_sl in (2, 3, 9):
        cols = _binomial_columns(K, n_sl)
        assert cols.tolist() == [[math.comb(n, j + 1) for n in range(K + n_sl)] for j in range(n_sl - 1)]
    assert code_shifts(draws) == tuple(2 * j for j in range(S_L - 1))
    assert draws.ranks.shape == draws.codes.shape == (0, S_G, M) and draws.escaped.shape == (0,)
    assert draws.escape_start.tolist() == [0]


def test_next_in_block_walks_the_ranks_in_order(vectors):
    F = np.zeros(S_L, np.int64)
    for first in (0, 7, len(vectors) - 1):
        for f in range(first, len(vectors)):
            next_in_block(f, first, K, F)
            assert F.tolist() == vectors[f].tolist()


def test_stored_ranks_and_recomputed_draws_are_the_reference_draws(draws, vectors, reference):
    ranks = _ranks(reference, vectors)
    stored, _ = _stored(draws, "ranks", len(vectors), keep_escapes=False)
    assert np.array_equal(stored.ranks, ranks)
    one, _ = _stored(draws, "ranks", 1, keep_escapes=False)  # a store of one row is filled too
    assert np.array_equal(one.ranks, ranks[:1])
    row = np.empty(S_L, np.int64)
    for one in (_draw_rank_one, _draw_rank_one.py_func):  # its Python: numpy checks every index, numba does not
        for f in range(0, len(vectors), 7):
            for g in range(S_G):
                assert [one(vectors[f], f, g, i, M, draws.accept, draws.choice, draws.order, draws.key, row)
                        for i in range(M)] == ranks[f, g].tolist()


def test_codes_are_the_documented_fields_and_escape_outside_their_window(draws, vectors, reference):
    stored, counted = _stored(draws, "codes", len(vectors), keep_escapes=False)
    want = np.array([[[_code(reference[f, g, i], F, g, draws.mean_cum) for i in range(M)] for g in range(S_G)]
                     for f, F in enumerate(vectors)])
    assert np.array_equal(stored.codes, want)
    escapes = (want == ESCAPE).sum(axis=(1, 2))
    assert np.array_equal(counted, escapes) and 0 < escapes.sum() < want.size / 2
    states = np.array([(f, g) for f in range(len(vectors)) for g in range(S_G)])
    assert np.array_equal(sample_draw_costs(draws, states), (want == ESCAPE).sum(axis=2).ravel())


@pytest.mark.parametrize("rows, keep_escapes", [(None, False), (None, True), (3, False), (3, True)])
def test_successors_decode_every_draw(draws, vectors, reference, rows, keep_escapes):
    """Decoded codes, stored escapes (in (g, i) order from escape_start[f]) or recomputed ones, and rows
    beyond the store (here fewer rows than draws a state) all give the reference draws' ranks."""
    ranks = _ranks(reference, vectors)
    rows = len(vectors) if rows is None else rows
    stored, counted = _stored(draws, "codes", rows, keep_escapes)
    if keep_escapes:
        escaped = ranks[:rows][stored.codes == ESCAPE]  # C order: f, then g, then i
        assert np.array_equal(stored.escape_start, np.concatenate([[0], np.cumsum(counted)]))
        assert np.array_equal(stored.escaped, escaped) and len(escaped) > 0
    shifts = code_shifts(stored)
    base = np.empty(S_L - 1, np.int64)
    scratch = draw_scratch(M, S_L)
    out = np.empty(M, np.int64)
    slot = 0
    for f, F in enumerate(vectors):
        for g in range(S_G):
            slot = successors(stored, shifts, F, f, g, base, scratch, out, slot)
            assert out.tolist() == ranks[f, g].tolist(), (f, g)
    assert slot == (len(stored.escaped) if keep_escapes else 0)
