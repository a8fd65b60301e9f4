"""Checks in core and sim that branch coverage found no test reaching (docs/testing.md, Branch coverage):
each input the rule refuses is refused with its one-line message, and the nearest input it accepts is
accepted."""
from pathlib import Path

import numpy as np
import pytest

from _learn_reference import random_game
from altmarl_ros.core.model import ModelError, make_game, save_model
from altmarl_ros.core.observers import ObserverError, ObserverKind, ObserverSpec, register_observer
from altmarl_ros.core.policy import (PolicyArtifact, PolicyError, build_policy, check_local_policy, load_policy,
                                     save_policy)
from altmarl_ros.core.registry import Registry, RegistryError
from altmarl_ros.core.training import TrainOptions
from altmarl_ros.core.work import format_duration
from altmarl_ros.errors import LearnError

GAME = random_game(3)  # n_sg = n_ag = n_sl = n_al = 2
K = 2


def _arrays(game):
    return dict(P_g=game.P_g, P_l=game.P_l, r_g=game.r_g, r_l=game.r_l, gamma=game.gamma)


def _policy(resolution=K, **kwargs):
    pi_g = np.zeros((GAME.n_sg, resolution + 1), np.int32)  # N_F = C(resolution + 1, 1) count vectors
    return build_policy(pi_g, np.full((2, 2, 2), 0.5), K, game=GAME, **kwargs)


def test_a_games_name_and_description_are_text():
    with pytest.raises(ModelError, match=r"^name is 3; it must be a string$"):
        make_game(**_arrays(GAME), name=3)
    with pytest.raises(ModelError, match=r"^description is None; it must be a string$"):
        make_game(**_arrays(GAME), description=None)
    assert make_game(**_arrays(GAME), name="n", description="").name == "n"


def test_games_are_equal_and_hash_alike_by_content_and_never_equal_another_type():
    again = make_game(**_arrays(GAME), mu0_g=GAME.mu0_g, mu0_l=GAME.mu0_l, name="renamed")
    assert again == GAME and hash(again) == hash(GAME) and len({again, GAME}) == 1
    other = make_game(**{**_arrays(GAME), "gamma": 0.5}, mu0_g=GAME.mu0_g, mu0_l=GAME.mu0_l)
    assert other != GAME
    assert GAME != GAME.content_hash() and (GAME == 3) is False


def test_a_model_is_saved_only_as_npz_or_yaml_and_nothing_else_is_written(tmp_path):
    with pytest.raises(ModelError, match=r"m\.txt: unknown model file type; use one of \.npz, \.yaml, \.yml"):
        save_model(GAME, tmp_path / "m.txt")
    assert list(tmp_path.iterdir()) == []
    assert save_model(GAME, tmp_path / "m.YML").exists()  # the suffix's case does not matter


def test_a_local_policy_that_is_not_numbers_is_named_with_its_shape():
    with pytest.raises(PolicyError, match=r"^pi_l: must be a numeric array of shape \(2, 2, 2\)$"):
        check_local_policy(GAME.sizes, [[["a", "b"]]])
    with pytest.raises(PolicyError, match=r"^pi_l: must be a numeric array"):
        check_local_policy(GAME.sizes, [[[0.5, 0.5]], [[0.5]]])  # ragged
    assert check_local_policy(GAME.sizes, np.full((2, 2, 2), 0.5)).dtype == np.float64


def test_policy_config_may_hold_arrays_numpy_scalars_and_paths_and_reads_back_as_json(tmp_path):
    config = {"array": np.arange(3), "scalar": np.float32(0.5), "path": Path("runs/x.npz")}
    loaded = load_policy(save_policy(_policy(config=config), tmp_path / "p.npz"))
    assert loaded.meta["config"] == {"array": [0, 1, 2], "scalar": 0.5, "path": "runs/x.npz"}
    with pytest.raises(PolicyError, match=r"policy meta is not JSON-serialisable \(set is not JSON serialisable\)"):
        save_policy(_policy(config={"bad": {1}}), tmp_path / "q.npz")


@pytest.mark.parametrize("key", ["config", "metrics"])
def test_policy_config_and_metrics_are_dicts(key):
    good = _policy()
    meta = {**good.meta, key: [1, 2]}
    with pytest.raises(PolicyError, match=rf"^policy meta {key} is \[1, 2\]; it must be a dict$"):
        PolicyArtifact(pi_g=good.pi_g, pi_l=good.pi_l, meta=meta)
    assert PolicyArtifact(pi_g=good.pi_g, pi_l=good.pi_l, meta={**good.meta, key: {}}) == good


def test_a_filter_policys_prediction_model_has_the_games_shapes():
    spec = ObserverSpec("filter", 0.5, 3)
    P, mu0 = np.full((2, 2, 2), 0.5), np.full(2, 0.5)
    assert _policy(3, observer=spec, prediction=(P, mu0)).observer_P.shape == (2, 2, 2)
    with pytest.raises(PolicyError, match=r"observer_P has shape \(1, 2, 2\); expected \(n_sg, n_sl, n_sl\) = "
                                          r"\(2, 2, 2\)"):
        _policy(3, observer=spec, prediction=(P[:1], mu0))
    with pytest.raises(PolicyError, match=r"observer_mu0 has shape \(3,\); expected \(2,\)"):
        _policy(3, observer=spec, prediction=(P, np.full(3, 1 / 3)))
    with pytest.raises(PolicyError, match=r"a filter policy needs the game or prediction = \(P_fused, mu0\)"):
        build_policy(np.zeros((2, 10), np.int32), np.full((2, 2, 2), 0.5), K, n_ag=2, observer=spec)


@pytest.mark.parametrize("s_l, s_g, ok", [(1, 1, True), (0, 0, True), (2, 0, False), (0, 2, False), (-1, 0, False),
                                          (0, -1, False)])
def test_local_probs_on_both_sides_of_each_range(s_l, s_g, ok):
    policy = _policy()
    if ok:
        assert policy.local_probs(s_l, s_g).tolist() == [0.5, 0.5]
    else:
        with pytest.raises(PolicyError, match=rf"\(s_l, s_g\) = \({s_l}, {s_g}\) is out of range \[0, 2\) x \[0, 2\)"):
            policy.local_probs(s_l, s_g)


def test_build_policy_needs_three_axes_and_the_games_sizes():
    assert (_policy() == 3) is False and _policy() == _policy()
    with pytest.raises(PolicyError, match=r"^pi_l has shape \(2, 2\); expected \[n_sl, n_sg, n_al\]$"):
        build_policy(np.zeros((2, 3), np.int32), np.full((2, 2), 0.5), K, game=GAME)
    with pytest.raises(PolicyError, match=r"^build_policy needs the game or n_ag"):
        build_policy(np.zeros((2, 3), np.int32), np.full((2, 2, 2), 0.5), K)
    assert build_policy(np.zeros((2, 3), np.int32), np.full((2, 2, 2), 0.5), K, n_ag=2).sizes == (2, 2, 2, 2)


def test_observer_parameters_on_both_sides_of_their_limits():
    assert ObserverSpec("filter", 0.5, 3, prior=0.0).prior == 0.0
    with pytest.raises(ObserverError, match=r"^observer\.prior: is -1e-09; it must be >= 0$"):
        ObserverSpec("filter", 0.5, 3, prior=-1e-9)
    assert ObserverSpec("filter", 0.25, 3).memory(4) == pytest.approx(12.0)  # W = k (1 - a) / a
    with pytest.raises(ObserverError, match=r"^observer\.gain: is 0\.5; the fresh observer has gain 1"):
        ObserverSpec("fresh", 0.5, 3)
    with pytest.raises(ObserverError, match=r"^observer\.prior: is 1; it must be 0 for fresh$"):
        ObserverSpec("fresh", 1.0, 3, prior=1.0)
    with pytest.raises(ObserverError, match=r"^observer: is \{'name': 'fresh'\}; it needs exactly name, gain, "):
        ObserverSpec.from_meta({"name": "fresh"})
    spec = ObserverSpec("filter", 0.5, 3, 2.0)
    assert ObserverSpec.from_meta(spec.to_meta()) == spec


def test_a_registry_refuses_a_name_twice_and_an_observer_that_predicts_without_an_estimate():
    things = Registry("thing")
    things.register("a", 1)
    with pytest.raises(RegistryError, match=r"^name: thing 'a' is already registered$"):
        things.register("a", 2)
    assert things == {"a": 1}
    with pytest.raises(RegistryError, match=r"observer 'seer' predicts but keeps no estimate to predict"):
        register_observer(ObserverKind("seer", "test", estimates=False, predicts=True))


def test_training_options_name_an_unknown_start():
    with pytest.raises(LearnError, match=r"^start: must be one of \['best_constant', .*\], got 'best'$"):
        TrainOptions(start="best")
    assert TrainOptions(start="best_constant").start == "best_constant"


@pytest.mark.parametrize("seconds, text", [(1e12 - 1e-3, "1.16e+07 d"), (1e12, "more than 30,000 years"),
                                           (float("inf"), "more than 30,000 years"),
                                           (float("nan"), "more than 30,000 years")])
def test_durations_beyond_thirty_thousand_years_are_not_printed_as_numbers(seconds, text):
    assert format_duration(seconds) == text


def test_a_memory_budget_that_the_callers_reserve_already_fills_is_named():
    from altmarl_ros.core.glearn_memory import check_learning_size

    reserve = 10 << 20
    with pytest.raises(LearnError, match=r"^max_memory: is 10 MiB; ALTERNATING-MARL at k = 2 holds 10 MiB beside "):
        check_learning_size(GAME, K, 4, max_memory=reserve, reserve=reserve)
    assert check_learning_size(GAME, K, 4, max_memory=reserve + (1 << 20), reserve=reserve).n_f == 3


def test_json_longer_than_any_file_holds_is_refused_before_parsing():
    from altmarl_ros.core.safe_files import MAX_TEXT_BYTES, FileFormatError, parse_json

    limit = MAX_TEXT_BYTES * 64
    assert parse_json(" " * (limit - 1) + "1", "m.json") == 1  # exactly the limit: parsed
    with pytest.raises(FileFormatError, match=r"^m\.json: 64 MiB of JSON is more than this file ever holds$"):
        parse_json(" " * limit + "1", "m.json")


def test_a_tabular_continuous_game_needs_a_mean_field_game():
    from altmarl_ros.core.continuous import TabularGame

    with pytest.raises(LearnError, match=r"^game: must be a MeanFieldGame, got dict$"):
        TabularGame({})
    assert TabularGame(GAME).game is GAME


def test_simulator_arguments_that_do_not_fit_are_named():
    """The sampler's scenario type and state arrays (1-D integers, equal lengths), a float local action,
    a local policy of the wrong shape: each refused with its name, the valid form accepted."""
    from altmarl_ros.core.policy import PolicyMismatch
    from altmarl_sim.ring import RingError, target_zone
    from altmarl_sim.rollout import check_policy
    from altmarl_sim.sampler import SamplerError, SimSampler
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario("warehouse_ring")
    z = scenario.ring.n_zones
    with pytest.raises(SamplerError, match=r"^scenario: must be a Scenario \(load_scenario\), got str$"):
        SimSampler("warehouse_ring")
    sampler = SimSampler(scenario, pool_size=8, reward_samples=8)
    rng = np.random.default_rng(0)
    assert sampler.sample_global(np.array([0, 1]), np.array([1, 0]), rng).shape == (2,)
    with pytest.raises(SamplerError, match=r"^s_g: must be a 1-D integer array, got shape \(2,\) dtype float64$"):
        sampler.sample_global(np.array([0.0, 1.0]), np.array([1, 0]), rng)
    with pytest.raises(SamplerError, match=r"must have equal lengths, got \[2, 1\]"):
        sampler.sample_global(np.array([0, 1]), np.array([1]), rng)
    with pytest.raises(RingError, match=r"^local_action: must be an integer in 0\.\.2 .*got dtype float64$"):
        target_zone([0], [1.0], scenario.ring)
    assert target_zone([z - 1], [1], scenario.ring).tolist() == [0]
    with pytest.raises(PolicyMismatch, match=r"pi_l has shape \(1, 1, 3\); scenario warehouse_ring needs"):
        check_policy(scenario, None, np.full((1, 1, 3), 1 / 3), 2)
