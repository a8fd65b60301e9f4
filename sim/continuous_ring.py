"""The continuous ring: a ring scenario as a ContinuousGame (core/continuous.py) whose local state is a
robot's position along the ring, not its zone.

A scenario with a `continuous:` section (config/scenarios/warehouse_ring_continuous.yaml) is its
tabular twin's world observed differently: same robots, controller, noise, stalls, rewards and
timing, same actions (a worker's stay / next / previous zone, the depot's goal zone), so the two
policies are scored in the same FleetSim and compared on the same streams.

State of one robot, a float32 vector (`STATE`): x, y, yaw, v, w, stall seconds left, metres it
drove in the epoch that just ended, zone. The physics of an epoch is the simulator's own kernel
(altmarl_sim.fleet.drive_epoch, numba), so the FA learners' JAX rollouts cannot drift from FleetSim:
under numpy `next_local` calls it directly, under JAX through `jax.pure_callback` (batched over the
vmapped rollouts). The noise the learners hand in (one uniform per robot) is hashed into the epoch's
kernel seed; the robots' streams are then the kernel's counter streams.

Rewards are FleetSim's (Rewards.epoch): service if a worker starts the epoch in the depot's zone, less
energy per metre. A ContinuousGame's reward is a function of (state, action), but metres are known only
after the epoch, so the state carries the last epoch's metres and the reward charges them one epoch
late, divided by gamma: sum_t gamma^t r_t is then the true discounted return except the last epoch's
energy (returns-to-go credit each action with its own epoch's cost at the right discount).

What the agents read (from x, y alone, so a node that knows only poses computes the same features):
- a local: one-hot of its zone, of the depot's zone and of its zone relative to the depot's, and its
  offset within its zone (arc fraction in zone widths, centred: [-1/2, 1/2));
- the global agent: one-hot of the depot's zone and the normalised histogram of its k samples'
  arc fractions in `bins_per_zone` bins per zone. The zone counts the tabular policy reads are sums
  of these bins, so the FA policy can represent any tabular zone policy, and it also sees where in
  their zones the samples stand (about to leave, or to arrive).
Speed is not a feature: a worker at rest at an epoch's start is the common case (the controller
arrives within an epoch), and the policy acts once per epoch on where it stands.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from altmarl_ros.core.continuous import ContinuousGame, one_hot
from altmarl_sim.estimate import estimate_model
from altmarl_sim.fleet import drive_epoch, poses_at_rest
from altmarl_sim.ring import ACTION_ZONE_STEP, N_LOCAL_ACTIONS, zones_of_xy
from altmarl_sim.scenario import Scenario, ScenarioError

STATE = ("x", "y", "yaw", "v", "w", "stall", "metres", "zone")
FEATURES_VERSION = 1


def robot_states(poses, zones) -> np.ndarray:
    """[..., 8] float32 states of robots at rest at `poses` [..., 3] in `zones` [...]."""
    poses = np.asarray(poses)
    state = np.zeros((*poses.shape[:-1], len(STATE)), np.float32)
    state[..., :3] = poses
    state[..., 7] = zones
    return state


class ContinuousRing(ContinuousGame):
    """A continuous scenario (its `continuous:` section) as a ContinuousGame; see the module docstring."""

    noise_kind = "uniform"
    state_dtype = np.float32
    state_shape = (len(STATE),)

    def __init__(self, scenario: Scenario):
        if not isinstance(scenario, Scenario) or scenario.continuous is None:
            raise ScenarioError("continuous", f"scenario {getattr(scenario, 'name', scenario)!r} has no continuous "
                                              "section; add `continuous:` (docs/continuous.md, The continuous ring)")
        self.scenario = scenario
        settings = scenario.continuous
        self.name = scenario.name
        self.n_zones = scenario.ring.n_zones
        self.n_ag, self.n_al = self.n_zones, N_LOCAL_ACTIONS
        self.gamma = scenario.gamma
        self.bins = self.n_zones * settings.bins_per_zone
        self.default_n = settings.train_workers
        self.horizon_train, self.horizon_eval = settings.horizon_train, settings.horizon_eval
        rewards, timing = scenario.rewards, scenario.timing
        self.reward_span = rewards.service + rewards.worker_energy * scenario.limits.max_speed * timing.decision_epoch

    def identity(self) -> dict:
        return {"scenario": self.scenario.content_hash(), "bins_per_zone": self.scenario.continuous.bins_per_zone,
                "features": FEATURES_VERSION}

    # ------------------------------------------------------------------------------------ physics
    def epoch(self, states, goals, seed) -> np.ndarray:
        """Next states [..., 8] of robots `states` [..., 8] driving one epoch to zones `goals` [...] with the
        kernel's streams of `seed` (robot i of the flattened batch: stream (seed, i), as FleetSim's workers)."""
        states = np.asarray(states, np.float64)
        shape = states.shape[:-1]
        flat = states.reshape(-1, len(STATE))
        poses, velocities, stall = flat[:, :3].copy(), flat[:, 3:5].copy(), flat[:, 5].copy()
        travelled = np.empty(flat.shape[0])
        drive_epoch(self.scenario, poses, velocities, stall, np.asarray(goals, np.int64).reshape(-1), seed, travelled)
        zones = np.empty(flat.shape[0], np.int64)
        zones_of_xy(poses[:, 0], poses[:, 1], self.n_zones, zones)
        out = np.concatenate([poses, velocities, stall[:, None], travelled[:, None], zones[:, None]], axis=1)
        return out.astype(np.float32).reshape(*shape, len(STATE))

    def _epoch_of_noise(self, states, goals, noise) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(np.asarray(noise).tobytes(), digest_size=8).digest(), "little") >> 1
        return self.epoch(states, goals, np.uint64(seed))

    def _drive(self, states, goals, noise, xp):
        if xp is np:
            return self._epoch_of_noise(states, goals, noise)
        import jax

        return jax.pure_callback(self._epoch_of_noise, jax.ShapeDtypeStruct(states.shape, np.float32), states, goals,
                                 noise, vmap_method="broadcast_all")

    def zone_state(self, zone: int) -> np.ndarray:
        """A state [8] at rest at `zone`'s centre: the depot as the agents know it (by its zone, as in a
        GlobalCommand), which is all its features read."""
        centre = self.scenario.ring.zone_centres()[int(zone)]
        return robot_states([centre[0], centre[1], 0.0], zone)

    def tabular_model(self):
        """The scenario's estimated zone model (altmarl_sim.estimate, cached in runs/<scenario>/): its s_g is the
        depot's zone and its a_g the zone the depot heads for, as here."""
        return estimate_model(self.scenario)[0]

    def tabular_global_states(self) -> np.ndarray:
        """The depot at each zone's centre (zone_state), one per s_g of tabular_model()."""
        return np.stack([self.zone_state(zone) for zone in range(self.n_zones)])

    def zone(self, s, xp=np):
        """The zone a state records (index 7), as integers."""
        return s[..., 7].astype(xp.int32)

    def next_local(self, s_l, s_g, a_l, noise, xp=np):
        goals = (self.zone(s_l, xp) + xp.asarray(ACTION_ZONE_STEP, dtype=xp.int32)[a_l]) % self.n_zones
        return self._drive(s_l, goals, noise, xp)

    def next_global(self, s_g, a_g, noise, xp=np):
        return self._drive(s_g, xp.asarray(a_g, dtype=xp.int32), noise, xp)

    def reward_local(self, s_l, s_g, a_l, xp=np):
        rewards = self.scenario.rewards
        served = (self.zone(s_l, xp) == self._broadcast_global(self.zone(s_g, xp), s_l.ndim - 1)).astype(xp.float32)
        return rewards.service * served - rewards.worker_energy * s_l[..., 6] / self.gamma

    def reward_global(self, s_g, a_g, xp=np):
        return -self.scenario.rewards.depot_energy * s_g[..., 6] / self.gamma

    # ----------------------------------------------------------------------------------- features
    def arc(self, s, xp=np):
        """Position along the ring as a fraction of a turn in [0, 1), counter-clockwise from +x."""
        turn = xp.arctan2(s[..., 1], s[..., 0]) / (2 * math.pi)
        return turn - xp.floor(turn)

    def _zone_and_offset(self, s, xp):
        scaled = self.arc(s, xp) * self.n_zones
        zone = xp.clip(xp.floor(scaled), 0, self.n_zones - 1)
        return zone.astype(xp.int32), (scaled - zone - 0.5).astype(xp.float32)

    @staticmethod
    def _broadcast_global(value, ndim: int):
        """A global quantity [...] against a local one of `ndim` dims [..., n] (a trailing axis added when
        the global one has the locals' leading dims only)."""
        return value[..., None] if value.ndim < ndim else value

    def summary(self, sampled, xp=np):
        """Normalised histogram [..., bins] of the k sampled positions [..., k, >= 2]."""
        bins = xp.clip(xp.floor(self.arc(sampled, xp) * self.bins), 0, self.bins - 1).astype(xp.int32)
        return one_hot(bins, self.bins, xp).mean(axis=-2)

    def global_state_features(self, s_g, xp=np):
        return one_hot(self._zone_and_offset(s_g, xp)[0], self.n_zones, xp)

    def local_features(self, s_l, s_g, xp=np):
        zone, offset = self._zone_and_offset(s_l, xp)
        depot = xp.broadcast_to(self._broadcast_global(self._zone_and_offset(s_g, xp)[0], zone.ndim), zone.shape)
        return xp.concatenate([one_hot(zone, self.n_zones, xp), one_hot(depot, self.n_zones, xp),
                               one_hot((zone - depot) % self.n_zones, self.n_zones, xp), offset[..., None]], axis=-1)

    def summary_size(self, k: int) -> int:
        return self.bins

    # --------------------------------------------------------------------------------------- start
    def initial(self, rng: np.random.Generator, n: int, batch: int):
        """FleetSim.reset's start: zones from mu0_l / mu0_g, at rest near the zone centres."""
        scenario = self.scenario
        zones = rng.choice(self.n_zones, size=(batch, n + 1), p=scenario.mu0_l)
        zones[:, n] = rng.choice(self.n_zones, size=batch, p=scenario.mu0_g)
        poses = poses_at_rest(scenario, zones.reshape(-1), rng).reshape(batch, n + 1, 3)
        states = robot_states(poses, zones)
        return states[:, n], states[:, :n]
