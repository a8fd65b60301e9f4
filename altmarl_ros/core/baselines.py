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


register_baseline("uniform_random", "uniform random", _uniform_random, blind=True)
register_baseline("best_constant_global", "best constant global + local BR", constant_global_candidates,
                  blind=True)
