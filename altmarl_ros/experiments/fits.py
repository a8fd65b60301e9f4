"""Curve fits for the Nash gap vs k: the paper's c/sqrt(k) and a free power law c*k^-alpha."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GapFit:
    """A fitted curve gap(k) = c * k**(-alpha) and how well it explains the points."""

    c: float
    alpha: float
    r2: float  # coefficient of determination of the fit, in the space it was fitted in
    n_points: int


def _r2(observed, predicted):
    total = float(np.sum((observed - observed.mean()) ** 2))
    residual = float(np.sum((observed - predicted) ** 2))
    return 1.0 - residual / total if total > 0 else float("nan")


def fit_inverse_sqrt(k, gap):
    """Least-squares c in gap = c / sqrt(k) (closed form; alpha fixed at 1/2, R^2 in linear space)."""
    k = np.asarray(k, dtype=np.float64)
    gap = np.asarray(gap, dtype=np.float64)
    basis = 1.0 / np.sqrt(k)
    c = float(basis @ gap / (basis @ basis))
    return GapFit(c=c, alpha=0.5, r2=_r2(gap, c * basis), n_points=len(k))


def fit_power_law(k, gap):
    """Least-squares log gap = log c - alpha log k over the points with gap > 0 (R^2 in log space).

    Zero gaps (an exact equilibrium of the surrogate) have no logarithm; they are left out
    and `n_points` says how many were used. Returns None with fewer than two usable points.
    """
    k = np.asarray(k, dtype=np.float64)
    gap = np.asarray(gap, dtype=np.float64)
    keep = gap > 0
    if keep.sum() < 2 or np.unique(k[keep]).size < 2:
        return None
    log_k, log_gap = np.log(k[keep]), np.log(gap[keep])
    slope, intercept = np.polyfit(log_k, log_gap, 1)
    return GapFit(
        c=float(np.exp(intercept)),
        alpha=float(-slope),
        r2=_r2(log_gap, intercept + slope * log_k),
        n_points=int(keep.sum()),
    )
