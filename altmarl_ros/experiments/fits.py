"""Curve fits for a gap that shrinks with k: the paper's c/sqrt(k) and a free power c*k^-alpha.

With a reference k_ref (the gap is measured against a k_ref-informed agent, not an
infinitely informed one) the model is gap(k) = c * (k^-alpha - k_ref^-alpha): if welfare
behaves like W_inf - c k^-alpha, that is W(k_ref) - W(k). Both fits are least squares in
linear space; for a given alpha the best c has a closed form, and the free exponent is
found by a fine grid search over alpha (no optimiser dependency, no log of zero gaps).
"""
from dataclasses import dataclass

import numpy as np

ALPHA_GRID = np.linspace(0.02, 3.0, 1491)  # step 0.002


@dataclass(frozen=True)
class GapFit:
    """gap(k) = c * (k^-alpha - k_ref^-alpha) (k_ref None: just c * k^-alpha), and its R^2."""

    c: float
    alpha: float
    r2: float
    n_points: int
    k_ref: int | None = None

    def predict(self, k):
        k = np.asarray(k, dtype=np.float64)
        return self.c * _basis(k, self.alpha, self.k_ref)


def _basis(k, alpha, k_ref):
    return k ** -alpha - (0.0 if k_ref is None else float(k_ref) ** -alpha)


def _fit(k, gap, alpha, k_ref):
    basis = _basis(k, alpha, k_ref)
    norm = float(basis @ basis)
    c = float(basis @ gap / norm) if norm > 0 else 0.0
    residual = float(np.sum((gap - c * basis) ** 2))
    return c, residual


def _result(k, gap, alpha, k_ref):
    c, residual = _fit(k, gap, alpha, k_ref)
    total = float(np.sum((gap - gap.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else float("nan")
    return GapFit(c=c, alpha=float(alpha), r2=r2, n_points=len(k), k_ref=k_ref)


def _points(k, gap):
    return np.asarray(k, dtype=np.float64), np.asarray(gap, dtype=np.float64)


def fit_inverse_sqrt(k, gap, k_ref=None):
    """Least-squares c with alpha fixed at 1/2 (closed form)."""
    k, gap = _points(k, gap)
    return _result(k, gap, 0.5, k_ref)


def fit_power_law(k, gap, k_ref=None):
    """Least-squares (c, alpha); None with fewer than three distinct k (alpha unidentifiable)."""
    k, gap = _points(k, gap)
    if np.unique(k).size < 3:
        return None
    residuals = [_fit(k, gap, alpha, k_ref)[1] for alpha in ALPHA_GRID]
    return _result(k, gap, ALPHA_GRID[int(np.argmin(residuals))], k_ref)
