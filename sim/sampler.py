"""SimSampler: the kinematic simulator as a generative model of the zone-level game.

A zone is not a Markov state of a robot: where a robot ends an epoch also depends
on where inside its zone it starts and how fast it is moving. Placing robots at rest
at a zone centre (fleet.epoch_from_rest) answers a different question than the fleet
asks while it is running (warehouse_ring_hard: "next" reaches the next zone from
rest at the centre in 94% of epochs, from the states of a running fleet in 43%;
warehouse_ring: 99% and 92%). So the sampler answers a query
(s, a) with a robot that IS in zone s in a running fleet:

- Two exploration pools of robots keep driving on the ring: a local pool whose
  robots take uniformly random local actions (stay / next / previous) and a global
  pool whose robots head for uniformly random zones, as the depot does under a
  uniformly random global action. All robots share the depot's limits and
  controller, so a pool robot moves exactly as the depot would.
- A query (s, a) is matched to a pool robot now in zone s that has spent at least
  `mixing_epochs` epochs exploring since it last answered a query (so its within-zone
  state is the pool's, not the previous query's); that robot takes the query's
  action for one decision epoch; the zone it ends in is the answer. Unmatched
  queries wait for the next epoch.
- The pools move with FleetSim's epoch driver (the kernel behind FleetSim.step_epoch:
  ring controller, limits, noise, stalls) with a free goal zone per robot, and start
  as FleetSim.reset places robots (at rest near a zone centre).

The simulator's workers do not interact with the depot or each other, so s_g does
not change a worker's motion; it enters the local reward only. Rewards follow the
scenario (sim/scenario.py Rewards): r_l = service * [s_l == s_g] - worker_energy *
metres driven, r_g = -depot_energy * metres driven, per decision epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from altmarl_ros.core._checks import integer
from altmarl_ros.core.sampler import require_tabulation
from altmarl_sim.ring import ACTION_ZONE_STEP, zone_of_pose
from altmarl_sim.fleet import drive_epoch, poses_at_rest
from altmarl_sim.scenario import Scenario, ScenarioError

DEFAULT_POOL_SIZE = 20000  # robots per pool: answers ~1300 queries per zone per epoch
DEFAULT_MIXING_EPOCHS = 2  # exploration epochs between two queries to the same robot
WARMUP_EPOCHS = 10  # from rest at the zone centres to the running fleet's state mix
STALLED_EPOCHS = 50  # epochs without one answer for a zone before giving up
DEFAULT_REWARD_SAMPLES = 1024  # per (s_l, s_g, a_l) / (s_g, a_g) for the expected rewards


class SamplerError(ScenarioError):
    """Bad arguments to the simulator sampler, or a zone its robots never reach."""


class _ExplorationPool:
    """`size` independent robots driving on the ring forever, moved by FleetSim's own
    epoch driver (fleet.drive_epoch: ring controller, limits, noise, stalls).

    `global_moves`: explore by heading for uniformly random zones (the depot's
    action set); otherwise by uniformly random local actions.
    """

    def __init__(self, scenario: Scenario, size: int, global_moves: bool, seed: int):
        self.scenario = scenario
        self.n_zones = scenario.ring.n_zones
        self.global_moves = global_moves
        self._rng = np.random.default_rng(seed)
        self.poses = poses_at_rest(scenario, np.arange(size) % self.n_zones, self._rng)
        self.velocities = np.zeros((size, 2))
        self.stall_remaining = np.zeros(size)
        self.rested = np.zeros(size, dtype=np.int64)  # exploration epochs since the last query
        for _ in range(WARMUP_EPOCHS):
            self.drive(self.exploration_goals(self.zones()))

    def zones(self) -> np.ndarray:
        return zone_of_pose(self.poses[:, 0], self.poses[:, 1], self.scenario.ring)

    def exploration_goals(self, zones: np.ndarray) -> np.ndarray:
        if self.global_moves:
            return self._rng.integers(0, self.n_zones, size=zones.shape[0])
        actions = self._rng.integers(0, ACTION_ZONE_STEP.shape[0], size=zones.shape[0])
        return (zones + ACTION_ZONE_STEP[actions]) % self.n_zones

    def drive(self, goals: np.ndarray) -> np.ndarray:
        """One decision epoch with every robot heading for its goal zone; metres each drove."""
        metres = np.empty(goals.shape[0])
        drive_epoch(self.scenario, self.poses, self.velocities, self.stall_remaining, goals,
                     np.uint64(self._rng.integers(0, 2**63, dtype=np.int64)), metres)
        return metres

    def answer(self, starts: np.ndarray, goals: np.ndarray, mixing: int, progress=None):
        """(end zone, metres) of one epoch for every query i: a robot now in zone
        starts[i], rested for >= `mixing` epochs, heading for zone goals[i]."""
        ends = np.empty(starts.shape[0], dtype=np.int64)
        metres = np.empty(starts.shape[0])
        pending = np.arange(starts.shape[0])
        idle = np.zeros(self.n_zones, dtype=np.int64)  # epochs each zone went unanswered
        while pending.size:
            zones = self.zones()
            epoch_goals = self.exploration_goals(zones)
            eligible = self.rested >= mixing
            robots, queries = [], []
            for zone in range(self.n_zones):
                waiting = pending[starts[pending] == zone]
                if not waiting.size:
                    continue
                free = self._rng.permutation(np.flatnonzero(eligible & (zones == zone)))
                matched = min(free.size, waiting.size)
                idle[zone] = 0 if matched else idle[zone] + 1
                if idle[zone] > STALLED_EPOCHS:
                    raise SamplerError(
                        "scenario", f"no robot of the exploration pool was in zone {zone} for "
                                    f"{STALLED_EPOCHS} epochs: the robots cannot reach it (check "
                                    f"robots.max_speed and timing.decision_epoch)")
                robots.append(free[:matched])
                queries.append(waiting[:matched])
            robots, queries = np.concatenate(robots), np.concatenate(queries)
            epoch_goals[robots] = goals[queries]
            driven = self.drive(epoch_goals)
            ends[queries] = self.zones()[robots]
            metres[queries] = driven[robots]
            self.rested += 1
            self.rested[robots] = 0
            pending = np.setdiff1d(pending, queries, assume_unique=True)
            if progress is not None:
                progress(starts.shape[0] - pending.size, starts.shape[0])
        return ends, metres


@dataclass(frozen=True)
class Tabulation:
    """Transition counts and summed rewards of a batch of sampler draws per pair."""

    local_counts: np.ndarray  # int64 [S_l, S_g, A_l, S_l']
    local_reward_sum: np.ndarray  # float64 [S_l, S_g, A_l]
    global_counts: np.ndarray  # int64 [S_g, A_g, S_g']
    global_reward_sum: np.ndarray  # float64 [S_g, A_g]


class SimSampler:
    """Generative sampler protocol (docs/architecture.md) backed by the kinematic simulator.

    `sample_local(s_l, s_g, a_l, rng)` / `sample_global(s_g, a_g, rng)` take int arrays
    and return the next zones; `draw_local` / `draw_global` also return each draw's
    reward. `r_l`, `r_g` are expected rewards estimated once, on first use, from
    `reward_samples` draws per pair. Deterministic for a given seed and call sequence.
    """

    def __init__(self, scenario: Scenario, seed: int = 0, pool_size: int = DEFAULT_POOL_SIZE,
                 mixing_epochs: int = DEFAULT_MIXING_EPOCHS,
                 reward_samples: int = DEFAULT_REWARD_SAMPLES):
        if not isinstance(scenario, Scenario):
            raise SamplerError("scenario", f"must be a Scenario (load_scenario), got "
                                           f"{type(scenario).__name__}")
        self.scenario = scenario
        self.seed = integer(SamplerError, "seed", seed, 0)
        self.pool_size = integer(SamplerError, "pool_size", pool_size, 2)
        self.mixing_epochs = integer(SamplerError, "mixing_epochs", mixing_epochs, 0)
        self.reward_samples = integer(SamplerError, "reward_samples", reward_samples, 1)
        self.sizes = scenario.sizes
        self.gamma = scenario.gamma
        self.mu0_g = scenario.mu0_g
        self.mu0_l = scenario.mu0_l
        self.name = scenario.name

    @cached_property
    def _local_pool(self) -> _ExplorationPool:
        return _ExplorationPool(self.scenario, self.pool_size, False, self.seed)

    @cached_property
    def _global_pool(self) -> _ExplorationPool:
        return _ExplorationPool(self.scenario, self.pool_size, True, self.seed + 1)

    def _states(self, name: str, values, n_states: int) -> np.ndarray:
        array = np.asarray(values)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise SamplerError(name, f"must be a 1-D integer array, got shape {array.shape} "
                                     f"dtype {array.dtype}")
        bad = np.flatnonzero((array < 0) | (array >= n_states))
        if bad.size:
            raise SamplerError(f"{name}[{bad[0]}]", f"must be in 0..{n_states - 1}, got {array[bad[0]]}")
        return array.astype(np.int64)

    def _batch(self, names, arrays, limits):
        arrays = [self._states(name, a, n) for name, a, n in zip(names, arrays, limits)]
        if len({a.shape[0] for a in arrays}) != 1:
            raise SamplerError(", ".join(names), f"must have equal lengths, got "
                                                 f"{[a.shape[0] for a in arrays]}")
        return arrays

    def draw_local(self, s_l, s_g, a_l, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(s_l' [B], r_l [B]) of one epoch for each worker query (s_l, s_g, a_l)."""
        n_sg, _, n_sl, n_al = self.sizes
        s_l, s_g, a_l = self._batch(("s_l", "s_g", "a_l"), (s_l, s_g, a_l), (n_sl, n_sg, n_al))
        goals = (s_l + ACTION_ZONE_STEP[a_l]) % n_sl
        ends, metres = self._local_pool.answer(s_l, goals, self.mixing_epochs, progress)
        return ends, self.scenario.rewards.local_reward(s_l == s_g, metres)

    def draw_global(self, s_g, a_g, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(s_g' [B], r_g [B]) of one epoch for each depot query (s_g, a_g)."""
        n_sg, n_ag, _, _ = self.sizes
        s_g, a_g = self._batch(("s_g", "a_g"), (s_g, a_g), (n_sg, n_ag))
        ends, metres = self._global_pool.answer(s_g, a_g, self.mixing_epochs, progress)
        return ends, self.scenario.rewards.depot_reward(metres)

    def sample_local(self, s_l, s_g, a_l, rng=None) -> np.ndarray:
        """Next worker zones. `rng` is accepted for the protocol; the pools carry their
        own streams, seeded by `seed`."""
        return self.draw_local(s_l, s_g, a_l)[0]

    def sample_global(self, s_g, a_g, rng=None) -> np.ndarray:
        """Next depot zones (see sample_local for `rng`)."""
        return self.draw_global(s_g, a_g)[0]

    @cached_property
    def _expected_rewards(self) -> tuple[np.ndarray, np.ndarray]:
        table = tabulate(self, self.reward_samples)
        return (table.local_reward_sum / self.reward_samples,
                table.global_reward_sum / self.reward_samples)

    @property
    def r_l(self) -> np.ndarray:
        return self._expected_rewards[0]

    @property
    def r_g(self) -> np.ndarray:
        return self._expected_rewards[1]


def check_tabulation(sizes, samples_per_pair: int) -> None:
    """The memory budget of tabulate (called before any draw, and by train before anything)."""
    require_tabulation(sizes, samples_per_pair,
                       f"estimating the model of a {sizes[2]}-zone scenario with {samples_per_pair} draws per pair",
                       "use fewer zones (zones.count) or --samples")


def tabulate(sampler: SimSampler, samples_per_pair: int, progress=None) -> Tabulation:
    """Draw `samples_per_pair` transitions of every (s_l, s_g, a_l) and every (s_g, a_g)
    in two batches; count the next states and sum the rewards. `progress(done, total)`
    is called as queries are answered."""
    samples_per_pair = integer(SamplerError, "samples_per_pair", samples_per_pair, 1)
    n_sg, n_ag, n_sl, n_al = sampler.sizes
    check_tabulation(sampler.sizes, samples_per_pair)
    local_shape, global_shape = (n_sl, n_sg, n_al), (n_sg, n_ag)
    local_pairs = np.repeat(np.arange(np.prod(local_shape)), samples_per_pair)
    global_pairs = np.repeat(np.arange(np.prod(global_shape)), samples_per_pair)
    total = local_pairs.size + global_pairs.size

    def report(offset):
        return None if progress is None else (lambda done, _: progress(offset + done, total))

    s_l, s_g, a_l = np.unravel_index(local_pairs, local_shape)
    ends, rewards = sampler.draw_local(s_l, s_g, a_l, progress=report(0))
    local_counts = np.bincount(local_pairs * n_sl + ends,
                               minlength=np.prod(local_shape) * n_sl).reshape(*local_shape, n_sl)
    local_rewards = np.bincount(local_pairs, rewards, np.prod(local_shape)).reshape(local_shape)
    g, a = np.unravel_index(global_pairs, global_shape)
    ends, rewards = sampler.draw_global(g, a, progress=report(local_pairs.size))
    global_counts = np.bincount(global_pairs * n_sg + ends,
                                minlength=np.prod(global_shape) * n_sg).reshape(*global_shape, n_sg)
    global_rewards = np.bincount(global_pairs, rewards, np.prod(global_shape)).reshape(global_shape)
    return Tabulation(local_counts, local_rewards, global_counts, global_rewards)
