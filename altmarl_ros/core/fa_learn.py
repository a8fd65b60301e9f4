"""Function-approximation learners for continuous games (JAX + optax; imported only by who trains).

- `rollouts`: the n-agent system of a ContinuousGame in one jitted `lax.scan` per rollout,
  `vmap`ped over rollouts. Each step the global agent reads a fresh uniform k-subset of the
  n locals (without replacement), summarised by the game, or its observer's estimate
  (core/fa_observer.py: the filter's kept samples move with the locals, acting as they do);
  each local reads (s_l, s_g).
  Either side acts greedily, by sampling its network's softmax, or uniformly at random.
  The step reward is the system's r_g + (1/n) sum_i r_l. "Ghost" locals (optional) start as
  copies of the first locals and follow another local network without being sampled or
  rewarded as part of the system: one deviating local, measured in the real fleet.
- `trpo_update`: one trust-region natural-gradient step (the authors' TRPO: CG on Fisher-vector
  products of the mean KL, step sqrt(2 delta / x'Fx), backtracking line search accepting the
  largest 0.5^j step that improves the surrogate with KL <= accept * delta), all in one jit;
  the candidate steps of the line search are evaluated at once.
- `fit_critic`: V on Monte-Carlo returns by Adam (gradient clip 1.0), minibatches.
- `supervised_global`: the authors' dispatcher training (cross-entropy on the privileged label
  "initial mode bin" from resets), kept as a documented baseline only.
Networks are lists of (W, b) (core/fa_policy.py's layout), initialised like PyTorch's Linear.
Everything is seeded: a jax key and numpy Generators derived from the caller's seed.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from altmarl_ros.core.fa_observer import FRESH, FAObserverSpec, observe
from altmarl_ros.core.fa_policy import global_observation, mlp_apply


def _keep_compiled_steps_on_disk() -> None:
    """JAX compiles every jitted step on its first use, most of a short training run; keep the results on
    disk, as numba's cache does, so the next process skips it. ALTMARL_JAX_CACHE names the folder (default
    $XDG_CACHE_HOME/altmarl_ros/jax); an empty value turns it off."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.environ.get("ALTMARL_JAX_CACHE", os.path.join(cache_home, "altmarl_ros", "jax"))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


_keep_compiled_steps_on_disk()

def init_mlp(key, sizes) -> list:
    """[(W [in, out], b [out])] with PyTorch's Linear default: U(-1/sqrt(in), 1/sqrt(in))."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        key, k_w, k_b = jax.random.split(key, 3)
        bound = 1.0 / np.sqrt(n_in)
        layers.append((jax.random.uniform(k_w, (n_in, n_out), jnp.float32, -bound, bound),
                       jax.random.uniform(k_b, (n_out,), jnp.float32, -bound, bound)))
    return layers


def _act(params, obs, mode: str, key, n_actions: int):
    if mode == "uniform":
        return jax.random.randint(key, obs.shape[:-1], 0, n_actions)
    logits = mlp_apply(params, obs, jnp)
    if mode == "greedy":
        return jnp.argmax(logits, axis=-1)
    return jax.random.categorical(key, logits, axis=-1)


def _noise(game, key, shape):
    return jax.random.normal(key, shape) if game.noise_kind == "normal" else jax.random.uniform(key, shape)


@dataclass(frozen=True)
class RolloutSpec:
    """What one batch of rollouts runs (hashable: it keys the jit cache)."""

    n: int
    k: int
    horizon: int
    global_mode: str = "greedy"
    local_mode: str = "greedy"
    global_inputs: str = "state+summary"
    tracked: int = 0  # locals whose (obs, action, reward) are recorded for the local learner
    ghosts: int = 0  # deviating locals following the ghost network (local best-response gain)
    record_global: bool = False
    observer: FAObserverSpec = FRESH
    record_estimate: bool = False  # the global agent's summary and the whole population's, per step


@functools.lru_cache(maxsize=64)
def _rollout_fn(game, spec: RolloutSpec):
    n, k, observer = spec.n, spec.k, spec.observer

    def one(params_g, params_l, params_ghost, key, s_g0, s_l0):
        def step(carry, key):
            s_g, s_l, s_ghost, kept, filled = carry
            k_sub, k_ag, k_al, k_ng, k_nl, k_gh = jax.random.split(key, 6)
            picked = jax.lax.top_k(jax.random.uniform(k_sub, (n,)), k)[1]
            if not observer.estimates:
                summary = game.summary(s_l[picked], jnp)
            else:
                kept, filled, summary = observe(game, observer, kept, filled, s_l[picked], jnp)
            obs_g = global_observation(game, s_g, summary, spec.global_inputs, jnp)
            a_g = _act(params_g, obs_g, spec.global_mode, k_ag, game.n_ag)
            obs_l = game.local_features(s_l, s_g, jnp)
            a_l = _act(params_l, obs_l, spec.local_mode, k_al, game.n_al)
            r_l = game.reward_local(s_l, s_g, a_l, jnp)
            out = {"reward": game.reward_global(s_g, a_g, jnp) + r_l.mean()}
            if spec.record_global:
                out.update(obs_g=obs_g, a_g=a_g)
            if spec.record_estimate:
                out.update(estimate=summary, population=game.summary(s_l, jnp))
            if observer.predicts:
                kept = predict(game, params_l, kept, s_g, spec.local_mode, jax.random.fold_in(k_nl, 1))
            if spec.tracked:
                out.update(obs_l=obs_l[:spec.tracked], a_l=a_l[:spec.tracked], r_l=r_l[:spec.tracked])
            if spec.ghosts:
                a_ghost = _act(params_ghost, game.local_features(s_ghost, s_g, jnp), "greedy", k_gh, game.n_al)
                out.update(r_ghost=game.reward_local(s_ghost, s_g, a_ghost, jnp), r_real=r_l[:spec.ghosts])
                s_ghost = game.next_local(s_ghost, s_g, a_ghost, _noise(game, k_gh, s_ghost.shape), jnp)
            s_l_next = game.next_local(s_l, s_g, a_l, _noise(game, k_nl, (n,)), jnp)
            s_g_next = game.next_global(s_g, a_g, _noise(game, k_ng, ()), jnp)
            return (s_g_next, s_l_next, s_ghost, kept, filled), out

        kept = jnp.zeros((observer.window if observer.estimates else 0, k), s_l0.dtype)
        carry = (s_g0, s_l0, s_l0[:spec.ghosts], kept, jnp.int32(0))
        return jax.lax.scan(step, carry, jax.random.split(key, spec.horizon))[1]

    return jax.jit(jax.vmap(one, in_axes=(None, None, None, 0, 0, 0)))


def predict(game, params_l, kept, s_g, local_mode: str, key):
    """The filter's prediction: the kept samples [..., k] one step on, each as a local of the fleet moves under
    s_g (an action of the locals' network in `local_mode`, the game's next_local with fresh noise)."""
    k_act, k_noise = jax.random.split(key)
    actions = _act(params_l, game.local_features(kept, s_g, jnp), local_mode, k_act, game.n_al)
    return game.next_local(kept, s_g, actions, _noise(game, k_noise, kept.shape), jnp)


def rollouts(game, spec: RolloutSpec, params_g, params_l, key, s_g0, s_l0, params_ghost=None) -> dict:
    """Per-step outputs [rollouts, horizon, ...] of rollouts from s_g0 [B], s_l0 [B, n] (module docstring)."""
    keys = jax.random.split(key, s_g0.shape[0])
    ghost = params_l if params_ghost is None else params_ghost
    return _rollout_fn(game, spec)(params_g, params_l, ghost, keys, jnp.asarray(s_g0), jnp.asarray(s_l0))


def discounted_to_go(rewards, gamma: float):
    """sum_{t' >= t} gamma^(t'-t) r_t' along the last axis."""
    T = rewards.shape[-1]
    t = jnp.arange(T)
    D = jnp.where(t[:, None] >= t[None, :], gamma ** (t[:, None] - t[None, :]).astype(jnp.float32), 0.0)
    return rewards @ D


# ----------------------------------------------------------------------------------------- TRPO
@dataclass(frozen=True)
class TRPOSettings:
    """The authors' TRPO hyperparameters (alternating-marl README, Setup B)."""

    max_kl: float = 0.01
    cg_iters: int = 10
    damping: float = 0.1
    backtracks: int = 10
    accept: float = 1.5


def _log_probs(params, obs):
    return jax.nn.log_softmax(mlp_apply(params, obs, jnp), axis=-1)


def surrogate_and_kl(params, old_log_probs, obs, actions, advantages):
    """(mean ratio * A, mean KL(pi_old || pi)) at `params`: what TRPO differentiates."""
    log_probs = _log_probs(params, obs)
    chosen = jnp.take_along_axis(log_probs - old_log_probs, actions[:, None], axis=-1)[:, 0]
    return jnp.mean(jnp.exp(chosen) * advantages), mean_kl(params, old_log_probs, obs)


def mean_kl(params, old_log_probs, obs):
    """mean over obs of KL(pi_old || pi_params)."""
    log_probs = _log_probs(params, obs)
    return jnp.mean(jnp.sum(jnp.exp(old_log_probs) * (old_log_probs - log_probs), axis=-1))


def fisher_vector_product(params, old_log_probs, obs, v, damping: float):
    """(H_KL + damping I) v, H_KL the Hessian of the mean KL at `params` (flat v), by forward-over-reverse."""
    flat, unravel = ravel_pytree(params)
    grad_kl = jax.grad(lambda p: mean_kl(unravel(p), old_log_probs, obs))
    return jax.jvp(grad_kl, (flat,), (v,))[1] + damping * v


def _conjugate_gradient(matvec, b, iters: int):
    def body(_, state):
        x, r, p, rr = state
        Ap = matvec(p)
        alpha = rr / (p @ Ap + 1e-8)
        x, r = x + alpha * p, r - alpha * Ap
        new_rr = r @ r
        return x, r, r + (new_rr / (rr + 1e-30)) * p, new_rr

    return jax.lax.fori_loop(0, iters, body, (jnp.zeros_like(b), b, b, b @ b))[0]


@functools.partial(jax.jit, static_argnames=("settings",))
def trpo_update(params, obs, actions, advantages, settings: TRPOSettings = TRPOSettings()):
    """One TRPO step of the policy `params` on a batch; returns (new params, info dict)."""
    old_log_probs = jax.lax.stop_gradient(_log_probs(params, obs))
    flat, unravel = ravel_pytree(params)

    def objective(p):
        return surrogate_and_kl(unravel(p), old_log_probs, obs, actions, advantages)

    surrogate_old = objective(flat)[0]
    g = jax.grad(lambda p: objective(p)[0])(flat)
    fvp = functools.partial(fisher_vector_product, params, old_log_probs, obs, damping=settings.damping)
    x = _conjugate_gradient(fvp, g, settings.cg_iters)
    step = jnp.sqrt(2 * settings.max_kl / (x @ fvp(x) + 1e-8)) * x
    scales = 0.5 ** jnp.arange(settings.backtracks, dtype=jnp.float32)
    surrogates, kls = jax.vmap(lambda s: objective(flat + s * step))(scales)
    ok = (surrogates > surrogate_old) & (kls <= settings.accept * settings.max_kl)
    chosen = jnp.where(ok.any(), scales[jnp.argmax(ok)], 0.0)
    index = jnp.argmax(ok)
    info = {"surrogate_gain": jnp.where(ok.any(), surrogates[index] - surrogate_old, 0.0),
            "kl": jnp.where(ok.any(), kls[index], 0.0), "accepted": ok.any()}
    return unravel(flat + chosen * step), info


# --------------------------------------------------------------------------------------- critic
def critic_optimiser(lr: float = 3e-3):
    """Adam with the authors' gradient clip 1.0."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))


@functools.partial(jax.jit, static_argnames=("optimiser", "epochs", "minibatches"))
def fit_critic(params, opt_state, obs, returns, key, optimiser, epochs: int = 5, minibatches: int = 16):
    """`epochs` passes of minibatch Adam on mean (V(obs) - returns)^2; returns (params, opt_state, loss).
    Returns are in units of the game's value scale (`value_scale`), so a tanh network reaches them."""
    size = obs.shape[0]
    steps = min(minibatches, size)
    batch = size // steps

    def loss(p, o, y):
        return jnp.mean((mlp_apply(p, o, jnp)[:, 0] - y) ** 2)

    def epoch(state, key):
        order = jax.random.permutation(key, size)[:steps * batch].reshape(steps, batch)

        def minibatch(state, rows):
            p, s = state
            grads = jax.grad(loss)(p, obs[rows], returns[rows])
            updates, s = optimiser.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None

        return jax.lax.scan(minibatch, state, order)[0], None

    (params, opt_state), _ = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, epochs))
    return params, opt_state, loss(params, obs, returns)


def value_scale(game) -> float:
    """span(r_l) / (1 - gamma): the critics fit returns divided by it (values of order 1)."""
    return max(game.reward_span, 1e-6) / (1.0 - game.gamma)


def advantages(critic, obs, scaled_returns):
    """A = G - V(obs), normalised (the authors')."""
    adv = scaled_returns - mlp_apply(critic, obs, jnp)[:, 0]
    return (adv - adv.mean()) / (adv.std() + 1e-8)


# ------------------------------------------------------------------------- the authors' baseline
@functools.partial(jax.jit, static_argnames=("optimiser", "epochs"))
def supervised_global(params, opt_state, obs, labels, optimiser, epochs: int = 20):
    """The authors' G-step: `epochs` full-batch Adam steps of cross-entropy on (summary, mode bin)."""
    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(mlp_apply(p, obs, jnp), labels).mean()

    def epoch(state, _):
        p, s = state
        value, grads = jax.value_and_grad(loss)(p)
        updates, s = optimiser.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), None, length=epochs)
    return params, opt_state, losses.mean()
