"""The locals' model with pi_l folded in, and the multinomial law of k sampled locals.

G-LEARN (its draws and its value), L-LEARN (the induced global chain), the evaluator,
ALTERNATING-MARL and the policy artifact (what a filter observer predicts with) all use
these; they live below all of them so that none imports another learner for them.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


def fold_local_policy(game, pi_l: np.ndarray) -> tuple:
    """(P~_l [S_g, S_l, S_l'], r~_l [S_g, S_l]): the local model of `game` averaged over pi_l [S_l, S_g, A_l]."""
    P_fused = np.einsum("jga,jgat->gjt", pi_l, game.P_l)
    r_fused = np.einsum("jga,jga->gj", pi_l, game.r_l)
    return np.ascontiguousarray(P_fused), np.ascontiguousarray(r_fused)


def log_or_minus_inf(p: np.ndarray) -> np.ndarray:
    """log p, -inf where p = 0 (without numpy's divide-by-zero warning)."""
    with np.errstate(divide="ignore"):
        return np.log(p)


@njit(cache=True)
def log_factorials(k):
    out = np.empty(k + 1)
    for n in range(k + 1):
        out[n] = math.lgamma(n + 1.0)
    return out


@njit(cache=True)
def log_multinomial_pmf(F, k, log_mu, log_fact):
    """log Pr(F) for F ~ Multinomial(k, mu); -inf where F puts agents on mu = 0."""
    total = log_fact[k]
    for j in range(F.shape[0]):
        if F[j] > 0:
            total += F[j] * log_mu[j] - log_fact[F[j]]
    return total
