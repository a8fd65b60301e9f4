"""Continuous-state games: a generative sampler of (s_g', s_l') for any n, beside the tabular MeanFieldGame.

A `ContinuousGame` states its dynamics and rewards as pure array functions that
take the array module `xp` (numpy, or jax.numpy inside the FA learners' jitted
rollouts) and the noise as an argument, so one definition serves the numpy
sampler below and the JAX simulator (core/fa_rollout.py) alike:

    next_global(s_g, a_g, noise, xp) -> s_g'        next_local(s_l, s_g, a_l, noise, xp) -> s_l'
    reward_global(s_g, a_g, xp)                     reward_local(s_l, s_g, a_l, xp)
    initial(rng, n, batch) -> (s_g [batch], s_l [batch, n])   (numpy; once per rollout)

`noise` is what `draw_noise` gives: standard normals or uniforms on [0, 1)
(`noise_kind`), one per state. What the learners read:

    global_state_features(s_g, xp)      [..., d_s]: the global agent's own state's features
    summary(sampled, xp)                [..., d_F]: e.g. a histogram of the k samples (or of any
                                        sampled states [..., m]: an observer's kept ones, core/fa_observer.py)
    local_features(s_l, s_g, xp)        [..., d_l]: a local agent's observation of (s_l, s_g)

As for the tabular protocol (core/sampler.py), `sample_global(s_g, a_g, rng)` and
`sample_local(s_l, s_g, a_l, rng)` draw next states from a numpy Generator.
`TabularGame` puts a `MeanFieldGame` behind this interface (integer states,
one-hot features), so the FA learners can be checked against G-LEARN/L-LEARN.
No JAX here: a node or a policy check never pays its import.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields

import numpy as np

from altmarl_ros.core import budget
from altmarl_ros.core._checks import integer
from altmarl_ros.core.counts import n_count_vectors, rank
from altmarl_ros.core.model import MeanFieldGame
from altmarl_ros.core.registry import Registry
from altmarl_ros.errors import LearnError, ModelError

NOISE_KINDS = ("normal", "uniform")


def one_hot(index, size: int, xp=np):
    """float one-hot of integer `index` [...] -> [..., size]."""
    return (index[..., None] == xp.arange(size)).astype(xp.float32)


class ContinuousGame:
    """The interface (module docstring). Subclasses set name, n_ag, n_al, gamma, noise_kind,
    state_dtype, default_n, reward_span, horizon_train/horizon_eval and the methods;
    `content_hash` (over `identity()`) names the game in policy files."""

    name = ""
    noise_kind = "normal"
    state_shape = ()  # trailing dims of one agent's state: () a number, (d,) a vector (altmarl_sim.continuous_ring)

    def draw_noise(self, rng: np.random.Generator, shape):
        return rng.standard_normal(shape) if self.noise_kind == "normal" else rng.random(shape)

    def sample_global(self, s_g, a_g, rng: np.random.Generator):
        s_g = np.asarray(s_g)
        return self.next_global(s_g, np.asarray(a_g), self.draw_noise(rng, s_g.shape), np)

    def sample_local(self, s_l, s_g, a_l, rng: np.random.Generator):
        s_l = np.asarray(s_l)
        return self.next_local(s_l, np.asarray(s_g), np.asarray(a_l), self.draw_noise(rng, s_l.shape), np)

    def content_hash(self) -> str:
        digest = hashlib.sha256(f"altmarl-continuous-v1:{type(self).__name__}".encode())
        digest.update(json.dumps(self.identity(), sort_keys=True).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class BimodalLine(ContinuousGame):
    """The authors' continuous environment ("Setup B", alternating-marl README): states on [low, high].

    s_g' = clip(s_g + steer (tau[a_g] - s_g) + sigma_g N(0,1)), tau = the histogram's bin centres;
    s_l' = clip(s_l + offsets[a_l] + sigma_l N(0,1));
    r_g = r_g_scale exp(-(s_g - tau[a_g])^2 / (2 r_g_sigma^2));
    r_l = align_scale exp(-(s_l - s_g)^2 / (2 align_sigma^2)) - move_cost |offsets[a_l]|.
    The global agent's summary is the normalised `bins`-bin histogram of its k samples.
    Start: s_g ~ U(start_s_g), and the locals in two clusters N(centre, cluster_sigma^2) at two
    distinct random bin centres, `majority` of them (int(majority n)) at the first, clipped.
    The README says "bimodal 55/45 cluster split"; the spread 0.18 and s_g ~ U(-1, 1) are what the
    authors' code (continuous_env.py) uses, as is the local step reading the current s_g (drift 0,
    so the order does not matter). `mode_bin` is the authors' privileged label: the initial
    population's most populated bin.
    """

    name: str = "setup_b"
    default_n: int = 500
    bins: int = 5
    low: float = -2.0
    high: float = 2.0
    offsets: tuple = (0.0, 0.05, -0.05)
    steer: float = 0.6
    sigma_g: float = 0.08
    sigma_l: float = 0.04
    r_g_scale: float = 5.0
    r_g_sigma: float = 0.30
    align_scale: float = 10.0
    align_sigma: float = 0.20
    move_cost: float = 5.0
    gamma: float = 0.95
    majority: float = 0.55
    cluster_sigma: float = 0.18
    start_s_g: tuple = (-1.0, 1.0)
    horizon_train: int = 40
    horizon_eval: int = 50

    noise_kind = "normal"
    state_dtype = np.float32

    @property
    def n_ag(self) -> int:
        return self.bins

    @property
    def n_al(self) -> int:
        return len(self.offsets)

    @property
    def targets(self) -> np.ndarray:
        edges = np.linspace(self.low, self.high, self.bins + 1)
        return 0.5 * (edges[:-1] + edges[1:])

    @property
    def reward_span(self) -> float:
        """max r_l - min r_l: the scale of default_eta (core/alternating.py)."""
        return self.align_scale + self.move_cost * max(abs(o) for o in self.offsets)

    def identity(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def next_global(self, s_g, a_g, noise, xp=np):
        target = xp.asarray(self.targets, dtype=xp.float32)[a_g]
        return xp.clip(s_g + self.steer * (target - s_g) + self.sigma_g * noise, self.low, self.high)

    def next_local(self, s_l, s_g, a_l, noise, xp=np):
        offset = xp.asarray(self.offsets, dtype=xp.float32)[a_l]
        return xp.clip(s_l + offset + self.sigma_l * noise, self.low, self.high)

    def reward_global(self, s_g, a_g, xp=np):
        target = xp.asarray(self.targets, dtype=xp.float32)[a_g]
        return self.r_g_scale * xp.exp(-(s_g - target) ** 2 / (2 * self.r_g_sigma ** 2))

    def reward_local(self, s_l, s_g, a_l, xp=np):
        cost = self.move_cost * xp.abs(xp.asarray(self.offsets, dtype=xp.float32)[a_l])
        return self.align_scale * xp.exp(-(s_l - s_g) ** 2 / (2 * self.align_sigma ** 2)) - cost

    def bin_of(self, s, xp=np):
        """Histogram bin of each state (the last bin holds `high` itself, as numpy.histogram's)."""
        width = (self.high - self.low) / self.bins
        return xp.clip(xp.floor((s - self.low) / width), 0, self.bins - 1).astype(xp.int32)

    def summary(self, sampled, xp=np):
        """Normalised histogram [..., bins] of the sampled states [..., k]."""
        return one_hot(self.bin_of(sampled, xp), self.bins, xp).mean(axis=-2)

    def global_state_features(self, s_g, xp=np):
        return xp.asarray(s_g, dtype=xp.float32)[..., None]

    def local_features(self, s_l, s_g, xp=np):
        s_g = xp.broadcast_to(xp.asarray(s_g, dtype=xp.float32), s_l.shape)
        return xp.stack([s_g, xp.asarray(s_l, dtype=xp.float32)], axis=-1)

    def summary_size(self, k: int) -> int:
        return self.bins

    def mode_bin(self, s_l):
        """The most populated bin of each population [..., n] (lowest bin on ties, as argmax)."""
        return np.argmax(one_hot(self.bin_of(np.asarray(s_l)), self.bins).sum(axis=-2), axis=-1)

    def initial(self, rng: np.random.Generator, n: int, batch: int):
        s_g = rng.uniform(*self.start_s_g, size=batch).astype(np.float32)
        first = rng.integers(self.bins, size=batch)
        second = (first + 1 + rng.integers(self.bins - 1, size=batch)) % self.bins  # distinct from first
        n_main = int(self.majority * n)
        centres = np.where(np.arange(n)[None, :] < n_main, self.targets[first][:, None],
                           self.targets[second][:, None])
        s_l = np.clip(centres + self.cluster_sigma * rng.standard_normal((batch, n)), self.low, self.high)
        return s_g, rng.permuted(s_l, axis=1).astype(np.float32)


class TabularGame(ContinuousGame):
    """A MeanFieldGame behind the continuous interface: integer states, uniform noise turned into
    next states by the inverse CDF, one-hot features (the global summary is the one-hot of
    rank(F), the k samples' count vector), so an FA learner can represent any tabular policy."""

    noise_kind = "uniform"
    state_dtype = np.int32

    def __init__(self, game: MeanFieldGame, default_n: int = 100, horizon_train: int = 40, horizon_eval: int = 50):
        if not isinstance(game, MeanFieldGame):
            raise LearnError("game", f"must be a MeanFieldGame, got {type(game).__name__}")
        self.game = game
        self.horizon_train = integer(LearnError, "horizon_train", horizon_train, 1)
        self.horizon_eval = integer(LearnError, "horizon_eval", horizon_eval, 1)
        self.name = game.name or "tabular"
        self.n_ag, self.n_al, self.gamma = game.n_ag, game.n_al, game.gamma
        self.default_n = integer(LearnError, "default_n", default_n, 1)
        self.reward_span = float(game.r_l.max() - game.r_l.min())
        self._cdf_g = np.cumsum(game.P_g, axis=-1)[..., :-1].astype(np.float32)
        self._cdf_l = np.cumsum(game.P_l, axis=-1)[..., :-1].astype(np.float32)
        self._ranks = {}

    def identity(self) -> dict:
        return {"model_hash": self.game.content_hash()}

    def next_global(self, s_g, a_g, noise, xp=np):
        return (noise[..., None] >= xp.asarray(self._cdf_g)[s_g, a_g]).sum(axis=-1).astype(xp.int32)

    def next_local(self, s_l, s_g, a_l, noise, xp=np):
        return (noise[..., None] >= xp.asarray(self._cdf_l)[s_l, s_g, a_l]).sum(axis=-1).astype(xp.int32)

    def reward_global(self, s_g, a_g, xp=np):
        return xp.asarray(self.game.r_g, dtype=xp.float32)[s_g, a_g]

    def reward_local(self, s_l, s_g, a_l, xp=np):
        return xp.asarray(self.game.r_l, dtype=xp.float32)[s_l, s_g, a_l]

    def global_state_features(self, s_g, xp=np):
        return one_hot(s_g, self.game.n_sg, xp)

    def local_features(self, s_l, s_g, xp=np):
        s_g = xp.broadcast_to(s_g, s_l.shape)
        return xp.concatenate([one_hot(s_l, self.game.n_sl, xp), one_hot(s_g, self.game.n_sg, xp)], axis=-1)

    def summary_size(self, k: int) -> int:
        return n_count_vectors(k, self.game.n_sl)

    def _rank_table(self, k: int) -> np.ndarray:
        """rank(F) at index sum_j F_j (k+1)^j: a lookup the jitted rollout can index."""
        if k not in self._ranks:
            n_sl = self.game.n_sl
            cells = (k + 1) ** n_sl
            budget.require(f"the rank table of count vectors of k = {k} over {n_sl} states", 4.0 * cells,
                           "TabularGame is for small models; use G-LEARN on larger ones")
            table = np.zeros(cells, np.int32)
            for cell in range(cells):
                F = np.array([(cell // (k + 1) ** j) % (k + 1) for j in range(n_sl)])
                if F.sum() == k:
                    table[cell] = rank(F)
            self._ranks[k] = table
        return self._ranks[k]

    def summary(self, sampled, xp=np):
        k = sampled.shape[-1]
        counts = one_hot(sampled, self.game.n_sl, xp).sum(axis=-2).astype(xp.int32)
        cell = (counts * xp.asarray((k + 1) ** np.arange(self.game.n_sl), dtype=xp.int32)).sum(axis=-1)
        return one_hot(xp.asarray(self._rank_table(k))[cell], self.summary_size(k), xp)

    def tabular_model(self) -> MeanFieldGame:
        """The tabular model of this game (what `global_init="best_feedback"` chooses its rule on)."""
        return self.game

    def tabular_global_states(self) -> np.ndarray:
        """The global state standing for each of tabular_model()'s s_g, in order: s_g itself."""
        return np.arange(self.game.n_sg, dtype=np.int32)

    def initial(self, rng: np.random.Generator, n: int, batch: int):
        s_g = rng.choice(self.game.n_sg, size=batch, p=self.game.mu0_g).astype(np.int32)
        return s_g, rng.choice(self.game.n_sl, size=(batch, n), p=self.game.mu0_l).astype(np.int32)


def continuous_model(name: str) -> ContinuousGame:
    """The built-in continuous model called `name` (CONTINUOUS_MODELS)."""
    if name not in CONTINUOUS_MODELS:
        raise ModelError("--model", f"{name!r} is neither a model file nor a built-in continuous model "
                                    f"({', '.join(CONTINUOUS_MODELS)})")
    return CONTINUOUS_MODELS[name]()


CONTINUOUS_MODELS = Registry("continuous model")
CONTINUOUS_MODELS.register("setup_b", BimodalLine)
