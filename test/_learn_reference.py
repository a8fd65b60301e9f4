"""Brute-force references for the learner tests: exact k-agent surrogate and induced MDP.

Everything here enumerates: count vectors by itertools, next-count laws by
convolving multinomials outcome by outcome, policies one by one. Only `rank`
(tested on its own in test_counts) is shared with the code under test.
"""
import itertools
import math

import numpy as np
import pytest

from altmarl_ros.core.counts import rank
from altmarl_ros.core.model import make_game


def random_game(seed, n_sg=2, n_ag=2, n_sl=2, n_al=2, gamma=0.8):
    rng = np.random.default_rng(seed)
    return make_game(
        P_g=rng.dirichlet(np.ones(n_sg), size=(n_sg, n_ag)),
        P_l=rng.dirichlet(np.ones(n_sl), size=(n_sl, n_sg, n_al)),
        r_g=rng.uniform(0, 1, (n_sg, n_ag)),
        r_l=rng.uniform(0, 1, (n_sl, n_sg, n_al)),
        gamma=gamma,
        mu0_g=rng.dirichlet(np.ones(n_sg)),
        mu0_l=rng.dirichlet(np.ones(n_sl)),
    )


def random_local_policy(game, rng):
    """A random pi_l[s_l, s_g] (Dirichlet(1) over local actions); rng: a seed or a Generator, which it advances."""
    return np.random.default_rng(rng).dirichlet(np.ones(game.n_al), size=(game.n_sl, game.n_sg))


def module_game(game_seed, policy_seed, **sizes):
    """A test module's fixtures `game` (random_game(game_seed, **sizes)) and `pi_l` (its random_local_policy)."""
    @pytest.fixture(scope="module")
    def game():
        return random_game(game_seed, **sizes)

    @pytest.fixture(scope="module")
    def pi_l(game):
        return random_local_policy(game, policy_seed)

    return game, pi_l


def count_vectors(k, S):
    """All count vectors, row i at index rank(F)."""
    found = [F for F in itertools.product(range(k + 1), repeat=S) if sum(F) == k]
    out = np.zeros((len(found), S), np.int64)
    for F in found:
        out[rank(np.array(F))] = F
    return out


def multinomial_pmf(F, p):
    n = sum(F)
    value = math.factorial(n)
    for count, prob in zip(F, p):
        value = value / math.factorial(count) * prob ** count
    return value


def next_counts_law(F, P):
    """{F': Pr} when each of F[j] agents moves by row P[j] (sum of multinomials, by convolution)."""
    S = len(F)
    law = {tuple([0] * S): 1.0}
    for j in range(S):
        outcomes = [X for X in itertools.product(range(F[j] + 1), repeat=S) if sum(X) == F[j]]
        new = {}
        for base, p_base in law.items():
            for X in outcomes:
                key = tuple(b + x for b, x in zip(base, X))
                new[key] = new.get(key, 0.0) + p_base * multinomial_pmf(X, P[j])
        law = new
    return law


def exact_surrogate(game, pi_l, k):
    """(R [S_g, N_F, A_g], P [S_g, N_F, A_g, S_g, N_F]) of the exact k-agent surrogate MDP."""
    counts = count_vectors(k, game.n_sl)
    n_f = len(counts)
    P_fused = np.einsum("jga,jgat->gjt", pi_l, game.P_l)
    r_fused = np.einsum("jga,jga->gj", pi_l, game.r_l)
    R = np.zeros((game.n_sg, n_f, game.n_ag))
    P = np.zeros((game.n_sg, n_f, game.n_ag, game.n_sg, n_f))
    for g in range(game.n_sg):
        for f, F in enumerate(counts):
            R[g, f] = game.r_g[g] + F @ r_fused[g] / k
            for F_next, prob in next_counts_law(list(F), P_fused[g]).items():
                P[g, f, :, :, rank(np.array(F_next))] += prob * game.P_g[g]
    return R, P


def exact_Q(game, R, P, policy=None):
    """Q* (or Q^policy for int [S_g, N_F]) by value iteration to 1e-13."""
    Q = np.zeros_like(R)
    while True:
        if policy is None:
            V = Q.max(axis=2)
        else:
            V = np.take_along_axis(Q, policy[..., None], axis=2)[..., 0]
        Q_new = R + game.gamma * np.einsum("gfahe,he->gfa", P, V)
        if np.abs(Q_new - Q).max() < 1e-13:
            return Q_new
        Q = Q_new


def initial_weights(game, k):
    """w[g, f] = mu0_g(g) Multinomial(F_f; k, mu0_l)."""
    counts = count_vectors(k, game.n_sl)
    return np.outer(game.mu0_g, [multinomial_pmf(F, game.mu0_l) for F in counts])


def induced_mdp_values(game, P_bar_g, policy):
    """V [S_l, S_g] of a local policy [S_l, S_g, A_l] in the induced MDP, by a direct solve."""
    S_l, S_g = game.n_sl, game.n_sg
    P = np.einsum("sga,sgat,gh->sgth", policy, game.P_l, P_bar_g).reshape(S_l * S_g, S_l * S_g)
    r = np.einsum("sga,sga->sg", policy, game.r_l).ravel()
    return np.linalg.solve(np.eye(S_l * S_g) - game.gamma * P, r).reshape(S_l, S_g)


def all_deterministic_local_policies(game):
    eye = np.eye(game.n_al)
    for actions in itertools.product(range(game.n_al), repeat=game.n_sl * game.n_sg):
        yield eye[np.array(actions)].reshape(game.n_sl, game.n_sg, game.n_al)
