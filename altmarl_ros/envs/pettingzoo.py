"""PettingZoo ParallelEnv wrappers of a tabular model (`ModelEnv`) and of a simulator scenario (`SimEnv`).

Agents: "global" (the coordinator) and "local_0" .. "local_{n-1}".
  global   observes [s_g, q_0 .. q_{S_l-1}]: q is the count vector pi_g reads, the local states of a
           fresh uniform k-subset of the n locals (fresh observer, the paper's) or the filter
           observer's estimate rounded to `resolution` robots (core.observer); acts in Discrete(A_g).
  local_i  observes [s_i, s_g]; acts in Discrete(A_l).
Rewards, the game's (and the evaluators'): local_i gets r_l(s_i, s_g, a_i); the global agent gets
r_g(s_g, a_g) + (1/n) sum_i r_l(s_i, s_g, a_i), the term of the welfare sum_t gamma^t r_t that G-LEARN
maximises (infos["global"]["r_g"] holds r_g alone). The game is discounted and never ends: every
agent is truncated after `horizon` decision epochs; discounting is the learner's.

The stepping is the core's and the simulator's, not a copy: ModelEnv runs core.evaluate's
`start_population` / `step_population` (the evaluator's own draw, subset and transition kernels,
xoshiro256+ streams), SimEnv runs FleetSim.step_epoch with sim.rollout's subset and episode seeding,
and both feed the sample through core.observer's Observer. Seeding: reset(seed=s) starts the episode
that `rollout_welfare(seed=s, seeds=1, ...)` (ModelEnv) or `sim_rollout_welfare(seed=s, seeds=1, ...)`
(SimEnv) calls rollout 0; each reset() without a seed runs the next rollout (1, 2, ...). With the same
actions the evaluators' draws are the env's (test/test_pettingzoo.py replays them); before any seed,
fresh OS entropy.

pettingzoo and gymnasium are imported here only: the rest of the package does not need them.
"""
from __future__ import annotations

import numpy as np
from gymnasium.spaces import Discrete, MultiDiscrete
from pettingzoo import ParallelEnv

from altmarl_ros.core import budget
from altmarl_ros.core._checks import integer
from altmarl_ros.core.counts import rank
from altmarl_ros.core.evaluate import (check_rollout_size, cumulative, rollout_streams, start_population,
                                       step_population)
from altmarl_ros.core.model import MeanFieldGame, load_model
from altmarl_ros.core.observer import deployed_observer
from altmarl_ros.errors import LearnError
from altmarl_sim.fleet import FleetSim
from altmarl_sim.rollout import draw_local_actions, episode_start, sample_workers
from altmarl_sim.scenario import Scenario, load_scenario

GLOBAL_AGENT = "global"
# Per local agent: its name, its entries in the five per-step dicts and its observation row (measured:
# bench/bench_pettingzoo.py prints the peak per agent).
_BYTES_PER_AGENT = 1024


class EnvError(LearnError):
    """Bad arguments to an environment or bad actions; message "<field>: <detail>"."""


def local_agent(i: int) -> str:
    return f"local_{i}"


def _is_integer(action) -> bool:
    """A Python or numpy integer, as gymnasium's Discrete takes them (a bool counts as 0 or 1; a float does not)."""
    value = np.asarray(action)
    return value.shape == () and value.dtype.kind in "iub"


class _PopulationEnv(ParallelEnv):
    """The agents, spaces, action checks and per-step dicts both environments share. A subclass
    sets up an episode in `_start(seed, episode)` and runs one epoch in `_transition(a_g, actions)`,
    both leaving s_g in self._s_g, the local states in self._states and the k-sample's counts in
    self._sample; `_transition` returns (r_l per local [n], r_g)."""

    metadata = {"render_modes": [], "is_parallelizable": True}
    render_mode = None

    def __init__(self, sizes, n, k, horizon, observer, prediction):
        self.n = integer(EnvError, "n", n, 1)
        self.k = integer(EnvError, "k", k, 1)
        self.horizon = integer(EnvError, "horizon", horizon, 1)
        check_rollout_size(EnvError, self.n, self.horizon, 1, 1)
        if self.k > self.n:
            raise EnvError("k", f"k = {self.k} exceeds the number of local agents n = {self.n}: use k <= n")
        budget.require(f"an environment of n = {self.n} agents", float(self.n) * _BYTES_PER_AGENT,
                       "use a smaller n")
        n_sg, n_ag, n_sl, n_al = sizes
        self.sizes = sizes
        self.observer = deployed_observer(n_sg, n_sl, self.k, observer, prediction)
        K = self.observer.spec.resolution
        self._locals = [local_agent(i) for i in range(self.n)]
        self._local_set = frozenset(self._locals)
        self.possible_agents = [GLOBAL_AGENT] + self._locals
        self.agents = []
        self._global_spaces = (MultiDiscrete([n_sg] + [K + 1] * n_sl), Discrete(n_ag))
        # One space object for all locals (the API asks for the same object on every call, not one per agent).
        self._local_spaces = (MultiDiscrete([n_sl, n_sg]), Discrete(n_al))
        self.state_space = MultiDiscrete([n_sg] + [self.n + 1] * n_sl)
        self._seed = None
        self._episode = 0
        self._t = 0

    @classmethod
    def for_policy(cls, source, policy, **kwargs):
        """The environment a trained policy (core.policy.PolicyArtifact) is deployed in: its k, and its
        observer and prediction for the global agent's observation; other arguments as the constructor's."""
        return cls(source, k=policy.k, observer=policy.observer, prediction=policy.prediction, **kwargs)

    # -- the PettingZoo API -------------------------------------------------------

    def _spaces(self, agent):
        if agent == GLOBAL_AGENT:
            return self._global_spaces
        if agent in self._local_set:
            return self._local_spaces
        raise EnvError("agent", f"{agent!r} is not an agent of this environment "
                                f"('{GLOBAL_AGENT}' or 'local_0' .. 'local_{self.n - 1}')")

    def observation_space(self, agent):
        return self._spaces(agent)[0]

    def action_space(self, agent):
        return self._spaces(agent)[1]

    @property
    def observation_spaces(self) -> dict:
        return {agent: self.observation_space(agent) for agent in self.possible_agents}

    @property
    def action_spaces(self) -> dict:
        return {agent: self.action_space(agent) for agent in self.possible_agents}

    def reset(self, seed=None, options=None):
        """Start an episode (see the module docstring for seeding; `options` are not used)."""
        if seed is not None:
            self._seed, self._episode = integer(EnvError, "seed", seed, 0), 0
        elif self._seed is None:
            self._seed, self._episode = int(np.random.SeedSequence().entropy), 0
        else:
            self._episode += 1
        self.observer.reset()
        self._start(self._seed, self._episode)
        self._t = 0
        self.agents = list(self.possible_agents)
        return self._observe(), self._infos(None)

    def step(self, actions):
        """One decision epoch under every agent's action; all agents are truncated after `horizon`."""
        if not self.agents:
            raise EnvError("step", "the episode is over (or never started): call reset() first")
        a_g, local_actions = self._actions(actions)
        s_g = self._s_g
        self.observer.elapsed(s_g)  # the locals act under this s_g until the next decision
        r_l, r_g = self._transition(a_g, local_actions)
        self._t += 1
        observations = self._observe()
        rewards = {GLOBAL_AGENT: float(r_g + r_l.mean())}
        rewards.update(zip(self._locals, r_l.tolist()))
        over = self._t >= self.horizon
        terminations = dict.fromkeys(self.possible_agents, False)
        truncations = dict.fromkeys(self.possible_agents, over)
        infos = self._infos(float(r_g))
        if over:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """[s_g, count of locals in each state]: the whole population, for a centralised critic."""
        return np.concatenate([[self._s_g], np.bincount(self._states, minlength=self.sizes[2])]).astype(np.int64)

    # -- shared plumbing -----------------------------------------------------------

    def _actions(self, actions) -> tuple[int, np.ndarray]:
        if not isinstance(actions, dict):
            raise EnvError("actions", f"must be a dict agent -> action, got {type(actions).__name__}")
        try:
            a_g = actions[GLOBAL_AGENT]
            listed = [actions[agent] for agent in self._locals]
        except KeyError as missing:
            raise EnvError("actions", f"has no action for {missing.args[0]!r}: every agent acts every epoch") from None
        if len(actions) != len(self.possible_agents):
            unknown = next(agent for agent in actions if agent != GLOBAL_AGENT and agent not in self._local_set)
            raise EnvError("actions", f"names {unknown!r}, which is no agent of this environment")
        n_ag, n_al = self.sizes[1], self.sizes[3]
        if not _is_integer(a_g) or not 0 <= int(a_g) < n_ag:
            raise EnvError(f"actions['{GLOBAL_AGENT}']", f"must be an integer in 0..{n_ag - 1}, got {a_g!r}")
        try:
            local_actions = np.array(listed)
        except ValueError:  # ragged: some action is an array
            local_actions = None
        if local_actions is None or local_actions.shape != (self.n,) or local_actions.dtype.kind not in "iub":
            bad = next(agent for agent in self._locals if not _is_integer(actions[agent]))
            raise EnvError(f"actions['{bad}']", f"must be an integer in 0..{n_al - 1}, got {actions[bad]!r}")
        out = np.flatnonzero((local_actions < 0) | (local_actions >= n_al))
        if out.size:
            raise EnvError(f"actions['{self._locals[out[0]]}']",
                           f"must be an integer in 0..{n_al - 1}, got {local_actions[out[0]]}")
        return int(a_g), local_actions.astype(np.int64)

    def _observe(self) -> dict:
        """Every agent's observation, after the observer's decision on this epoch's sample."""
        query = self.observer.decide(self._sample)
        rows = np.empty((self.n, 2), np.int64)
        rows[:, 0] = self._states
        rows[:, 1] = self._s_g
        observations = {GLOBAL_AGENT: np.concatenate([[self._s_g], query]).astype(np.int64)}
        observations.update(zip(self._locals, rows))
        return observations

    def _infos(self, r_g):
        """Per agent: {} for the locals; for the global agent the observer's estimate mu (what q
        rounds) and, after a step, r_g alone."""
        infos = {GLOBAL_AGENT: {"estimate": self.observer.mu.copy()}}
        if r_g is not None:
            infos[GLOBAL_AGENT]["r_g"] = r_g
        infos.update((agent, {}) for agent in self._locals)
        return infos


class ModelEnv(_PopulationEnv):
    """n locals and the coordinator in a tabular MeanFieldGame (or a model file: core.model.load_model).

    Locals start iid from mu0_l and s_g from mu0_g (as rollout_welfare without dirichlet_alpha). `observer`
    (core.observer.ObserverSpec, default fresh) and `prediction` = (P_fused [S_g, S_l, S_l], mu0 [S_l]), which
    a filter needs (a filter policy's observer_P, observer_mu0), choose what the global agent observes.
    """

    def __init__(self, game, n: int = 1000, k: int = 10, horizon: int = 100, observer=None, prediction=None):
        if not isinstance(game, MeanFieldGame):
            game = load_model(game)
        self.game = game
        super().__init__(game.sizes, n, k, horizon, observer, prediction)
        self.metadata = {**self.metadata, "name": f"altmarl_model_{game.content_hash()}"}
        n_sg, _, n_sl, n_al = game.sizes
        # rows[s_g][s_l * A_l + a_l]: cumulative P_l(.|s_l, s_g, a_l), the evaluator's draw rows
        self._rows = np.ascontiguousarray(cumulative(game.P_l).transpose(1, 0, 2, 3).reshape(n_sg, n_sl * n_al, n_sl))
        self._rewards = np.ascontiguousarray(game.r_l.transpose(1, 0, 2).reshape(n_sg, n_sl * n_al))
        self._cum_g = cumulative(game.P_g)
        self._cum_g0, self._cum_l0 = cumulative(game.mu0_g), cumulative(game.mu0_l)
        self._states = np.zeros(self.n, np.int32)
        self._counts = np.zeros(n_sl, np.int64)
        self._sample = np.zeros(n_sl, np.int64)
        self._order = np.arange(self.n)
        self._stream = np.zeros(4, np.uint64)
        self._streams = None  # (seed, rollout_streams(seed, R)), R doubled as episodes go past it
        self._s_g = 0

    def _start(self, seed, episode):
        if self._streams is None or self._streams[0] != seed or episode >= len(self._streams[1]):
            self._streams = (seed, rollout_streams(seed, max(16, 2 * episode + 1)))
        self._stream[:] = self._streams[1][episode]
        self._s_g = int(start_population(self._cum_g0, self._cum_l0, self._states, self._counts, self._order,
                                         self.k, self._sample, self._stream))

    def _transition(self, a_g, local_actions):
        s_g = self._s_g
        codes = self._states * self.sizes[3] + local_actions
        r_l = self._rewards[s_g][codes]
        self._s_g = int(step_population(self._rows[s_g], codes, self._states, self._counts, self._cum_g[s_g, a_g],
                                        self._order, self.k, self._sample, self._stream))
        return r_l, float(self.game.r_g[s_g, a_g])


class SimEnv(_PopulationEnv):
    """n workers (locals) and the depot (the coordinator) in the kinematic simulator of a scenario
    (altmarl_sim.scenario: a Scenario, a name or a YAML path); one step is one FleetSim.step_epoch.

    s_l and s_g are zones; a local's action is 0 stay / 1 next / 2 previous zone, the depot's a zone.
    `np_random` is the episode's generator of the k-subsets (sim_rollout_welfare's rollout draws its
    workers' actions from it too: a policy that does the same replays it exactly).
    `observer`, `prediction`: as ModelEnv's.
    """

    def __init__(self, scenario, n: int | None = None, k: int = 10, horizon: int = 100, observer=None,
                 prediction=None, fleet=FleetSim):
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        self.scenario = scenario
        super().__init__(scenario.sizes, scenario.workers if n is None else n, k, horizon, observer, prediction)
        self.metadata = {**self.metadata, "name": f"altmarl_sim_{scenario.name}"}
        self._fleet = fleet
        self.sim = None
        self.np_random = None
        self._s_g = 0

    def _start(self, seed, episode):
        # = SeedSequence(seed).spawn(1)[0].spawn(episode + 1)[episode]: sim_rollout_welfare's rollout `episode`
        stream = np.random.SeedSequence(seed, spawn_key=(0, episode))
        self.sim, self.np_random = episode_start(self.scenario, self.n, stream, self._fleet)
        self._states, self._s_g = self.sim.zones(), self.sim.depot_zone()
        self._sample = sample_workers(self._states, self.k, self.sizes[2], self.np_random)[1]

    def _transition(self, a_g, local_actions):
        self._states, self._s_g, _ = self.sim.step_epoch(local_actions, a_g)
        self._sample = sample_workers(self._states, self.k, self.sizes[2], self.np_random)[1]
        return self.sim.last_local_rewards, float(self.sim.last_global_reward)


def policy_actions(policy, observations: dict, rng: np.random.Generator) -> dict:
    """The actions a trained policy (core.policy.PolicyArtifact) takes at one step's observations:
    the global agent's pi_g[s_g, rank(q)], each local's a_i ~ pi_l(.|s_i, s_g) drawn as the
    simulator's rollouts draw them (one uniform each from rng, in agent order). Every agent of
    `observations` must be live."""
    local_names = [agent for agent in observations if agent != GLOBAL_AGENT]
    seen = observations[GLOBAL_AGENT]
    states = np.fromiter((observations[agent][0] for agent in local_names), np.int64, len(local_names))
    s_g = int(seen[0])
    actions = {GLOBAL_AGENT: int(policy.pi_g[s_g, rank(seen[1:])])}
    actions.update(zip(local_names, draw_local_actions(cumulative(policy.pi_l), states, s_g, rng).tolist()))
    return actions
