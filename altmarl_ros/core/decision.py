"""A policy that decides: the one deploy-time step the coordinator, the local agents and the rollouts share.

The ROS fleet and the offline evaluation in the simulator must make the same decision
from the same sample, so neither holds its own copy of it:
- the global agent: the k sampled counts -> the policy's observer -> the estimate
  rounded to its resolution -> rank -> a_g = pi_g[s_g, rank] (`Decider.global_action`);
- a local agent: a_i ~ pi_l(. | s_i, s_g) from one uniform each, against the cumulative
  pi_l with its last entry pinned to 1 (`local_actions`), so rounding never yields an
  action past the last.
nodes/coordinator.py and nodes/local_agents.py call it, and so does altmarl_sim.rollout
(test/test_decision.py feeds one sample sequence through the coordinator's and the
rollout's paths and gets the same actions).
An FA policy (core/fa_policy.py) on a continuous game decides through `FADecider` the same way:
the k sampled states (poses on the continuous ring) -> the game's summary -> the global network's
greedy a_g; each local's own state -> the local network's greedy a_i.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from altmarl_ros.core.counts import rank
from altmarl_ros.core.evaluate import cumulative
from altmarl_ros.core.observer import Observer, deployed_observer


class GlobalDecision(NamedTuple):
    action: int  # a_g
    query: np.ndarray  # the count vector pi_g was read at
    count_rank: int  # its rank: the pi_g column


def local_actions(cum_pi_l: np.ndarray, zones: np.ndarray, s_g: int, uniforms: np.ndarray) -> np.ndarray:
    """a_i ~ pi_l(. | zones[i], s_g) for each worker, from uniforms[i] (cum_pi_l = cumulative(pi_l))."""
    return (uniforms[:, None] >= cum_pi_l[zones, s_g]).sum(axis=1)


class Decider:
    """A policy's decisions at deploy time: its observer (stateful: reset, elapsed, resized) and both halves."""

    def __init__(self, pi_g: np.ndarray, pi_l: np.ndarray, observer: Observer):
        self.pi_g, self.observer = pi_g, observer
        self.cum_pi_l = cumulative(pi_l)

    @classmethod
    def of_policy(cls, policy) -> "Decider":
        """The decider of a PolicyArtifact, under the observer it records."""
        n_sg, _, n_sl, _ = policy.sizes
        prediction = None if policy.observer_P is None else (policy.observer_P, policy.observer_mu0)
        return cls(policy.pi_g, policy.pi_l, deployed_observer(n_sg, n_sl, policy.k, policy.observer, prediction))

    def global_action(self, s_g: int, counts: np.ndarray, states=None) -> Optional[GlobalDecision]:
        """The depot's action from the sampled counts (sum m <= k); None when the observer has nothing to
        decide on (no sample and no estimate yet). `states` as in local_actions."""
        query = self.observer.decide(counts)
        if query is None:
            return None
        count_rank = rank(query)
        return GlobalDecision(int(self.pi_g[s_g, count_rank]), query, count_rank)

    def local_actions(self, zones: np.ndarray, s_g: int, uniforms: np.ndarray, states=None) -> np.ndarray:
        """a_i ~ pi_l(. | zones[i], s_g); `states` (poses) are for FADecider's signature: zones are these states."""
        return local_actions(self.cum_pi_l, zones, s_g, uniforms)


class FADecider:
    """An FA policy's decisions at deploy time on a continuous game with zones (altmarl_sim.continuous_ring),
    greedy on both sides as it was scored. The zone counts of the k samples still go through a fresh observer
    (the policy's): they are what a GlobalCommand reports; the action reads the samples' states themselves."""

    def __init__(self, policy, game, observer: Observer):
        self.policy, self.game, self.observer = policy, game, observer

    def global_action(self, s_g: int, counts: np.ndarray, states) -> Optional[GlobalDecision]:
        """a_g from the depot's zone and the sampled robots' states [m, ...] (m <= k; their zone counts)."""
        query = self.observer.decide(counts)
        if query is None:
            return None
        action = self.policy.global_action(self.game, self.game.zone_state(s_g), states)
        return GlobalDecision(int(action), query, rank(query))

    def local_actions(self, zones: np.ndarray, s_g: int, uniforms: np.ndarray, states) -> np.ndarray:
        """Each robot's a_i from its own state (states [m, ...]) and the depot's zone (greedy: no uniforms)."""
        return self.policy.local_actions(self.game, states, self.game.zone_state(s_g))
