"""ALTERNATING-MARL with function approximation on a continuous game (core/continuous.py).

    pi_g, pi_l <- fresh networks (seeded)
    start (global_init "best_feedback", not in the paper; docs/continuous.md): pi_g <- cross-entropy fit to
                      the best_feedback_global baseline's rule a_g = f(s_g), chosen by exact welfare on the game's
                      tabular model (core/baselines.py); pi_l <- L-step(pi_g); the start pair is accepted
                      with its selection welfare and local gain (one more L-step, as a round's), so round 0 is
                      compared with it by the 2 eta rule (the tabular alternation's best-constant start,
                      core/alternating.py, carried over)
    round r: G-step:  pi_g <- g_iters TRPO steps of the global agent against pi_l (greedy locals),
                      on its observation (s_g features, summary of a fresh k-subset); reward: the
                      system's r_g + mean r_l. (global_rule "supervised": the authors' step instead,
                      cross-entropy on the privileged initial-mode label: a baseline, not a best response.)
                      Its samples are single starts, where every observer reads one k-sample: that network
                      is then deployed on the observer's estimate, a histogram of more samples.
             J_r <- welfare of (pi_g, pi_l) on the fixed selection rollouts (the same streams
                      every round, so consecutive rounds are compared on common random numbers)
             stop if r > 0 and J_r <= J_accepted + 2 eta: return the last accepted pair
             L-step:  pi_l' <- l_iters TRPO steps of the locals against pi_g (greedy global), each
                      step on `tracked` locals of every episode (all locals are exchangeable
                      representative agents: the others follow pi_l, sampled)
             local gain of (pi_g, pi_l): V_l(pi_l') - V_l(pi_l), one deviating local (ghosts,
                      core/fa_learn.py) against the fleet on pi_l, on the selection rollouts
             pi_l <- pi_l'
    after the last round, global gain of the returned pair: J(pi_g', pi_l) - J(pi_g, pi_l),
    pi_g' = one more G-step (TRPO) from pi_g; Nash gap = max(0, global gain, local gain) (a deviation
    can always keep its policy, so a step that made things worse bounds the gap by 0).

Every rollout (training, selection, the gains) runs the config's observer (core/fa_observer.py), so the
G-step trains pi_g on the estimate it will read deployed, and the L-step best-responds to that pi_g.

Both gains come from approximate best responses (a few trust-region steps), so they are
lower bounds on the true unilateral gains, with the selection rollouts' sampling noise.
eta defaults to core.alternating's rule ETA_C * span(r_l) / ((1 - gamma) sqrt(k)).
Deployed (evaluation, J, the gains), both networks act greedily, as the authors' evaluator.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np

from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.alternating import eta_from_span
from altmarl_ros.core.baselines import feedback_global_candidates
from altmarl_ros.core.evaluate import mean_ci95
from altmarl_ros.core.fa_learn import (RolloutSpec, TRPOSettings, advantages, critic_optimiser, discounted_to_go,
                                       fit_critic, init_mlp, rollouts, supervised_global, trpo_update,
                                       value_scale)
from altmarl_ros.core.fa_observer import FRESH, FAObserverSpec
from altmarl_ros.core.fa_policy import GLOBAL_INPUTS, global_observation, mlp_apply, observation_sizes
from altmarl_ros.errors import LearnError

GLOBAL_RULES = ("trpo", "supervised")
GLOBAL_INITS = ("random", "best_feedback")
FIT_CHUNK = 100  # epochs of the start's cross-entropy fit between checks of its greedy actions


@dataclass(frozen=True)
class FAConfig:
    """Training settings; defaults follow the authors' Setup B where they state one."""

    n: int | None = None  # locals in training rollouts (default: the game's, 500 for Setup B)
    hidden: tuple = (64, 64)  # authors: 2-layer MLPs, width 64, tanh
    rounds: int = 10  # authors: T_outer = 10
    eta: float | None = None
    global_rule: str = "trpo"
    global_inputs: str = "state+summary"
    observer: FAObserverSpec = FRESH  # what the global agent reads, in every rollout (core/fa_observer.py)
    g_iters: int = 5  # TRPO steps per G-step
    l_iters: int = 5  # TRPO steps per L-step (the authors take 1 per outer iteration)
    episodes: int = 120  # rollouts per TRPO step, either side (authors: 120 L-episodes)
    tracked: int = 16  # locals recorded per episode for the L-step
    horizon: int | None = None  # training rollouts (default: the game's horizon_train, 40)
    critic_epochs: int = 5  # authors: 5 critic epochs
    lr: float = 3e-3  # authors: Adam 3e-3 (critics; the supervised dispatcher)
    trpo: TRPOSettings = TRPOSettings()
    supervised_samples: int = 3000  # authors: 3000 G-samples per G-step, 20 epochs
    supervised_epochs: int = 20
    select_rollouts: int = 64  # selection rollouts for J_r and the gains
    gap: bool = True  # estimate the global gain of the returned pair (one more G-step)
    global_init: str = "random"  # random networks (the paper) or "best_feedback": start from that rule (above)
    init_epochs: int = 3000  # at most this many epochs of the start's fit (global_init "best_feedback")

    def to_json(self) -> dict:
        return {**{name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("trpo", "observer")},
                "hidden": list(self.hidden), "trpo": dict(self.trpo.__dict__), "observer": self.observer.to_meta()}


@dataclass(frozen=True)
class FARound:
    """One round. local_gain is NaN for a rejected round (its L-step does not run)."""

    round: int
    welfare: float
    welfare_ci: float
    local_gain: float
    accepted: bool
    g_info: dict
    l_info: dict
    seconds: float


@dataclass(frozen=True)
class FAResult:
    global_params: list = field(repr=False)
    local_params: list = field(repr=False)
    rounds: list = field(repr=False)
    eta: float
    converged: bool
    stop_reason: str
    welfare: float
    welfare_ci: float
    global_gain: float
    local_gain: float
    nash_gap: float
    seconds: float
    config: FAConfig
    start: dict | None = None  # global_init "best_feedback": the rule, its fit, the start pair's selection welfare


def check_config(game, k, config: FAConfig) -> FAConfig:
    """Every setting checked (LearnError naming it), n and horizon filled from the game."""
    k = integer(LearnError, "k", k, 1)
    n = game.default_n if config.n is None else integer(LearnError, "n", config.n, 1)
    if k > n:
        raise LearnError("k", f"is {k}, more than the n = {n} locals it samples from")
    for name in ("rounds", "g_iters", "l_iters", "episodes", "tracked", "critic_epochs", "supervised_samples",
                 "supervised_epochs", "select_rollouts", "init_epochs"):
        integer(LearnError, name, getattr(config, name), 1)
    if config.tracked > n:
        raise LearnError("tracked", f"is {config.tracked}, more than the n = {n} locals")
    if config.global_rule not in GLOBAL_RULES:
        raise LearnError("global_rule", f"is {config.global_rule!r}; use one of {GLOBAL_RULES}")
    if not isinstance(config.observer, FAObserverSpec):
        raise LearnError("observer", f"must be an FAObserverSpec (core/fa_observer.py), got {config.observer!r}")
    if config.global_inputs not in GLOBAL_INPUTS:
        raise LearnError("global_inputs", f"is {config.global_inputs!r}; use one of {GLOBAL_INPUTS}")
    if config.global_init not in GLOBAL_INITS:
        raise LearnError("global_init", f"is {config.global_init!r}; use one of {GLOBAL_INITS}")
    if config.global_init != "random" and (config.global_rule, config.global_inputs) != ("trpo", "state+summary"):
        raise LearnError("global_init", f"{config.global_init} fits a global network that reads its state; use it "
                                        "with the TRPO G-step (train --global-step trpo)")
    if config.global_init != "random" and not hasattr(game, "tabular_model"):
        raise LearnError("global_init", f"{config.global_init} chooses its rule on a tabular model of the game and "
                                        f"{game.name} has none; use --global-init {config.global_init} with a "
                                        "continuous scenario (--scenario warehouse_ring_continuous)")
    if not 1 <= len(config.hidden) <= 8 or any(integer(LearnError, "hidden", h, 1) > 4096 for h in config.hidden):
        raise LearnError("hidden", f"is {config.hidden!r}; use 1 to 8 widths in [1, 4096]")
    if config.eta is not None and as_float(LearnError, "eta", config.eta) < 0:
        raise LearnError("eta", f"must be >= 0, got {config.eta:g}")
    horizon = game.horizon_train if config.horizon is None else integer(LearnError, "horizon", config.horizon, 1)
    return replace(config, n=n, horizon=horizon, hidden=tuple(config.hidden))


def default_fa_eta(game, k: int) -> float:
    return eta_from_span(game.reward_span, game.gamma, k)


def best_feedback_rule(game, k: int) -> tuple:
    """(rule [S_g] int, detail): the best_feedback_global baseline's a_g = f(s_g) on game.tabular_model()."""
    candidate = feedback_global_candidates(game.tabular_model(), k)[0]
    return candidate.pi_g[:, 0].astype(np.int64), candidate.detail


def greedy_global(params, obs) -> np.ndarray:
    return np.asarray(jnp.argmax(mlp_apply(params, jnp.asarray(obs), jnp), axis=-1))


def k_subsets(rng: np.random.Generator, s_l, k: int):
    """A uniform k-subset (without replacement) of each row of s_l [batch, n]."""
    picked = np.argpartition(rng.random(s_l.shape), k - 1, axis=1)[:, :k]
    return np.take_along_axis(s_l, picked, axis=1)


def welfare_returns(game, k, params_g, params_l, *, n, horizon, rollouts_, seed, global_inputs="state+summary",
                    global_mode="greedy", local_mode="greedy", params_ghost=None, ghosts=0, observer=FRESH,
                    estimation_error=False) -> dict:
    """Discounted returns per rollout (float64) of the deployed pair on evaluation stream `seed`:
    {"welfare": [R]} and, with ghosts, {"ghost": [R], "real": [R]} (mean local returns of the
    ghosts and of the locals they copied at the start); with estimation_error, {"estimation_error": [R]}:
    each rollout's mean over steps of the total variation between what the global agent read (the
    observer's estimate) and the whole population's summary."""
    rng = np.random.default_rng([seed, 0xE7A1])
    s_g0, s_l0 = game.initial(rng, n, rollouts_)
    spec = RolloutSpec(n=n, k=k, horizon=horizon, global_mode=global_mode, local_mode=local_mode,
                       global_inputs=global_inputs, ghosts=ghosts, observer=observer,
                       record_estimate=estimation_error)
    out = rollouts(game, spec, params_g, params_l, jax.random.PRNGKey(seed), s_g0, s_l0, params_ghost)
    discount = game.gamma ** np.arange(horizon)
    found = {"welfare": np.asarray(out["reward"], np.float64) @ discount}
    if estimation_error:
        gap = np.asarray(out["estimate"], np.float64) - np.asarray(out["population"], np.float64)
        found["estimation_error"] = 0.5 * np.abs(gap).sum(axis=-1).mean(axis=-1)
    if ghosts:
        for key, name in (("r_ghost", "ghost"), ("r_real", "real")):
            found[name] = np.einsum("rtg,t->r", np.asarray(out[key], np.float64), discount) / ghosts
    return found


class _Learner:
    """One side: actor, critic, critic optimiser state."""

    def __init__(self, key, n_in: int, n_out: int, hidden, lr: float, scale: float):
        self.scale = scale
        k_actor, k_critic = jax.random.split(key)
        self.actor = init_mlp(k_actor, (n_in, *hidden, n_out))
        self.critic = init_mlp(k_critic, (n_in, *hidden, 1))
        self.optimiser = critic_optimiser(lr)
        self.opt_state = self.optimiser.init(self.critic)

    def trpo_step(self, obs, actions, returns, key, config: FAConfig) -> dict:
        returns = returns / self.scale
        adv = advantages(self.critic, obs, returns)
        self.actor, info = trpo_update(self.actor, obs, actions, adv, config.trpo)
        self.critic, self.opt_state, loss = fit_critic(self.critic, self.opt_state, obs, returns, key,
                                                       self.optimiser, config.critic_epochs)
        return {**{name: float(value) for name, value in info.items()},
                "critic_rmse": float(np.sqrt(loss)) * self.scale}


def _summarise(infos: list) -> dict:
    return {name: float(np.mean([info[name] for info in infos])) for name in infos[0]} if infos else {}


class FATrainer:
    def __init__(self, game, k: int, config: FAConfig, seed: int):
        self.game, self.k, self.config = game, k, config
        self.key = jax.random.PRNGKey(seed)
        self.rng = np.random.default_rng([seed, 0xFA11])
        sizes = observation_sizes(game, k, config.global_inputs)
        scale = value_scale(game)
        self.glob = _Learner(self._key(), sizes["global"], game.n_ag, config.hidden, config.lr, scale)
        self.loc = _Learner(self._key(), sizes["local"], game.n_al, config.hidden, config.lr, scale)
        self.supervised_opt = critic_optimiser(config.lr)
        self.supervised_state = self.supervised_opt.init(self.glob.actor)

    def _key(self):
        self.key, key = jax.random.split(self.key)
        return key

    def _spec(self, **kwargs) -> RolloutSpec:
        c = self.config
        return RolloutSpec(n=c.n, k=self.k, horizon=c.horizon, global_inputs=c.global_inputs, observer=c.observer,
                           **kwargs)

    def g_step(self, actor=None, critic_state=None) -> dict:
        """The G-step against the current locals (module docstring); returns its mean info."""
        c = self.config
        if c.global_rule == "supervised":
            s_g, s_l = self.game.initial(self.rng, c.n, c.supervised_samples)
            obs = global_observation(self.game, s_g, self.game.summary(k_subsets(self.rng, s_l, self.k)),
                                     c.global_inputs)
            labels = self.game.mode_bin(s_l)
            self.glob.actor, self.supervised_state, loss = supervised_global(
                self.glob.actor, self.supervised_state, jnp.asarray(obs), jnp.asarray(labels), self.supervised_opt,
                c.supervised_epochs)
            return {"cross_entropy": float(loss)}
        return self.trpo_g(c.g_iters)

    def rule_observations(self, rule, states) -> tuple:
        """(obs, labels): every tabular global state (`states`, one per s_g) paired with every summary the global
        agent read in a batch of rollouts of the current pair (both sampling), labelled rule[s_g]."""
        c = self.config
        s_g, s_l = self.game.initial(self.rng, c.n, c.episodes)
        out = rollouts(self.game, self._spec(global_mode="sample", local_mode="sample", record_global=True),
                       self.glob.actor, self.loc.actor, self._key(), s_g, s_l)
        features = self.game.global_state_features(states)
        summaries = np.asarray(out["obs_g"]).reshape(-1, out["obs_g"].shape[-1])[:, features.shape[-1]:]
        summaries = np.unique(summaries, axis=0)
        obs = np.concatenate([np.repeat(features, len(summaries), axis=0), np.tile(summaries, (len(states), 1))], 1)
        return obs.astype(np.float32), np.repeat(np.asarray(rule, np.int32), len(summaries))

    def fit_rule(self, obs, labels) -> dict:
        """Cross-entropy on (obs, labels) until the greedy global action is every label (LearnError naming
        init_epochs if it is not within them)."""
        opt = self.supervised_opt
        state, epochs = opt.init(self.glob.actor), 0
        while True:
            self.glob.actor, state, loss = supervised_global(self.glob.actor, state, jnp.asarray(obs),
                                                             jnp.asarray(labels), opt, FIT_CHUNK)
            epochs += FIT_CHUNK
            missed = int(np.sum(greedy_global(self.glob.actor, obs) != labels))
            if missed == 0:
                return {"cross_entropy": float(loss), "epochs": epochs, "observations": len(labels)}
            if epochs >= self.config.init_epochs:
                raise LearnError("init_epochs", f"{epochs} epochs left the global network off its rule on {missed} "
                                                f"of {len(labels)} observations; raise init_epochs")

    def trpo_g(self, iters: int) -> dict:
        c, infos = self.config, []
        spec = self._spec(global_mode="sample", record_global=True)
        for _ in range(iters):
            s_g, s_l = self.game.initial(self.rng, c.n, c.episodes)
            out = rollouts(self.game, spec, self.glob.actor, self.loc.actor, self._key(), s_g, s_l)
            returns = discounted_to_go(out["reward"], self.game.gamma)
            infos.append(self.glob.trpo_step(out["obs_g"].reshape(-1, out["obs_g"].shape[-1]),
                                             out["a_g"].reshape(-1), returns.reshape(-1), self._key(), c))
        return _summarise(infos)

    def l_step(self) -> dict:
        c, infos = self.config, []
        spec = self._spec(local_mode="sample", tracked=c.tracked)
        for _ in range(c.l_iters):
            s_g, s_l = self.game.initial(self.rng, c.n, c.episodes)
            out = rollouts(self.game, spec, self.glob.actor, self.loc.actor, self._key(), s_g, s_l)
            obs = jnp.swapaxes(out["obs_l"], 1, 2)  # [B, M, T, d]
            returns = discounted_to_go(jnp.swapaxes(out["r_l"], 1, 2), self.game.gamma)
            infos.append(self.loc.trpo_step(obs.reshape(-1, obs.shape[-1]), jnp.swapaxes(out["a_l"], 1, 2).reshape(-1),
                                            returns.reshape(-1), self._key(), c))
        return _summarise(infos)

    def select(self, params_g, params_l, params_ghost=None) -> dict:
        """Returns on the selection rollouts (the same streams every call)."""
        c = self.config
        return welfare_returns(self.game, self.k, params_g, params_l, n=c.n, horizon=self.game.horizon_eval,
                               rollouts_=c.select_rollouts, seed=SELECTION_SEED, global_inputs=c.global_inputs,
                               params_ghost=params_ghost, ghosts=0 if params_ghost is None else c.tracked,
                               observer=c.observer)


SELECTION_SEED = 2 ** 31 - 7  # evaluation streams 0, 1, ... are the protocol's; selection uses its own


def fa_alternating(game, k, config: FAConfig = FAConfig(), seed: int = 0, progress=None) -> FAResult:
    """ALTERNATING-MARL with FA learners (module docstring). `progress(round_log)` after every round."""
    started = time.perf_counter()
    seed = integer(LearnError, "seed", seed, 0)
    config = check_config(game, k, config)
    eta = default_fa_eta(game, k) if config.eta is None else float(config.eta)
    trainer = FATrainer(game, k, config, seed)
    log, accepted, start = [], None, None
    if config.global_init != "random":
        accepted, start = _start_from_rule(trainer, k)
    stop_reason = f"round cap ({config.rounds}) reached"
    for index in range(config.rounds):
        round_started = time.perf_counter()
        g_info = trainer.g_step()
        welfare, ci = mean_ci95(trainer.select(trainer.glob.actor, trainer.loc.actor)["welfare"])
        if accepted is not None and welfare <= accepted["welfare"] + 2 * eta:
            log.append(FARound(index, welfare, ci, float("nan"), False, g_info, {},
                               time.perf_counter() - round_started))
            stop_reason = (f"round {index} changed the selection welfare by {welfare - accepted['welfare']:+.4g} "
                           f"<= 2*eta = {2 * eta:.4g}")
            _report(progress, log)
            break
        old_locals = trainer.loc.actor
        l_info = trainer.l_step()
        found = trainer.select(trainer.glob.actor, old_locals, params_ghost=trainer.loc.actor)
        local_gain = float(np.mean(found["ghost"] - found["real"]))
        log.append(FARound(index, welfare, ci, local_gain, True, g_info, l_info, time.perf_counter() - round_started))
        _report(progress, log)
        accepted = dict(global_params=trainer.glob.actor, local_params=old_locals, welfare=welfare, ci=ci,
                        local_gain=local_gain, glob_critic=(trainer.glob.critic, trainer.glob.opt_state))
    global_gain = float("nan")
    if config.gap:
        trainer.loc.actor = accepted["local_params"]
        trainer.glob.actor = accepted["global_params"]
        trainer.glob.critic, trainer.glob.opt_state = accepted["glob_critic"]
        trainer.trpo_g(config.g_iters)
        better = mean_ci95(trainer.select(trainer.glob.actor, accepted["local_params"])["welfare"])[0]
        global_gain = better - accepted["welfare"]
    gains = [gain for gain in (global_gain, accepted["local_gain"]) if np.isfinite(gain)]
    return FAResult(
        global_params=_numpy(accepted["global_params"]), local_params=_numpy(accepted["local_params"]), rounds=log,
        eta=eta, converged=not stop_reason.startswith("round cap"), stop_reason=stop_reason,
        welfare=accepted["welfare"], welfare_ci=accepted["ci"], global_gain=global_gain,
        local_gain=accepted["local_gain"], nash_gap=max([0.0, *gains]) if gains else float("nan"),
        seconds=time.perf_counter() - started, config=config, start=start)


def _start_from_rule(trainer: FATrainer, k: int) -> tuple:
    """(accepted pair, start record): pi_g fitted to the best feedback rule, pi_l its L-step, before round 0
    (module docstring). The fit is checked again on the summaries the new locals give, and redone if needed,
    so that the locals' best response and the start's welfare are those of the rule's greedy actions. Then one
    more L-step measures the start pair's local gain, and round 0's G-step answers its locals, as after a round."""
    started = time.perf_counter()
    rule, detail = best_feedback_rule(trainer.game, k)
    states = trainer.game.tabular_global_states()
    obs, labels = trainer.rule_observations(rule, states)
    fits = [trainer.fit_rule(obs, labels)]
    l_info = trainer.l_step()
    more, more_labels = trainer.rule_observations(rule, states)
    obs, labels = np.concatenate([obs, more]), np.concatenate([labels, more_labels])
    fits.append(trainer.fit_rule(obs, labels))
    welfare, ci = mean_ci95(trainer.select(trainer.glob.actor, trainer.loc.actor)["welfare"])
    locals_ = trainer.loc.actor
    trainer.l_step()
    found = trainer.select(trainer.glob.actor, locals_, params_ghost=trainer.loc.actor)
    local_gain = float(np.mean(found["ghost"] - found["real"]))
    accepted = dict(global_params=trainer.glob.actor, local_params=locals_, welfare=welfare, ci=ci,
                    local_gain=local_gain, glob_critic=(trainer.glob.critic, trainer.glob.opt_state))
    start = {"global_init": trainer.config.global_init, "rule": [int(a) for a in rule], "detail": detail,
             "welfare": welfare, "welfare_ci": ci, "local_gain": local_gain, "fits": fits, "local_step": l_info,
             "seconds": time.perf_counter() - started}
    return accepted, start


def _numpy(params) -> list:
    return [tuple(np.asarray(a) for a in layer) for layer in params]


def _report(progress, log):
    if progress is not None:
        progress(log[-1])


def train_best_of(game, k, config: FAConfig, seeds, progress=None, on_run=None) -> tuple:
    """The authors' protocol's training: one run per seed, the pair with the best selection welfare kept.
    Returns (seed, FAResult) of the kept run and [(seed, FAResult)] of all; `on_run(seed, result)` after each."""
    runs = []
    for seed in seeds:
        result = fa_alternating(game, k, config, seed=seed, progress=progress)
        runs.append((seed, result))
        if on_run is not None:
            on_run(seed, result)
    return max(runs, key=lambda run: run[1].welfare), runs


def protocol_returns(game, k, params_g, params_l, *, n, horizon, seeds, rollouts_, seed=0,
                     global_inputs="state+summary", global_mode="greedy", local_mode="greedy", observer=FRESH,
                     estimation_error=False) -> dict:
    """welfare_returns' arrays stacked [seeds, rollouts] over evaluation streams seed, seed + 1, ... (the authors'
    protocol: 10 seeds x 30 rollouts, horizon 50; they report the mean and the std of the per-seed means)."""
    found = [welfare_returns(game, k, params_g, params_l, n=n, horizon=horizon, rollouts_=rollouts_,
                             seed=seed + index, global_inputs=global_inputs, global_mode=global_mode,
                             local_mode=local_mode, observer=observer, estimation_error=estimation_error)
             for index in range(seeds)]
    return {name: np.stack([one[name] for one in found]) for name in found[0]}


def mode_accuracy(game, k, policy, samples: int = 1000, seed: int = 99) -> float:
    """How often the greedy global action is the start's most populated bin, on `samples` fresh starts
    (the authors' single-step mode accuracy, their seed 99; numpy, no rollout). It is the first decision,
    which every observer makes on one k-sample."""
    rng = np.random.default_rng([seed, 0x30DE])
    s_g, s_l = game.initial(rng, game.default_n, samples)
    actions = policy.global_action(game, s_g, k_subsets(rng, s_l, k))
    return float(np.mean(actions == game.mode_bin(s_l)))
