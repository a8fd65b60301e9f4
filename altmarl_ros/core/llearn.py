"""L-LEARN: a local agent's best response to a fixed global policy, in the induced MDP.

A representative local agent sees (s_l, s_g) and earns r_l(s_l, s_g, a_l). Its
own state moves by P_l; the global state moves by

  P_bar_g(s_g'|s_g) = sum_F Pr(F | mu(.|s_g)) P_g(s_g'|s_g, pi_g(s_g, F)),
  F ~ Multinomial(k, mu(.|s_g)),

the global agent reacting to k locals drawn from a population whose local-state
distribution, when the global state is s_g, is mu(.|s_g). One agent among n
does not move F, so its deviation leaves P_bar_g unchanged.

Mean field used: mu(.|s_g) is the population's local-state distribution
conditioned on s_g, in the stationary regime under the current policies
(pi_g, pi_l): nu = stationary law of the pair chain (s_l, s_g) with
s_l' ~ P~_l(.|s_l, s_g) (pi_l folded in) and s_g' ~ P_bar_g[mu], and
mu(s_l|s_g) = nu(s_l, s_g) / nu(s_g). Why conditioned: the depot steers to where
the workers are and workers move relative to the depot, a correlation the
unconditioned mean loses. nu is the limit of the lazy chain (I + T)/2 started
from mu0_l x mu0_g (so periodic or reducible chains get the limit reached from
the initial distribution); where nu(s_g) = 0, mu(.|s_g) is nu's s_l marginal.
mu and P_bar_g depend on each other: fixed-point iteration from mu = mu0_l,
undamped at first and damped (step halved) whenever the change grows, to
max |change| <= mu_tol.

The induced MDP (S_l * S_g states) is solved exactly by policy iteration with
dense linear solves; pi_l is greedy and one-hot, the lowest action on ties
(an action replaces the current one only if better by more than 1e-12, so the
iteration terminates).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from altmarl_ros.core import budget
from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.counts import unrank_kernel, n_count_vectors
from altmarl_ros.core.fused import fold_local_policy, log_factorials, log_multinomial_pmf, log_or_minus_inf
from altmarl_ros.core.model import MeanFieldGame
from altmarl_ros.core.policy import (FOR_THIS_K, check_global_policy, check_local_policy,
                                     uniform_local_policy)
from altmarl_ros.core.sampler import DEFAULT_POOL, as_game
from altmarl_ros.errors import LearnError

_N_BLOCKS = 64
_IMPROVE = 1e-12  # policy iteration switches action only for a gain above this
_MAX_POLICY_ITERATIONS = 1000


@dataclass(frozen=True)
class LLearnResult:
    """pi_l float64 [S_l, S_g, A_l] (one-hot), its value V [S_l, S_g] and Q [S_l, S_g, A_l].

    P_bar_g [S_g, S_g] and mu [S_g, S_l] (row s_g = mu(.|s_g)) are the mean field
    the best response was computed against; `gain` is local_best_response_gain of
    the population's pi_l (how much one local gains by switching to this pi_l).
    """

    pi_l: np.ndarray
    V: np.ndarray
    Q: np.ndarray
    P_bar_g: np.ndarray
    mu: np.ndarray
    gain: float
    residual: float  # sup-norm Bellman optimality residual of V
    policy_iterations: int
    mu_residual: float
    mu_iterations: int
    mu_converged: bool
    seconds: float


@njit(parallel=True, cache=True)
def _action_mass(pi_g, k, log_mu, n_ag):
    """mass[s_g, a] = Pr(pi_g(s_g, F) = a) for F ~ Multinomial(k, mu(.|s_g)), log_mu [S_g, S_l]."""
    S_g, N_F = pi_g.shape
    S_l = log_mu.shape[1]
    log_fact = log_factorials(k)
    partial = np.zeros((_N_BLOCKS, S_g, n_ag))
    block = (N_F + _N_BLOCKS - 1) // _N_BLOCKS
    for b in prange(_N_BLOCKS):
        F = np.empty(S_l, np.int64)
        for f in range(b * block, min(N_F, (b + 1) * block)):
            unrank_kernel(f, k, F)
            for g in range(S_g):
                p = math.exp(log_multinomial_pmf(F, k, log_mu[g], log_fact))
                partial[b, g, pi_g[g, f]] += p
    return partial.sum(axis=0)


def induced_global_transition(game: MeanFieldGame, pi_g: np.ndarray, k: int, mu: np.ndarray) -> np.ndarray:
    """P_bar_g [S_g, S_g] for mu [S_g, S_l] (validated pi_g int32 [S_g, N_F])."""
    mass = _action_mass(pi_g, k, log_or_minus_inf(mu), game.n_ag)
    return np.einsum("ga,gat->gt", mass, game.P_g)


PAIR_CHAIN_SQUARINGS = 64  # M = lazy chain ^ (2^64): the limit for any mixing time we can meet


def pair_chain_cost(sizes) -> tuple:
    """(bytes, flops) of one _stationary_conditional: dense (S_l S_g)^2 matrices (T, M, a product,
    the identity), PAIR_CHAIN_SQUARINGS squarings; checked before L-LEARN starts."""
    n_sg, _, n_sl, _ = sizes
    states = float(n_sl) * n_sg
    return 4 * 8 * states ** 2, PAIR_CHAIN_SQUARINGS * 2 * states ** 3


def check_pair_chain(sizes) -> None:
    """The pair chain's dense matrices against the memory budget (before L-LEARN, and by train up front)."""
    budget.require(f"L-LEARN's pair chain over {sizes[2]} x {sizes[0]} (s_l, s_g) states", pair_chain_cost(sizes)[0],
                   "use a model with fewer states")


def _stationary_conditional(game, P_fused, P_bar_g):
    """mu(.|s_g) [S_g, S_l] of the pair chain's limit law from mu0_l x mu0_g."""
    S_l, S_g = game.n_sl, game.n_sg
    check_pair_chain(game.sizes)
    T = np.einsum("gst,gh->sgth", P_fused, P_bar_g).reshape(S_l * S_g, S_l * S_g)
    M = 0.5 * (T + np.eye(S_l * S_g))
    for _ in range(PAIR_CHAIN_SQUARINGS):
        M = M @ M
        M /= M.sum(axis=1, keepdims=True)
    nu = (np.outer(game.mu0_l, game.mu0_g).ravel() @ M).reshape(S_l, S_g)
    marginal_g = nu.sum(axis=0)
    marginal_l = nu.sum(axis=1)
    mu = np.empty((S_g, S_l))
    for g in range(S_g):
        mu[g] = nu[:, g] / marginal_g[g] if marginal_g[g] > 1e-300 else marginal_l
    return mu / mu.sum(axis=1, keepdims=True)


def mean_field(game, pi_g, pi_l, k, tol, max_iterations):
    """(mu [S_g, S_l], P_bar_g, residual, iterations): the self-consistent mean field above (l_learn's mu_tol)."""
    P_fused, _ = fold_local_policy(game, pi_l)
    mu = np.tile(game.mu0_l, (game.n_sg, 1))
    damping, previous = 1.0, math.inf
    residual, iteration = math.inf, 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is reported after the loop
        P_bar_g = induced_global_transition(game, pi_g, k, mu)
        target = _stationary_conditional(game, P_fused, P_bar_g)
        residual = float(np.abs(target - mu).max())
        if residual <= tol:
            mu = target
            break
        if residual > previous:
            damping = max(damping / 2, 1 / 64)
        previous = residual
        mu = (1 - damping) * mu + damping * target
    return mu, induced_global_transition(game, pi_g, k, mu), residual, iteration


def _kernel(game, P_bar_g):
    """K[s, g, a, s', g'] = P_l(s'|s, g, a) P_bar_g(g'|g), flattened to [(s, g), a, (s', g')]."""
    S_l, S_g, A_l = game.n_sl, game.n_sg, game.n_al
    K = np.einsum("sgat,gh->sgath", game.P_l, P_bar_g)
    return K.reshape(S_l * S_g, A_l, S_l * S_g)


def _evaluate(K, r, policy, gamma):
    """V of a (stochastic) policy [(s, g), a] in the induced MDP, by one linear solve."""
    P = np.einsum("na,nam->nm", policy, K)
    return np.linalg.solve(np.eye(P.shape[0]) - gamma * P, np.einsum("na,na->n", policy, r))


def _best_response(game, P_bar_g, pi_l):
    """(pi, V, Q, V_population, residual, iterations) by policy iteration from pi_l's greedy policy."""
    n, A_l = game.n_sl * game.n_sg, game.n_al
    K, r, gamma = _kernel(game, P_bar_g), game.r_l.reshape(n, A_l), game.gamma
    population = pi_l.reshape(n, A_l)
    V_population = _evaluate(K, r, population, gamma)
    V = V_population
    action = np.full(n, -1)
    for iteration in range(1, _MAX_POLICY_ITERATIONS + 1):
        Q = r + gamma * K @ V
        greedy = Q.argmax(axis=1)
        if iteration > 1:
            keep = Q[np.arange(n), action] >= Q[np.arange(n), greedy] - _IMPROVE
            greedy = np.where(keep, action, greedy)
        if np.array_equal(greedy, action):
            break
        action = greedy
        V = _evaluate(K, r, np.eye(A_l)[action], gamma)
    Q = r + gamma * K @ V
    residual = float(np.abs(Q.max(axis=1) - V).max())
    shape = (game.n_sl, game.n_sg)
    return (np.eye(A_l)[action].reshape(game.n_sl, game.n_sg, A_l), V.reshape(shape),
            Q.reshape(game.n_sl, game.n_sg, A_l), V_population.reshape(shape), residual, iteration)


def _initial_gain(game, V_best, V_population) -> float:
    """E over s_l ~ mu0_l, s_g ~ mu0_g of V_best - V_population; exact, so only rounding is clipped."""
    return max(0.0, float(game.mu0_l @ (V_best - V_population) @ game.mu0_g))


def _inputs(source, pi_g, k, pi_l, pool, seed):
    k = integer(LearnError, "k", k, 1)
    game = as_game(source, integer(LearnError, "pool (sampler draws per pair)", pool, 1),
                   integer(LearnError, "seed", seed, 0))
    pi_l = uniform_local_policy(game) if pi_l is None else check_local_policy(game.sizes, pi_l, LearnError)
    pi_g = check_global_policy(game.sizes, pi_g, n_count_vectors(k, game.n_sl), LearnError, hint=FOR_THIS_K)
    return game, pi_g, k, pi_l


def l_learn(source, pi_g, k, pi_l=None, *, mu_tol=1e-12, mu_max_iterations=500,
            pool=DEFAULT_POOL, seed=0) -> LLearnResult:
    """Best response of one local agent to pi_g [S_g, N_F] while the population plays pi_l.

    pi_l (default uniform) is the population's local policy, which sets the mean
    field (module docstring); the result's `gain` is what one local gains over it.
    `pool`/`seed` only matter for a generative-sampler source (see source.py).
    """
    started = time.perf_counter()
    game, pi_g, k, pi_l = _inputs(source, pi_g, k, pi_l, pool, seed)
    mu_tol = as_float(LearnError, "mu_tol", mu_tol)
    mu_max_iterations = integer(LearnError, "mu_max_iterations", mu_max_iterations, 1)
    mu, P_bar_g, mu_residual, mu_iterations = mean_field(game, pi_g, pi_l, k, mu_tol, mu_max_iterations)
    best, V, Q, V_population, residual, iterations = _best_response(game, P_bar_g, pi_l)
    return LLearnResult(pi_l=best, V=V, Q=Q, P_bar_g=P_bar_g, mu=mu,
                        gain=_initial_gain(game, V, V_population), residual=residual,
                        policy_iterations=iterations, mu_residual=mu_residual,
                        mu_iterations=mu_iterations, mu_converged=mu_residual <= mu_tol,
                        seconds=time.perf_counter() - started)


def local_best_response_gain(game, pi_g, pi_l, k, *, pool=DEFAULT_POOL, seed=0) -> float:
    """How much one local agent gains by deviating from pi_l, given pi_g and the population on pi_l.

    gain = E[V*(s_l, s_g) - V^{pi_l}(s_l, s_g)], s_l ~ mu0_l, s_g ~ mu0_g, both
    values of the local reward r_l in the induced MDP of the mean field of
    (pi_g, pi_l) (module docstring), computed exactly (linear solves).
    """
    return l_learn(game, pi_g, k, pi_l, pool=pool, seed=seed).gain
