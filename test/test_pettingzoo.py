"""The PettingZoo environments (altmarl_ros/envs/pettingzoo.py): PettingZoo's own API and seed tests,
the evaluators' rollouts replayed exactly from the environments with a learned (model) and a hand-made
(simulator) policy, the game's per-agent rewards, and named errors for bad input."""
import importlib.util
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
from pettingzoo.utils.conversions import parallel_to_aec

from _herding_policy import _walk_to_depot, herding_policy
from _tiny_model import tiny_arrays
from altmarl_ros.core.alternating import alternating_marl
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.evaluate import rollout_welfare
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.model import make_game, save_model
from altmarl_ros.core.observers import ObserverError, ObserverSpec
from altmarl_ros.core.policy import build_policy, save_policy
from altmarl_ros.envs.pettingzoo import GLOBAL_AGENT, EnvError, ModelEnv, SimEnv, policy_actions
from altmarl_sim.rollout import sim_rollout_welfare
from altmarl_sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = load_scenario("warehouse_ring")


@pytest.fixture(scope="module")
def game():
    """A depot game on a ring of 3 zones whose learned coordinator reads its sample: a local earns 1 in
    the depot's zone; it drifts on to the next zone w.p. 0.5 when it stays (0.2 in the depot's zone) and
    w.p. 0.9 when it moves (cost 0.1); the depot heads for any zone (arriving w.p. 0.9) at a cost of 0.3
    per epoch away from it."""
    z = 3
    P_g = np.full((z, z, z), 0.05)
    P_g[:, np.arange(z), np.arange(z)] = 0.9
    P_l = np.zeros((z, z, 2, z))
    for s in range(z):
        P_l[s, :, 0, (s + 1) % z], P_l[s, :, 0, s] = 0.5, 0.5
        P_l[s, s, 0, (s + 1) % z], P_l[s, s, 0, s] = 0.2, 0.8
        P_l[s, :, 1, (s + 1) % z], P_l[s, :, 1, s] = 0.9, 0.1
    r_l = np.zeros((z, z, 2))
    r_l[np.arange(z), np.arange(z)] = 1.0
    r_l[:, :, 1] -= 0.1
    r_g = -0.3 * (np.arange(z)[:, None] != np.arange(z)[None, :])
    return make_game(P_g=P_g, P_l=P_l, r_g=r_g, r_l=r_l, gamma=0.9, mu0_l=[0.8, 0.1, 0.1])


@pytest.fixture(scope="module")
def learned(game):
    """ALTERNATING-MARL's pair at k = 3 (pi_l one-hot, so the locals' actions need no random draw)."""
    result = alternating_marl(game, 3, m=10, rounds=3, seed=1)
    assert (result.pi_g != result.pi_g[:, :1]).any()  # the coordinator's action depends on its sample
    return result.pi_g, result.pi_l


def discounted_returns(env, act, gamma, episodes, seed):
    """The global agent's discounted return sum_t gamma^t r_t of `episodes` episodes: reset(seed) then reset()."""
    returns = []
    for episode in range(episodes):
        observations, _ = env.reset(seed=seed if episode == 0 else None)
        total, discount = 0.0, 1.0
        while env.agents:
            observations, rewards, _, _, _ = env.step(act(observations))
            total += discount * rewards[GLOBAL_AGENT]
            discount *= gamma
        returns.append(total)
    return np.array(returns)


@pytest.mark.kernels
@pytest.mark.parametrize("make", [lambda: ModelEnv(make_game(**tiny_arrays(np.random.default_rng(0))), n=6, k=2,
                                                   horizon=12),
                                  lambda: SimEnv(SCENARIO, n=6, k=2, horizon=5),
                                  lambda: SimEnv(SCENARIO, n=6, k=2, horizon=5, observer=ObserverSpec("filter", 0.5, 4),
                                                 prediction=(np.full((5, 5, 5), 0.2), np.full(5, 0.2)))],
                         ids=["model", "simulator", "simulator-filter"])
def test_pettingzoo_api_and_seed_tests_pass(make):
    parallel_api_test(make(), num_cycles=40)
    parallel_seed_test(make, num_cycles=40)
    with warnings.catch_warnings():
        # its advice (Box or Discrete spaces, one observation size for all agents) does not fit this game
        warnings.simplefilter("ignore", UserWarning)
        api_test(parallel_to_aec(make()), num_cycles=40)  # the AEC test also checks observations against spaces


@pytest.mark.kernels
@pytest.mark.parametrize("filtered", [False, True], ids=["fresh", "filter"])
def test_model_env_with_the_learned_policy_replays_the_evaluators_rollouts(game, learned, filtered):
    pi_g, pi_l = learned
    n, horizon, episodes, seed = 40, 15, 12, 5
    if filtered:  # a filter at resolution 3 reading 2 samples a decision, predicting with the true model
        k, observer, prediction = 2, ObserverSpec("filter", 0.4, 3, prior=1.0), (fold_local_policy(game, pi_l)[0],
                                                                               game.mu0_l)
    else:
        k, observer, prediction = 3, None, None
    policy = build_policy(pi_g, pi_l, k, game=game, observer=observer)
    env = ModelEnv(game, n=n, k=k, horizon=horizon, observer=observer, prediction=prediction)
    rng = np.random.default_rng(0)  # pi_l is one-hot: the draws do not matter
    returns = discounted_returns(env, lambda seen: policy_actions(policy, seen, rng), game.gamma, episodes, seed)
    evaluated = rollout_welfare(game, pi_g, pi_l, k, n=n, horizon=horizon, seeds=1, rollouts=episodes, seed=seed,
                                observer=observer)
    # The evaluator scores the expected local reward by state counts, the env each agent's own: rounding only.
    np.testing.assert_allclose(returns, evaluated.returns[0], rtol=1e-12, atol=0)
    assert abs(returns.mean() - evaluated.mean) <= evaluated.ci95  # the evaluator's welfare, within its CI
    assert np.ptp(returns) > 1.0  # the episodes differ: every reset() is a new rollout


@pytest.mark.parametrize("filtered", [False, True], ids=["fresh", "filter"])
def test_sim_env_replays_the_simulators_rollouts(filtered):
    """Stochastic workers drawing from the env's generator as sim_rollout_welfare's rollouts draw them."""
    z = SCENARIO.ring.n_zones
    k, n, horizon, episodes, seed = 3, 15, 4, 3, 9
    rng = np.random.default_rng(3)
    pi_l = 0.5 * _walk_to_depot(z) + 0.5 / 3
    observer, prediction = None, None
    if filtered:
        observer = ObserverSpec("filter", 0.3, 4, prior=2.0)
        prediction = (rng.dirichlet(np.ones(z), size=(z, z)), rng.dirichlet(np.ones(z)))
    K = k if observer is None else observer.resolution
    pi_g = rng.integers(0, z, (z, n_count_vectors(K, z))).astype(np.int32)
    policy = build_policy(pi_g, pi_l, k, n_ag=z, observer=observer, prediction=prediction)
    env = SimEnv(SCENARIO, n=n, k=k, horizon=horizon, observer=observer, prediction=prediction)
    returns = discounted_returns(env, lambda seen: policy_actions(policy, seen, env.np_random), SCENARIO.gamma,
                                 episodes, seed)
    evaluated = sim_rollout_welfare(SCENARIO, pi_g, pi_l, k, n=n, horizon=horizon, seeds=1, rollouts=episodes,
                                    seed=seed, observer=observer, prediction=prediction)
    np.testing.assert_array_equal(returns, evaluated.returns[0])
    assert len(set(returns.tolist())) == episodes


def test_model_rewards_and_observations_are_the_games(game):
    env = ModelEnv(game, n=30, k=4, horizon=3)
    observations, infos = env.reset(seed=2)
    rng = np.random.default_rng(1)
    for _ in range(3):
        s_l = np.array([observations[f"local_{i}"][0] for i in range(30)])
        s_g = observations[GLOBAL_AGENT][0]
        assert all(observations[f"local_{i}"][1] == s_g for i in range(30))
        assert observations[GLOBAL_AGENT][1:].sum() == 4  # a k-sample's counts
        assert np.array_equal(env.state(), np.concatenate([[s_g], np.bincount(s_l, minlength=3)]))
        actions = {agent: int(rng.integers(2)) for agent in env.agents}
        actions[GLOBAL_AGENT] = int(rng.integers(3))
        observations, rewards, terminations, truncations, infos = env.step(actions)
        a_l = np.array([actions[f"local_{i}"] for i in range(30)])
        assert len(set(a_l.tolist())) == 2
        local = game.r_l[s_l, s_g, a_l]
        assert [rewards[f"local_{i}"] for i in range(30)] == pytest.approx(local, abs=1e-15)
        r_g = game.r_g[s_g, actions[GLOBAL_AGENT]]
        assert infos[GLOBAL_AGENT]["r_g"] == r_g
        assert rewards[GLOBAL_AGENT] == pytest.approx(r_g + local.mean(), abs=1e-12)
        assert not any(terminations.values())
    assert all(truncations.values()) and env.agents == []


def test_sim_rewards_are_the_fleets():
    env = SimEnv(SCENARIO, n=10, k=2, horizon=2)
    observations, _ = env.reset(seed=4)
    zones_before = env.sim.zones()
    assert np.array_equal([observations[f"local_{i}"][0] for i in range(10)], zones_before)
    actions = {agent: 1 for agent in env.agents}  # every worker heads for the next zone, the depot for zone 1
    observations, rewards, _, _, infos = env.step(actions)
    local = np.array([rewards[f"local_{i}"] for i in range(10)])
    np.testing.assert_array_equal(local, env.sim.last_local_rewards)
    assert infos[GLOBAL_AGENT]["r_g"] == env.sim.last_global_reward < 0  # the depot drove
    assert rewards[GLOBAL_AGENT] == pytest.approx(env.sim.last_global_reward + local.mean(), abs=1e-12)
    assert np.array_equal([observations[f"local_{i}"][0] for i in range(10)], env.sim.zones())


def test_seeding_follows_the_api(game):
    env, other = ModelEnv(game, n=20, k=3, horizon=4), ModelEnv(game, n=20, k=3, horizon=4)
    first, _ = env.reset(seed=11)
    second, _ = env.reset()
    again, _ = other.reset(seed=11)
    assert all(np.array_equal(first[agent], again[agent]) for agent in first)
    assert any(not np.array_equal(first[agent], second[agent]) for agent in first)
    assert all(np.array_equal(env.reset(seed=11)[0][agent], first[agent]) for agent in first)
    unseeded = [ModelEnv(game, n=20, k=3, horizon=4).reset()[0] for _ in range(2)]
    assert any(not np.array_equal(unseeded[0][agent], unseeded[1][agent]) for agent in first)


@pytest.mark.parametrize("change, field", [
    (lambda acts: acts.pop("local_3"), "'local_3'"),
    (lambda acts: acts.pop(GLOBAL_AGENT), "'global'"),
    (lambda acts: acts.update(local_2=2), "actions['local_2']"),
    (lambda acts: acts.update(local_1=-1), "actions['local_1']"),
    (lambda acts: acts.update(local_4=0.5), "actions['local_4']"),
    (lambda acts: acts.update({GLOBAL_AGENT: 7}), "actions['global']"),
    (lambda acts: acts.update(local_9=0), "'local_9'"),
    (lambda acts: acts.update(local_0=np.array([0, 1])), "actions['local_0']"),
    (lambda acts: acts.update({GLOBAL_AGENT: 1.0}), "actions['global']"),
], ids=["missing", "missing-global", "out-of-range", "negative", "float", "global-out-of-range", "unknown",
        "array", "global-float"])
def test_bad_actions_name_the_agent(game, change, field):
    env = ModelEnv(game, n=5, k=2, horizon=2)
    env.reset(seed=0)
    actions = dict.fromkeys(env.agents, 0)
    change(actions)
    with pytest.raises(EnvError) as raised:
        env.step(actions)
    assert field in str(raised.value) and "\n" not in str(raised.value)


def test_bad_arguments_and_misuse_raise_named_errors(game):
    for kwargs, field in ((dict(n=3, k=4), "k"), (dict(n=0), "n"), (dict(horizon=0), "horizon"),
                          (dict(n=2**31), "n")):
        with pytest.raises(EnvError, match=f"^{field}:"):
            ModelEnv(game, **kwargs)
    with pytest.raises(ObserverError, match="^prediction:"):
        ModelEnv(game, n=5, k=2, observer=ObserverSpec("filter", 0.5, 3))
    with pytest.raises(ObserverError, match=r"^prediction: P_fused has shape \(3, 2, 2\)"):
        ModelEnv(game, n=5, k=2, observer=ObserverSpec("filter", 0.5, 3), prediction=(np.ones((3, 2, 2)), None))
    with pytest.raises(ObserverError, match=r"^prediction mu0\[:\] sums to 2"):
        ModelEnv(game, n=5, k=2, observer=ObserverSpec("filter", 0.5, 3),
                 prediction=(np.full((3, 3, 3), 1 / 3), np.ones(3) * 2 / 3))
    env = ModelEnv(game, n=5, k=2, horizon=1)
    with pytest.raises(EnvError, match="^step: .*reset"):
        env.step({})
    with pytest.raises(EnvError, match="^agent: 'local_5' is not an agent"):
        env.action_space("local_5")
    with pytest.raises(EnvError, match="^seed:"):
        env.reset(seed=-1)
    env.reset(seed=0)
    env.step(dict.fromkeys(env.agents, 0))
    with pytest.raises(EnvError, match="^step: the episode is over"):
        env.step(dict.fromkeys(env.possible_agents, 0))


def test_only_the_env_module_imports_pettingzoo():
    """Every other module of the package imports without pettingzoo or gymnasium."""
    from _fresh_python import packages_imported

    code = ("import importlib, pkgutil, altmarl_ros, altmarl_sim\n"
            "for pkg in (altmarl_ros, altmarl_sim):\n"
            "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        if info.name != 'altmarl_ros.envs.pettingzoo':\n"
            "            importlib.import_module(info.name)\n")
    assert packages_imported(code, ("pettingzoo", "gymnasium")) == []


def _example():
    spec = importlib.util.spec_from_file_location("pettingzoo_example", ROOT / "examples" / "pettingzoo_random.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_example(*argv):
    printed = io.StringIO()
    assert _example().main(list(argv), out=printed) == 0
    return printed.getvalue()


def test_example_steps_both_environments_with_random_actions():
    printed = _run_example("--n", "8", "--k", "2", "--horizon", "3", "--episodes", "2")
    assert "altmarl_model_" in printed and "altmarl_sim_warehouse_ring" in printed
    assert len(re.findall(r"episode \d: welfare", printed)) == 4


@pytest.mark.parametrize("where", ["model", "scenario"])
def test_example_with_a_trained_policy_prints_the_evaluators_episodes(tmp_path, game, learned, where):
    if where == "model":
        policy, source = build_policy(*learned, 3, game=game), ["--model", str(save_model(game, tmp_path / "g.yaml"))]
    else:
        policy, source = herding_policy(SCENARIO, 2), ["--scenario", "warehouse_ring"]
    save_policy(policy, tmp_path / "policy.npz")
    printed = _run_example(*source, "--policy", str(tmp_path / "policy.npz"), "--n", "12", "--horizon", "6",
                           "--episodes", "3", "--seed", "4")
    episodes = [float(x) for x in re.findall(r"episode \d: welfare +(\S+)", printed)]
    evaluated = [float(x) for x in re.search(r"\(episodes \[([^\]]*)\]", printed).group(1).split()]
    assert len(episodes) == 3 and episodes == pytest.approx(evaluated, abs=1e-3)


def test_model_env_with_stochastic_locals_has_the_evaluators_welfare(game, learned):
    """Locals drawing their own actions use two uniforms where the evaluator's fused draw uses one, so the
    episodes differ; the welfare must not: the env's mean within the combined 95% CI of the two means."""
    pi_g, pi_l = learned
    pi_l = 0.6 * pi_l + 0.4 / 2
    policy = build_policy(pi_g, pi_l, 3, game=game)
    env = ModelEnv.for_policy(game, policy, n=40, horizon=15)
    rng = np.random.default_rng(0)
    returns = discounted_returns(env, lambda seen: policy_actions(policy, seen, rng), game.gamma, 300, 21)
    evaluated = rollout_welfare(game, pi_g, pi_l, 3, n=40, horizon=15, seeds=4, rollouts=500, seed=22)
    combined = np.hypot(returns.std(ddof=1) / np.sqrt(returns.size), evaluated.returns.std(ddof=1) / np.sqrt(2000))
    assert abs(returns.mean() - evaluated.mean) <= 1.96 * combined
