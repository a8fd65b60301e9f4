"""The one registry of baselines: what each one deploys, defined once for every evaluator.

A baseline is the list of joint policies it chooses among (`candidates(game, k)`).
Whoever scores it (the tabular evaluator in core.evaluate, the continuous
simulator in altmarl_sim.rollout) passes its own `score(pi_g, pi_l, seed)`, and
the CLI, the sweep and the report read names and labels from here, so a new
baseline is one `register_baseline` call. One candidate is scored with `seed`;
among several, each is scored with `seed` and the best is re-scored with the
independent streams `seed + 1`, so picking the maximum does not bias its estimate.

Registries for other pluggable choices (e.g. how the coordinator turns its
k-samples into an estimate, core/observer.py) are built on the same `Registry` (core/registry.py).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.llearn import l_learn
from altmarl_ros.core.policy import uniform_local_policy
from altmarl_ros.core.registry import Registry, RegistryError  # noqa: F401 (RegistryError re-exported)


@dataclass(frozen=True)
class Candidate:
    """One joint policy a baseline may deploy; pi_g None = a uniformly random a_g every epoch."""

    pi_g: Optional[np.ndarray]  # int32 [S_g, N_F(k)]
    pi_l: np.ndarray  # float64 [S_l, S_g, A_l]
    detail: str = ""  # what it chose, e.g. "a_g = 2"


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str  # how figures and tables name it
    candidates: Callable  # (game, k) -> list[Candidate]
    blind: bool = False  # its a_g ignores F, so a tabular evaluator may run it at k = 1


BASELINES = Registry("baseline")


def register_baseline(name: str, label: str, candidates: Callable, blind: bool = False) -> Baseline:
    return BASELINES.register(name, Baseline(name, label, candidates, blind))


def scoring_runs(candidates) -> int:
    """Rollout batches `score_candidates` runs: each candidate, plus the winner's re-score."""
    return len(candidates) + (len(candidates) > 1)


def score_candidates(candidates, score: Callable, seed: int, announce=None):
    """The estimate (from `score(pi_g, pi_l, seed)`) of the best candidate, as the module says."""
    announce = announce or (lambda label: None)
    if len(candidates) == 1:
        only = candidates[0]
        return replace(score(only.pi_g, only.pi_l, seed), detail=only.detail)
    best = None
    for candidate in candidates:
        announce(candidate.detail)
        value = score(candidate.pi_g, candidate.pi_l, seed).mean
        if best is None or value > best[0]:
            best = (value, candidate)
    winner = best[1]
    announce(f"{winner.detail} re-scored")
    return replace(score(winner.pi_g, winner.pi_l, seed + 1), detail=winner.detail)


def _uniform_random(game, k):
    """Every agent, global and local, uniform at random."""
    return [Candidate(None, uniform_local_policy(game))]


def constant_global_candidates(game, k):
    """Each constant a_g with the locals' exact best response to it (a constant pi_g makes s_g
    an autonomous chain, so L-LEARN's induced MDP has no mean-field approximation)."""
    found = []
    for a_g in range(game.n_ag):
        pi_g = np.full((game.n_sg, n_count_vectors(k, game.n_sl)), a_g, np.int32)
        found.append(Candidate(pi_g, l_learn(game, pi_g, k).pi_l, f"a_g = {a_g}"))
    return found


EXACT_FEEDBACK_RULES = 1024  # |A_g|^|S_g| up to this: every feedback rule is valued; beyond, a local search


def _blind_table(game, k, rule) -> np.ndarray:
    """pi_g of a population-blind rule a_g = rule[s_g]: the same action in every count column."""
    return np.repeat(np.asarray(rule, np.int32)[:, None], n_count_vectors(k, game.n_sl), axis=1)


def blind_welfare(game, rule, pi_l, horizon: Optional[int] = None) -> float:
    """Exact expected welfare (sum_{t < horizon} gamma^t (r_g + mean r_l), any n; horizon None: infinite) of
    a_g = rule[s_g] with every local on pi_l. Exact because a population-blind rule makes s_g a Markov chain
    of its own (P_g does not read the population) and each local's (s_l, s_g) a Markov chain too, so both
    values are linear recursions."""
    rule = np.asarray(rule, np.int64)
    g = np.arange(game.n_sg)
    P = game.P_g[g, rule]  # [S_g, S_g']
    n_l, n_g = game.n_sl, game.n_sg
    P_local = np.einsum("lga,lgam->lgm", pi_l, game.P_l)  # [S_l, S_g, S_l']
    T = np.einsum("lgm,gh->lgmh", P_local, P).reshape(n_l * n_g, n_l * n_g)
    R = np.einsum("lga,lga->lg", pi_l, game.r_l).reshape(-1)
    V_g, V_l = _discounted(P, game.r_g[g, rule], game.gamma, horizon), _discounted(T, R, game.gamma, horizon)
    return float(game.mu0_g @ V_g + game.mu0_l @ V_l.reshape(n_l, n_g) @ game.mu0_g)


def _discounted(P, r, gamma, horizon):
    """sum_{t < horizon} gamma^t P^t r (horizon None: (I - gamma P)^-1 r)."""
    if horizon is None:
        return np.linalg.solve(np.eye(len(r)) - gamma * P, r)
    value = np.zeros(len(r))
    for _ in range(horizon):
        value = r + gamma * P @ value
    return value


def _feedback_value(game, k, rule):
    """(exact welfare, pi_l) of a feedback rule with the locals' exact best response to it."""
    pi_l = l_learn(game, _blind_table(game, k, rule), k).pi_l
    return blind_welfare(game, rule, pi_l), pi_l


def feedback_global_candidates(game, k):
    """The best population-blind feedback rule a_g = f(s_g) with the locals' exact best response, chosen by
    exact welfare (blind_welfare): every rule when |A_g|^|S_g| <= EXACT_FEEDBACK_RULES, else a local search
    (from each constant rule, change one state's action at a time while the welfare improves; a local
    optimum, documented as such). A constant is one such rule, so it is never below best_constant_global's
    choice by exact value."""
    rules = itertools.product(range(game.n_ag), repeat=game.n_sg)
    if game.n_ag ** game.n_sg <= EXACT_FEEDBACK_RULES:
        best = max(((rule, *_feedback_value(game, k, rule)) for rule in rules), key=lambda found: found[1])
        how = "every rule"
    else:
        best, how = None, "local search"
        seen = {}  # rule -> its value: the searches from different constants meet on the same rules

        def value_of(rule):
            if rule not in seen:
                seen[rule] = _feedback_value(game, k, rule)
            return seen[rule]

        for a_g in range(game.n_ag):
            rule = (a_g,) * game.n_sg
            value, pi_l = value_of(rule)
            improved = True
            while improved:
                improved = False
                for s_g, other in itertools.product(range(game.n_sg), range(game.n_ag)):
                    if other == rule[s_g]:
                        continue  # the rule itself
                    trial = rule[:s_g] + (other,) + rule[s_g + 1:]
                    trial_value, trial_pi_l = value_of(trial)
                    if trial_value > value + 1e-12:
                        rule, value, pi_l, improved = trial, trial_value, trial_pi_l, True
            if best is None or value > best[1]:
                best = (tuple(rule), value, pi_l)
    rule, value, pi_l = best
    return [Candidate(_blind_table(game, k, rule), pi_l,
                      f"a_g = f(s_g) = {list(rule)} ({how}, exact welfare {value:.3f})")]


register_baseline("uniform_random", "uniform random", _uniform_random, blind=True)
register_baseline("best_constant_global", "best constant global + local BR", constant_global_candidates,
                  blind=True)
register_baseline("best_feedback_global", "best s_g-feedback global + local BR", feedback_global_candidates,
                  blind=True)
