"""FA learners (altmarl_ros/core/fa_learn.py, fa_alternating.py): TRPO's gradient and Fisher products against
finite differences and the Fisher matrix written out, its trust region; the JAX n-agent simulator against
exact finite-horizon welfare on a tiny tabular game; on that game with one-hot features, the FA local and
global steps recover L-LEARN's and G-LEARN's (and brute force's) best responses; seeded runs repeat."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from _learn_reference import count_vectors, exact_Q, exact_surrogate, random_game
from altmarl_ros.core.continuous import TabularGame
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.baselines import feedback_global_candidates
from altmarl_ros.core.fa_alternating import (FAConfig, FATrainer, best_feedback_rule, check_config, fa_alternating,
                                             greedy_global, welfare_returns)
from altmarl_ros.core.fa_learn import RolloutSpec, TRPOSettings, fisher_vector_product, init_mlp, mean_kl, rollouts, \
    surrogate_and_kl, trpo_update
from altmarl_ros.core.fa_observer import FRESH, FAObserverSpec
from altmarl_ros.core.fa_policy import global_observation, mlp_apply
from altmarl_ros.core.glearn import g_learn
from altmarl_ros.core.llearn import l_learn

GAME = random_game(3)  # 2 states, 2 actions each side, gamma 0.8; its best responses below have clear action gaps


def _batch(seed, sizes=(3, 6, 6, 4), size=64, dtype=jnp.float64):
    key = jax.random.PRNGKey(seed)
    params = [(W.astype(dtype), b.astype(dtype)) for W, b in init_mlp(key, sizes)]
    k_obs, k_act, k_adv = jax.random.split(jax.random.fold_in(key, 1), 3)
    obs = jax.random.normal(k_obs, (size, sizes[0]), dtype)
    return params, obs, jax.random.randint(k_act, (size,), 0, sizes[-1]), jax.random.normal(k_adv, (size,), dtype)


def test_surrogate_gradient_and_fisher_products_match_finite_differences_and_the_fisher_matrix():
    with jax.enable_x64(True):
        params, obs, actions, adv = _batch(0)
        flat, unravel = ravel_pytree(params)
        old = jax.nn.log_softmax(mlp_apply(params, obs, jnp), axis=-1)
        moved = flat + 0.05 * jax.random.normal(jax.random.PRNGKey(2), flat.shape)  # away from theta_old
        surrogate = lambda p: surrogate_and_kl(unravel(p), old, obs, actions, adv)[0]  # noqa: E731
        grad_kl = jax.grad(lambda p: mean_kl(unravel(p), old, obs))
        gradient = jax.grad(surrogate)(moved)
        probs = [np.asarray(jax.nn.softmax(mlp_apply(p, obs, jnp), axis=-1))[np.arange(obs.shape[0]), actions]
                 for p in (unravel(moved), params)]
        assert float(surrogate(moved)) == pytest.approx(np.mean(probs[0] / probs[1] * np.asarray(adv)), rel=1e-10)
        p_old = np.exp(np.asarray(old))
        p_new = np.asarray(jax.nn.softmax(mlp_apply(unravel(moved), obs, jnp), axis=-1))
        assert float(mean_kl(unravel(moved), old, obs)) == pytest.approx(
            np.mean(np.sum(p_old * np.log(p_old / p_new), axis=-1)), rel=1e-10)  # KL(old || new), TRPO's
        h = 1e-5
        for index in range(5):
            v = jax.random.normal(jax.random.PRNGKey(10 + index), flat.shape)
            fd = (surrogate(moved + h * v) - surrogate(moved - h * v)) / (2 * h)
            assert float(gradient @ v) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)
            fvp = fisher_vector_product(params, old, obs, v, damping=0.1)
            fd = (grad_kl(flat + h * v) - grad_kl(flat - h * v)) / (2 * h) + 0.1 * v
            assert np.asarray(fvp) == pytest.approx(np.asarray(fd), rel=1e-5, abs=1e-8)
        # At theta_old the surrogate's gradient is REINFORCE's mean A d log pi(a|s), and the KL's Hessian
        # is the Fisher matrix E_s sum_a pi (d log pi)(d log pi)^T.
        jac = jax.jacobian(lambda p: jax.nn.log_softmax(mlp_apply(unravel(p), obs, jnp), axis=-1))(flat)
        reinforce = jnp.einsum("n,np->p", adv, jac[jnp.arange(obs.shape[0]), actions]) / obs.shape[0]
        assert np.asarray(jax.grad(surrogate)(flat)) == pytest.approx(np.asarray(reinforce), rel=1e-8, abs=1e-12)
        fisher = jnp.einsum("na,nap,naq->pq", jnp.exp(old), jac, jac) / obs.shape[0]
        v = jax.random.normal(jax.random.PRNGKey(3), flat.shape)
        assert np.asarray(fisher_vector_product(params, old, obs, v, damping=0.0)) == pytest.approx(
            np.asarray(fisher @ v), rel=1e-8, abs=1e-10)


def test_trpo_step_is_the_natural_gradient_inside_the_trust_region():
    with jax.enable_x64(True):
        params, obs, actions, adv = _batch(1, sizes=(3, 4, 3), size=256)
        settings = TRPOSettings(cg_iters=60, damping=1e-3)  # 31 parameters: CG solves F x = g
        new, info = trpo_update(params, obs, actions, adv, settings)
        old = jax.nn.log_softmax(mlp_apply(params, obs, jnp), axis=-1)
        flat, unravel = ravel_pytree(params)
        step = ravel_pytree(new)[0] - flat
        gradient = jax.grad(lambda p: surrogate_and_kl(unravel(p), old, obs, actions, adv)[0])(flat)
        natural = fisher_vector_product(params, old, obs, step, damping=1e-3)
        assert float(natural @ gradient) / float(jnp.linalg.norm(natural) * jnp.linalg.norm(gradient)) > 0.999
        kl = float(mean_kl(new, old, obs))
        assert bool(info["accepted"]) and 0.2 * settings.max_kl < kl <= settings.accept * settings.max_kl
        assert kl == pytest.approx(float(info["kl"]))
        assert float(surrogate_and_kl(new, old, obs, actions, adv)[0]) > float(adv.mean())
        # nothing to gain (zero advantages): no step is accepted and the policy stays
        same, info = trpo_update(params, obs, actions, jnp.zeros_like(adv), settings)
        assert not bool(info["accepted"]) and np.array_equal(ravel_pytree(same)[0], flat)


def _constant_network(sizes, action):
    """A network whose greedy action is `action` everywhere (zero weights, one large output bias)."""
    layers = [(np.zeros((a, b), np.float32), np.zeros(b, np.float32)) for a, b in zip(sizes[:-1], sizes[1:])]
    layers[-1][1][action] = 5.0
    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in layers]


def _pair_chain_welfare(game, horizon, a_g=None, a_l=None):
    """Exact E[sum_t gamma^t (r_g + mean r_l)] when both sides play constant actions (None: uniform):
    then each local's (s_l, s_g) is a Markov chain, and the mean over locals is its expectation."""
    pg = game.P_g.mean(axis=1) if a_g is None else game.P_g[:, a_g]
    rg = game.r_g.mean(axis=1) if a_g is None else game.r_g[:, a_g]
    pl = game.P_l.mean(axis=2) if a_l is None else game.P_l[:, :, a_l]
    rl = game.r_l.mean(axis=2) if a_l is None else game.r_l[:, :, a_l]
    x, total = np.outer(game.mu0_l, game.mu0_g), 0.0
    for t in range(horizon):
        total += game.gamma ** t * (x.sum(axis=0) @ rg + (x * rl).sum())
        x = np.einsum("sg,sgt,gh->th", x, pl, pg)
    return total


@pytest.mark.parametrize("actions", [(None, None), (1, 0)])
def test_jax_rollouts_have_the_exact_welfare_of_constant_and_uniform_play(actions):
    adapter, k, horizon = TabularGame(GAME), 2, 12
    a_g, a_l = actions
    sizes = {"global": 2 + n_count_vectors(k, 2), "local": 4}
    params_g = _constant_network((sizes["global"], 8, 2), a_g or 0)
    params_l = _constant_network((sizes["local"], 8, 2), a_l or 0)
    mode = "uniform" if a_g is None else "greedy"
    returns = welfare_returns(adapter, k, params_g, params_l, n=20, horizon=horizon, rollouts_=3000, seed=1,
                              global_mode=mode, local_mode=mode)["welfare"]
    exact = _pair_chain_welfare(GAME, horizon, a_g, a_l)
    assert abs(returns.mean() - exact) < 4 * returns.std() / np.sqrt(returns.size)


def test_each_decision_reads_a_fresh_uniform_k_subset_without_replacement():
    """4 locals in 4 distinct states, k = 2: the global agent's one-hot rank(F) names the pair it read;
    each of the 6 pairs comes up 1/6 of the time, never one local twice."""
    game = random_game(4, n_sl=4)
    adapter, k, draws = TabularGame(game), 2, 6000
    spec = RolloutSpec(n=4, k=k, horizon=2, global_mode="uniform", record_global=True)
    out = rollouts(adapter, spec, None, _constant_network((6, 4, 2), 0), jax.random.PRNGKey(0),
                   np.zeros(draws, np.int32), np.tile(np.arange(4, dtype=np.int32), (draws, 1)))
    columns = np.asarray(out["obs_g"])[:, 0, 2:].argmax(axis=-1)  # after the one-hot of s_g
    counts = count_vectors(k, 4)[columns]
    assert counts.max() == 1
    frequencies = np.bincount(columns, minlength=len(count_vectors(k, 4))) / draws
    assert sorted(frequencies[frequencies > 0]) == pytest.approx([1 / 6] * 6, abs=4 * np.sqrt(1 / 6 * 5 / 6 / draws))


def _trainer(n, k, seed=0, **settings):
    adapter = TabularGame(GAME, default_n=n, horizon_train=30)
    config = check_config(adapter, k, FAConfig(hidden=(16,), episodes=64, **settings))
    return adapter, FATrainer(adapter, k, config, seed)


@pytest.mark.slow
def test_fa_local_step_recovers_l_learn_best_response_on_one_hot_features():
    """Against a constant global action (s_g an autonomous chain: L-LEARN is exact), TRPO on one-hot
    (s_l, s_g) features reaches L-LEARN's best response in every state."""
    k = 2
    pi_g = np.zeros((2, n_count_vectors(k, 2)), np.int32)
    exact = l_learn(GAME, pi_g, k)
    gaps = np.abs(exact.Q[..., 0] - exact.Q[..., 1])
    assert gaps.min() > 0.2  # the test is not decided by ties
    adapter, trainer = _trainer(n=16, k=k, tracked=16, l_iters=40, trpo=TRPOSettings(max_kl=0.05))
    trainer.glob.actor = _constant_network((2 + n_count_vectors(k, 2), 16, 2), 0)
    trainer.l_step()
    s_l, s_g = np.meshgrid(np.arange(2), np.arange(2), indexing="ij")
    greedy = np.argmax(mlp_apply(trainer.loc.actor, adapter.local_features(s_l, s_g)), axis=-1)
    assert greedy.tolist() == exact.pi_l.argmax(axis=-1).tolist()


@pytest.mark.slow
def test_fa_global_step_recovers_g_learn_best_response_on_one_hot_features():
    """With n = k the sampled counts are the whole population's, so the n-agent game is G-LEARN's k-agent
    surrogate; TRPO on one-hot (s_g, rank F) features reaches its optimal pi_g (brute force and G-LEARN)."""
    k = 2
    pi_l = np.zeros((2, 2, 2))
    pi_l[..., 1] = 1.0
    Q = exact_Q(GAME, *exact_surrogate(GAME, pi_l, k))
    assert np.abs(Q[..., 0] - Q[..., 1]).min() > 0.2
    assert np.array_equal(g_learn(GAME, pi_l, k, m=400, tol=1e-8).pi_g, Q.argmax(axis=-1))
    adapter, trainer = _trainer(n=k, k=k, tracked=k)
    trainer.loc.actor = _constant_network((4, 16, 2), 1)
    trainer.trpo_g(40)
    counts = count_vectors(k, 2)
    samples = np.array([np.repeat(np.arange(2), F) for F in counts])  # row f: a sample whose counts are F_f
    greedy = [[int(np.argmax(mlp_apply(trainer.glob.actor, global_observation(
                   adapter, np.array(g), adapter.summary(samples[f]), "state+summary"))))
               for f in range(len(counts))] for g in range(2)]
    assert greedy == Q.argmax(axis=-1).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("observer", [FRESH, FAObserverSpec("filter", 3, 0.5)])
def test_a_seeded_training_run_repeats_exactly(observer):
    adapter = TabularGame(GAME, default_n=6, horizon_train=10)
    config = FAConfig(hidden=(8,), rounds=2, g_iters=1, l_iters=1, episodes=8, tracked=3, select_rollouts=4, eta=0.0,
                      observer=observer)
    first, again, other = (fa_alternating(adapter, 2, config, seed=seed) for seed in (5, 5, 6))
    flat = lambda result: np.concatenate([np.ravel(a) for layer in result.global_params + result.local_params  # noqa
                                          for a in layer])
    assert np.array_equal(flat(first), flat(again)) and first.welfare == again.welfare
    assert first.nash_gap == again.nash_gap and [r.welfare for r in first.rounds] == [r.welfare for r in again.rounds]
    assert not np.array_equal(flat(first), flat(other))


@pytest.mark.slow
def test_the_best_feedback_start_fits_its_rule_exactly_and_is_kept_unless_a_round_beats_it():
    adapter, k = TabularGame(GAME, default_n=6, horizon_train=10), 2
    config = check_config(adapter, k, FAConfig(hidden=(8,), rounds=2, g_iters=1, l_iters=1, episodes=8, tracked=3,
                                               select_rollouts=4, eta=1e6, global_init="best_feedback"))
    states = adapter.tabular_global_states()

    def rule_of_state(rule, obs):  # rule[s_g], s_g read off the observation's one-hot state features
        return np.asarray(rule)[np.argmax(obs[:, :GAME.n_sg], axis=1)]

    # a rule that reads s_g (not a constant), fitted on the summaries of one batch of rollouts: the greedy action
    # is rule[s_g] on every (s_g, summary) it was fitted on, and on those of another batch
    trainer = FATrainer(adapter, k, config, seed=3)
    obs, labels = trainer.rule_observations([1, 0], states)
    summaries = {tuple(row) for row in obs[:, GAME.n_sg:]}
    assert len(labels) == len(obs) == 2 * len(summaries) and np.array_equal(labels, rule_of_state([1, 0], obs))
    trainer.fit_rule(obs, labels)
    assert np.array_equal(greedy_global(trainer.glob.actor, obs), rule_of_state([1, 0], obs))
    held_out = trainer.rule_observations([1, 0], states)[0]
    assert np.array_equal(greedy_global(trainer.glob.actor, held_out), rule_of_state([1, 0], held_out))
    # the alternation from the best feedback rule (the registered baseline's, on the tabular model): with 2 eta
    # beyond any gain, round 0 is rejected and the start pair comes back, its dispatcher the rule's
    rule = feedback_global_candidates(GAME, k)[0].pi_g[:, 0]
    assert np.array_equal(best_feedback_rule(adapter, k)[0], rule)
    result = fa_alternating(adapter, k, config, seed=3)
    assert result.start["rule"] == list(rule) and [r.accepted for r in result.rounds] == [False]
    assert result.welfare == result.start["welfare"] and result.local_gain == result.start["local_gain"]
    assert np.isfinite(result.local_gain)
    obs = FATrainer(adapter, k, config, seed=4).rule_observations(rule, states)[0]
    assert np.array_equal(greedy_global(result.global_params, obs), rule_of_state(rule, obs))
