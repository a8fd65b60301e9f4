"""Deployed policies in the continuous simulator: welfare with n robots and fresh k-subsets.

Each decision epoch of a rollout (FleetSim.step_epoch underneath):
  zones of the n workers and the depot from their poses (altmarl_sim.ring);
  a fresh uniform k-subset of the workers (no replacement) -> count vector F;
  the policy's observer (core.observer) turns F into the count vector pi_g reads:
  F itself for fresh, the filtered estimate for filter, which predicts with the
  *estimated* tabular model while the robots move by the simulator (model mismatch);
  a_g = pi_g[s_g, rank(.)] (or a uniformly random zone for the random baseline);
  every worker draws a_i ~ pi_l(.|s_i, s_g); one epoch of kinematics;
  reward r = r_g + (1/n) sum_i r_l,i as FleetSim defines it.
The observer's estimation error is measured against the truth the simulator knows:
the total-variation distance between the estimate a decision used and the workers'
zone distribution at that decision, averaged over the decisions of a rollout (the
statistic core.evaluate reports for the tabular model).
A state request can lose replies and can go out early (`reply_loss`, `state_lead`; both 0
by default, which draws and reads exactly as without them): each sampled worker's reply
is lost with probability reply_loss and the decision uses those that arrived
(core.evaluate's rule: fresh without a reply keeps the last a_g, the first decision asks
again until a reply arrives); their zones are read state_lead control steps before the
epoch's end (FleetSim.step_epoch's read_zones; the first decision reads the start).
Welfare = sum_{t<horizon} gamma^t r_t from FleetSim.reset()'s start (the scenario's
mu0_l, mu0_g), mean +- 95% Student-t CI over seeds x rollouts independent runs, the
same statistic as altmarl_ros.core.evaluate, but with robots instead of the tabular
model: what the zone-level model leaves out (where in its zone a robot is, how fast
it moves, stalls) is in here.
"""
from __future__ import annotations

import time

import numpy as np

from altmarl_ros.core import budget
from altmarl_ros.core._checks import integer
from altmarl_ros.core.baselines import BASELINES, score_candidates
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.decision import Decider, FADecider, local_actions
from altmarl_ros.core.evaluate import WelfareEstimate, check_reply_loss, check_rollout_args, mean_ci95
from altmarl_ros.core.observer import Observer, deployed_observer
from altmarl_ros.core.fa_policy import FAPolicy
from altmarl_ros.core.observers import PAPER_OBSERVER, fresh
from altmarl_ros.core.policy import PolicyError, PolicyMismatch, build_policy
from altmarl_sim.continuous_ring import ContinuousRing
from altmarl_sim.fleet import BYTES_PER_ROBOT, FleetSim, check_lead
from altmarl_sim.sampler import SamplerError
from altmarl_sim.scenario import Scenario

# run_episode's arrays per robot (draw_local_actions): its uniform (float64), its action (int64) and a threshold
# (float64) per local action, n_al + 2 entries of 8 bytes, and a flag (bool) per local action; 16 bytes an entry,
# twice the 8 as BYTES_PER_ROBOT doubles the fleet's arrays, covers the flags and numpy's temporaries
EPISODE_BYTES_PER_ROBOT = 16


class RolloutError(SamplerError):
    """Bad arguments to a continuous-simulator rollout (policy shapes, counts, seeds)."""


def check_policy(scenario: Scenario, pi_g, pi_l, k: int, observer=None, prediction=None):
    """(pi_g int32 [S_g, N_F(resolution)] or None, pi_l float64 [S_l, S_g, A_l]) validated against
    the scenario's sizes and the observer spec (default fresh); pi_g None means a uniformly
    random global action every epoch."""
    n_sg, n_ag, n_sl, n_al = scenario.sizes
    pi_l = np.asarray(pi_l, dtype=np.float64)
    if pi_l.shape != (n_sl, n_sg, n_al):
        raise PolicyMismatch(f"pi_l has shape {pi_l.shape}; scenario {scenario.name} needs "
                             f"(n_sl, n_sg, n_al) = {(n_sl, n_sg, n_al)}")
    observer = fresh(k) if pi_g is None or observer is None else observer
    table = np.zeros((n_sg, n_count_vectors(k, n_sl)), np.int32) if pi_g is None else pi_g
    artifact = build_policy(table, pi_l, k, n_ag=n_ag, observer=observer,
                            prediction=prediction if observer.kind.predicts else None)
    return (None if pi_g is None else artifact.pi_g), artifact.pi_l


def running_observer(scenario: Scenario, k: int, observer=None, prediction=None) -> Observer:
    """The stateful observer a rollout runs (default fresh; a filter predicts with `prediction`)."""
    n_sg, _, n_sl, _ = scenario.sizes
    return deployed_observer(n_sg, n_sl, k, observer, prediction)


def load_scenario_policy(path, scenario: Scenario):
    """The policy file at `path` checked against `scenario`: a tabular policy on a zone scenario, an FA policy
    (core/fa_policy.py) on a continuous one (altmarl_sim.continuous_ring); what the nodes and the demo load."""
    if scenario.continuous is not None:
        from altmarl_ros.core.fa_policy import load_fa_policy

        policy = load_fa_policy(path, game=ContinuousRing(scenario))
        decider_of(policy, scenario)  # refused here, before a node or a demo starts, if no node can run it
        return policy
    from altmarl_ros.core.policy import load_policy

    return load_policy(path, scenario_hash=scenario.content_hash())


def decider_of(policy, scenario: Scenario):
    """The decider of a policy file's policy on `scenario`, the one the nodes and the rollouts run: a tabular
    policy's (its observer), or an FA policy's on the scenario's continuous ring (a fresh zone observer)."""
    if isinstance(policy, FAPolicy):
        if policy.observer.name != PAPER_OBSERVER:
            raise PolicyError(f"this FA policy reads its {policy.observer.name} observer's estimate; the fleet runs "
                              f"FA policies that read each decision's k samples: train one with `--observer "
                              f"{PAPER_OBSERVER}` (the default)")
        return FADecider(policy, ContinuousRing(scenario), running_observer(scenario, policy.k))
    return Decider.of_policy(policy)


def sample_workers(zones, k: int, n_sl: int, rng: np.random.Generator,
                   reply_loss: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, zone counts [n_sl]) of a fresh uniform k-subset of the workers (no replacement), less
    those whose reply is lost (each with probability reply_loss: k more uniforms, none at 0)."""
    sampled = rng.choice(zones.shape[0], size=k, replace=False)
    if reply_loss > 0.0:
        sampled = sampled[rng.random(k) >= reply_loss]
    return sampled, np.bincount(zones[sampled], minlength=n_sl)


def draw_local_actions(cum_pi_l, zones, s_g: int, rng: np.random.Generator) -> np.ndarray:
    """Each worker's action a_i ~ pi_l(.|s_i, s_g), one uniform each from rng in worker order
    (cum_pi_l: core.evaluate.cumulative(pi_l); the draw itself: core.decision.local_actions)."""
    return local_actions(cum_pi_l, zones, s_g, rng.random(zones.shape[0]))


def episode_start(scenario: Scenario, n: int, stream: np.random.SeedSequence, fleet=FleetSim):
    """(simulator, generator of its subsets and actions) of the rollout whose SeedSequence is `stream`."""
    sim_seed = int(stream.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return fleet(scenario, n=n, seed=sim_seed), np.random.default_rng(stream)


def run_episode(sim: FleetSim, pi_g, pi_l, k: int, horizon: int, rng: np.random.Generator,
                on_epoch=None, observer: Observer | None = None, errors: list | None = None,
                reply_loss: float = 0.0, state_lead: int = 0, replies: list | None = None) -> float:
    """Discounted return of one rollout from the sim's current state (arrays already
    checked). `on_epoch(sim, ids, a_g)` is called before every epoch is run, with the ids
    whose replies the decision used. `observer` (reset here; default: the paper's fresh
    sample) feeds pi_g. `errors`, if given, gets each decision's TV distance between the
    observer's estimate and the workers' zone distribution, `replies` each decision's
    number of replies (nothing when pi_g is None: no observer runs). `reply_loss` and
    `state_lead`: the module docstring."""
    n_sl = sim.scenario.ring.n_zones
    n_ag = sim.scenario.sizes[1]
    gamma = sim.scenario.gamma
    zones, s_g = sim.zones(), sim.depot_zone()
    read = zones  # what a state request reads: at the start, where the workers stand
    total, discount = 0.0, 1.0
    a_g = None
    if pi_g is not None:
        observer = observer or running_observer(sim.scenario, k)
        observer.reset()
    decider = Decider(pi_g, pi_l, observer)  # what the coordinator and the local agents run too
    for _ in range(horizon):
        if pi_g is None:
            sampled, _ = sample_workers(read, k, n_sl, rng)
            a_g = int(rng.integers(n_ag))
        else:
            sampled, counts = sample_workers(read, k, n_sl, rng, reply_loss)
            decision = decider.global_action(s_g, counts)
            while decision is None and a_g is None:  # no reply, no estimate: the first decision asks again
                sampled, counts = sample_workers(read, k, n_sl, rng, reply_loss)
                decision = decider.global_action(s_g, counts)
            if decision is not None:  # else fresh without a reply: no decision, the depot keeps its goal
                a_g = decision.action
            if errors is not None:
                errors.append(0.5 * float(np.abs(observer.mu - np.bincount(zones, minlength=n_sl) / sim.n).sum()))
            if replies is not None:
                replies.append(len(sampled))
            observer.elapsed(s_g)  # the workers act under this s_g until the next decision
        actions = draw_local_actions(decider.cum_pi_l, zones, s_g, rng)
        if on_epoch is not None:
            on_epoch(sim, sampled, a_g)
        zones, s_g, reward = sim.step_epoch(actions, a_g, state_lead)
        read = sim.read_zones
        total += discount * reward
        discount *= gamma
    return total


def _episodes(scenario: Scenario, n: int, seeds: int, rollouts: int, seed: int, fleet, progress):
    """(s, r, simulator, generator) of rollout r of seed s: SeedSequence(seed).spawn(seeds)[s].spawn(rollouts)[r],
    which is SeedSequence(seed, spawn_key=(s, r)), made when its turn comes (lists of them held ~470 bytes a seed
    or rollout that the budget does not count); `progress(done, total)` once the caller is done with each."""
    for s in range(seeds):
        for r in range(rollouts):
            sim, rng = episode_start(scenario, n, np.random.SeedSequence(seed, spawn_key=(s, r)), fleet)
            yield s, r, sim, rng
            if progress is not None:
                progress(s * rollouts + r + 1, seeds * rollouts)


def run_fa_episode(sim: FleetSim, decider: FADecider, horizon: int, rng: np.random.Generator,
                   on_epoch=None) -> float:
    """Discounted return of one rollout of an FA policy (decider_of) from the sim's current state, deciding as
    the nodes do: each epoch a fresh uniform k-subset of the workers (sample_workers), its zone counts and
    poses and the depot's zone -> a_g; every worker's zone and pose -> a_i (greedy); `on_epoch(sim, ids, a_g)`
    before every epoch runs."""
    gamma, n, n_sl = sim.scenario.gamma, sim.n, sim.scenario.sizes[2]
    total, discount = 0.0, 1.0
    decider.observer.reset()
    for _ in range(horizon):
        poses, zones, s_g = np.array(sim.poses), sim.zones(), sim.depot_zone()
        sampled, counts = sample_workers(zones, decider.policy.k, n_sl, rng)
        a_g = decider.global_action(s_g, counts, poses[sampled]).action
        actions = decider.local_actions(zones, s_g, None, poses[:n])
        if on_epoch is not None:
            on_epoch(sim, sampled, a_g)
        reward = sim.step_epoch(actions, a_g)[2]
        total += discount * reward
        discount *= gamma
    return total


def fa_sim_rollout_welfare(scenario: Scenario, decider, n: int = 1000, horizon: int = 100, seeds: int = 15,
                           rollouts: int = 50, seed: int = 0, progress=None, fleet=FleetSim) -> WelfareEstimate:
    """Welfare of an FA policy (its FADecider) in the simulator, on sim_rollout_welfare's streams: rollout r of
    seed s starts where, and draws the noise and stalls that, the tabular policies' rollout r of seed s does."""
    k = decider.policy.k
    k, n, horizon, seeds, rollouts, seed = check_rollout_args(RolloutError, k, n, horizon, seeds, rollouts, seed,
                                                              "workers")
    meta = decider.policy.meta  # the local network's float64 activations, every worker at once
    activations = 8 * (meta["inputs"]["local"] + sum(meta["hidden"]) + meta["n_al"])
    budget.require(f"simulator rollouts of n = {n} robots", (n + 1) * (BYTES_PER_ROBOT + activations)
                   + 8.0 * seeds * rollouts, "use a smaller --n")  # the returns (float64)
    returns = np.empty((seeds, rollouts))
    start = time.perf_counter()
    for s, r, sim, rng in _episodes(scenario, n, seeds, rollouts, seed, fleet, progress):
        returns[s, r] = run_fa_episode(sim, decider, horizon, rng)
    mean, ci = mean_ci95(returns)
    return WelfareEstimate(mean=mean, ci95=ci, returns=returns, agent_steps=seeds * rollouts * n * horizon,
                           seconds=time.perf_counter() - start)


def sim_rollout_welfare(scenario: Scenario, pi_g, pi_l, k: int, n: int = 1000, horizon: int = 100,
                        seeds: int = 15, rollouts: int = 50, seed: int = 0,
                        progress=None, observer=None, prediction=None, fleet=FleetSim,
                        reply_loss: float = 0.0, state_lead: int = 0) -> WelfareEstimate:
    """Welfare of (pi_g, pi_l) deployed in the continuous simulator; see the module docstring.

    `observer`: an ObserverSpec (default fresh); a filter predicts with `prediction` =
    (P_fused [S_g, S_l, S_l], mu0 [S_l]) of the model the policy was trained on (a
    filter PolicyArtifact's observer_P, observer_mu0). `reply_loss` in [0, 1) and
    `state_lead` in control steps (0 to the epoch's steps): the module docstring.

    Rollout r of seed s uses only SeedSequence(seed).spawn(seeds)[s].spawn(rollouts)[r]
    (the simulator's noise and the subsets and actions). `progress(done, total)` is
    called after every rollout. `fleet(scenario, n=, seed=)` builds each rollout's simulator:
    FleetSim, or a subclass that runs its epochs differently (experiments.actuation_lag).
    """
    k, n, horizon, seeds, rollouts, seed = check_rollout_args(RolloutError, k, n, horizon, seeds, rollouts, seed,
                                                              "workers")
    reply_loss = check_reply_loss(RolloutError, reply_loss)
    state_lead = check_lead(scenario, state_lead, RolloutError, "state_lead")
    if pi_g is not None and observer is not None and observer.kind.predicts and prediction is None:
        raise RolloutError("prediction", f"a {observer.name} observer needs the model it predicts with: "
                                         "pass (P_fused, mu0), e.g. the policy's observer_P, observer_mu0")
    pi_g, pi_l = check_policy(scenario, pi_g, pi_l, k, observer, prediction)
    budget.require(f"simulator rollouts of n = {n} robots", (n + 1) * (BYTES_PER_ROBOT + EPISODE_BYTES_PER_ROBOT
                                                                        * (scenario.sizes[3] + 2))
                   + 24.0 * seeds * rollouts, "use a smaller --n")  # returns, errors, replies (float64)
    running = None if pi_g is None else running_observer(scenario, k, observer, prediction)
    returns = np.empty((seeds, rollouts))
    errors = np.full((seeds, rollouts), np.nan)  # mean TV error of each rollout's estimates
    replies = np.full((seeds, rollouts), np.nan)  # mean replies per decision
    start = time.perf_counter()
    for s, r, sim, rng in _episodes(scenario, n, seeds, rollouts, seed, fleet, progress):
        decisions, heard = [], []
        returns[s, r] = run_episode(sim, pi_g, pi_l, k, horizon, rng, observer=running, errors=decisions,
                                    reply_loss=reply_loss, state_lead=state_lead, replies=heard)
        if decisions:
            errors[s, r], replies[s, r] = np.mean(decisions), np.mean(heard)
    seconds = time.perf_counter() - start
    mean, ci = mean_ci95(returns)
    return WelfareEstimate(mean=mean, ci95=ci, returns=returns,
                           agent_steps=seeds * rollouts * n * horizon, seconds=seconds,
                           estimation_error=float(errors.mean()), replies=float(replies.mean()))


def starting_like(start_seed: int, fleet=FleetSim):
    """A `fleet` factory for sim_rollout_welfare: every rollout starts where fleet(seed=start_seed) starts
    (the ROS fleet_sim node of that seed) and draws its own noise, stalls, subsets and actions."""
    starts = {}

    def build(scenario: Scenario, n: int, seed: int) -> FleetSim:
        if n not in starts:
            starts[n] = np.array(fleet(scenario, n=n, seed=start_seed).poses)
        sim = fleet(scenario, n=n, seed=seed)
        sim.start_from(starts[n])
        return sim
    return build


def same_noise_as(fleet_seed: int, fleet=FleetSim):
    """A `fleet` factory for sim_rollout_welfare: every rollout's simulator is fleet(seed=fleet_seed), so it
    starts where the ROS fleet_sim node of that seed starts and draws that node's stalls and actuation noise
    (FleetSim: both driving modes share them). The rollouts differ only in their k-subsets and local
    actions: the offline twin of one ROS run, whose paired gap is the deployment's alone."""
    fleet_seed = integer(RolloutError, "fleet_seed", fleet_seed, 0)

    def build(scenario: Scenario, n: int, seed: int) -> FleetSim:
        return fleet(scenario, n=n, seed=fleet_seed)
    return build


def best_blind_constant(scenario: Scenario, game, k: int, start_seed: int, **rollout_args):
    """(the best constant a_g, its WelfareEstimate from FleetSim(start_seed)'s start): the constant is
    chosen by welfare from random starts, as a population-blind dispatcher that does not know the start
    must be; choosing it on the start's own rollouts would let it see the start (and favour it by taking
    the best of |A_g| noisy means). rollout_args as sim_rollout_welfare's (n, horizon, rollouts, ...)."""
    from dataclasses import replace

    from altmarl_ros.core.baselines import constant_global_candidates

    candidates = constant_global_candidates(game, k)
    chosen = max(candidates, key=lambda c: sim_rollout_welfare(scenario, c.pi_g, c.pi_l, k, **rollout_args).mean)
    estimate = sim_rollout_welfare(scenario, chosen.pi_g, chosen.pi_l, k, fleet=starting_like(start_seed),
                                   **rollout_args)
    return chosen, replace(estimate, detail=chosen.detail)


def policy_sim_welfare(scenario: Scenario, policy, **rollout_args) -> WelfareEstimate:
    """sim_rollout_welfare of a PolicyArtifact under the observer it records; fa_sim_rollout_welfare of an FA
    policy (its decider_of), so a caller (the demo) scores either kind of policy file the same way."""
    if isinstance(policy, FAPolicy):
        return fa_sim_rollout_welfare(scenario, decider_of(policy, scenario), **rollout_args)
    return sim_rollout_welfare(scenario, policy.pi_g, policy.pi_l, policy.k, observer=policy.observer,
                               prediction=policy.prediction, **rollout_args)


def sim_baselines(scenario: Scenario, game, k: int, names=None, progress=None, announce=None,
                  **rollout_args) -> dict:
    """name -> WelfareEstimate in the continuous simulator of the registered baselines
    (core.baselines; default all), their candidates built on `game` at this k.
    `announce(label)` is called before each run, `progress` is passed on to
    sim_rollout_welfare."""
    names = BASELINES.check(BASELINES if names is None else names, RolloutError)
    announce = announce or (lambda label: None)
    seed = rollout_args.pop("seed", 0)
    rollout_args["progress"] = progress

    def score(pi_g, pi_l, stream_seed):
        return sim_rollout_welfare(scenario, pi_g, pi_l, k, seed=stream_seed, **rollout_args)

    found = {}
    for name in names:
        announce(name)
        found[name] = score_candidates(BASELINES[name].candidates(game, k), score, seed,
                                       lambda detail, name=name: announce(f"{name}: {detail}"))
    return found
