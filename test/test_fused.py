"""core.fused's multinomial law against independent references: log n! from Python's exact
factorials, the pmf from _learn_reference's direct product on every count vector of tiny instances.
(fold_local_policy is checked against explicit sums over actions in test_observer.)"""
import math

import numpy as np
import pytest

from _learn_reference import count_vectors, multinomial_pmf
from altmarl_ros.core.fused import log_factorials, log_multinomial_pmf, log_or_minus_inf


@pytest.mark.kernels
@pytest.mark.parametrize("k", [0, 1, 2, 7, 30])
def test_log_factorials_are_log_n_factorial_for_n_up_to_k(k):
    # the compiled kernel, and its Python source, where a write past the table raises instead of going unseen
    # (under NUMBA_DISABLE_JIT the kernel is the Python function itself)
    for kernel in (log_factorials, getattr(log_factorials, "py_func", log_factorials)):
        out = kernel(k)
        assert out.shape == (k + 1,)
        np.testing.assert_allclose(out, [math.log(math.factorial(n)) for n in range(k + 1)], rtol=1e-14, atol=1e-14)


@pytest.mark.kernels
@pytest.mark.parametrize("k", [1, 3, 4])
def test_the_multinomial_law_is_exact_on_every_count_vector_and_minus_inf_off_the_support(k):
    # dyadic mu (exact in binary) with a state nobody is in: F putting agents there has probability 0
    for mu in ([0.5, 0.25, 0.0, 0.25], [0.0, 0.125, 0.875, 0.0], [1.0, 0.0, 0.0, 0.0]):
        log_mu = log_or_minus_inf(np.array(mu))
        log_fact = log_factorials(k)
        total = 0.0
        for F in count_vectors(k, len(mu)):
            got = log_multinomial_pmf(np.asarray(F, np.int64), k, log_mu, log_fact)
            exact = multinomial_pmf(F, mu)
            if exact == 0:
                assert got == -np.inf, (F, mu)
            else:
                assert got == pytest.approx(math.log(exact), rel=0, abs=1e-12), (F, mu)
                total += math.exp(got)
        assert total == pytest.approx(1.0, abs=1e-12)
