"""Policy artifact: validation, exact round trip, atomic save, mismatch reporting."""
import dataclasses
import json
import os
import zipfile

import numpy as np
import pytest

from altmarl_ros.core.counts import enumerate_count_vectors, n_count_vectors
from altmarl_ros.core.model import make_game
from altmarl_ros.core.policy import (
    PolicyArtifact,
    PolicyError,
    PolicyMismatch,
    build_policy,
    load_policy,
    save_policy,
    uniform_local_policy,
)

K = 3


def tiny_game(gamma=0.9, n_sl=3):
    n_sg, n_ag, n_al = 2, 3, 2
    P_g = np.full((n_sg, n_ag, n_sg), 1.0 / n_sg)
    P_l = np.full((n_sl, n_sg, n_al, n_sl), 1.0 / n_sl)
    return make_game(P_g=P_g, P_l=P_l, r_g=np.zeros((n_sg, n_ag)),
                     r_l=np.ones((n_sl, n_sg, n_al)), gamma=gamma)


def tiny_policy(game=None, k=K, seed=0, **extra):
    game = game or tiny_game()
    rng = np.random.default_rng(seed)
    pi_g = rng.integers(0, game.n_ag, size=(game.n_sg, n_count_vectors(k, game.n_sl)))
    pi_l = rng.random((game.n_sl, game.n_sg, game.n_al))
    pi_l /= pi_l.sum(axis=-1, keepdims=True)
    return build_policy(pi_g, pi_l, k, game=game,
                        config={"m": 30, "seed": np.int64(seed)}, metrics={"welfare": np.float64(1.5)}, **extra)


def test_build_records_identity_and_lookups_follow_ranking():
    game = tiny_game()
    policy = tiny_policy(game)
    assert policy.k == K and policy.sizes == game.sizes
    assert policy.meta["model_hash"] == game.content_hash()
    assert policy.meta["ranking_scheme"] == "colex-combinadic-v1"
    assert policy.meta["config"] == {"m": 30, "seed": 0}  # numpy scalars become JSON numbers
    assert policy.pi_g.dtype == np.int32 and not policy.pi_g.flags.writeable
    for r, F in enumerate(enumerate_count_vectors(K, game.n_sl)):
        assert policy.global_action(1, F) == policy.pi_g[1, r]
    assert np.array_equal(policy.local_probs(2, 1), policy.pi_l[2, 1])
    with pytest.raises(PolicyError, match="summing to the observer.s resolution 3"):
        policy.global_action(0, [1, 1, 0])
    with pytest.raises(PolicyError, match="s_g = 2 is out of range"):
        policy.global_action(2, [1, 1, 1])


def test_round_trip_is_exact(tmp_path):
    policy = tiny_policy(scenario=("warehouse_ring", "abcdef0123456789"))
    path = save_policy(policy, tmp_path / "runs" / "x" / "policy.npz")
    loaded = load_policy(path, game=tiny_game(), k=K, scenario_hash="abcdef0123456789", observer="fresh")
    assert np.array_equal(loaded.pi_g, policy.pi_g) and loaded.pi_g.dtype == np.int32
    assert np.array_equal(loaded.pi_l, policy.pi_l)
    assert loaded.meta == policy.meta and loaded.policy_id == policy.policy_id
    assert loaded == policy
    assert sorted(p.name for p in path.parent.iterdir()) == ["policy.npz"]


def test_policy_id_ignores_metrics_but_not_arrays_or_identity():
    """The nodes compare policy ids to refuse mismatched halves: any change of pi_g, pi_l or an
    identity key must change the id; config and metrics must not."""
    policy = tiny_policy()
    relabelled = PolicyArtifact(policy.pi_g, policy.pi_l, {**policy.meta, "metrics": {"welfare": 2.0},
                                                           "config": {"m": 1}})
    assert relabelled.policy_id == policy.policy_id
    assert len(policy.policy_id) == 16
    for field in ("pi_g", "pi_l", "meta"):  # the id is computed once: nothing it hashes can be rebound
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(policy, field, getattr(relabelled, field))
    pi_g = policy.pi_g.copy()
    pi_g[1, 2] = (pi_g[1, 2] + 1) % policy.sizes[1]
    pi_l = policy.pi_l.copy()
    pi_l[2, 1] = pi_l[2, 1, ::-1]  # one row's probabilities swapped: a different local policy
    assert not np.array_equal(pi_l, policy.pi_l)
    changed = [PolicyArtifact(pi_g, policy.pi_l, policy.meta), PolicyArtifact(policy.pi_g, pi_l, policy.meta),
               PolicyArtifact(policy.pi_g, policy.pi_l, {**policy.meta, "model_hash": "0" * 16}),
               tiny_policy(scenario=("warehouse_ring", "abcdef0123456789"))]
    ids = {policy.policy_id} | {other.policy_id for other in changed}
    assert len(ids) == 1 + len(changed)


def test_equality_is_same_arrays_and_metadata_and_one_action_sets_are_valid():
    policy = tiny_policy(seed=0)
    pi_g = policy.pi_g.copy()
    pi_g[0, 0] = (pi_g[0, 0] + 1) % policy.sizes[1]
    other = PolicyArtifact(pi_g, policy.pi_l, policy.meta)  # same metadata, another pi_g
    assert policy != other and other != policy  # both ways: ids differ
    assert policy == PolicyArtifact(policy.pi_g.copy(), policy.pi_l.copy(), dict(policy.meta))
    game = make_game(P_g=np.ones((2, 1, 2)) / 2, P_l=np.ones((3, 2, 1, 3)) / 3, r_g=np.zeros((2, 1)),
                     r_l=np.zeros((3, 2, 1)), gamma=0.5)  # one global and one local action
    single = tiny_policy(game)
    assert single.sizes == (2, 1, 3, 1) and single.local_probs(0, 0).tolist() == [1.0]


def test_mismatch_lists_every_difference(tmp_path):
    path = save_policy(tiny_policy(scenario=("ring", "1111111111111111")), tmp_path / "p.npz")
    other = tiny_game(gamma=0.8, n_sl=4)
    with pytest.raises(PolicyMismatch) as info:
        load_policy(path, game=other, k=5, scenario_hash="2222222222222222", observer="filter")
    message = str(info.value)
    for fragment in ("p.npz", "model hash", "n_sl 3 in the policy, 4 in the model",
                     "k 3 in the policy, 5 requested", "scenario hash 1111111111111111",
                     "observer fresh in the policy"):
        assert fragment in message
    assert "n_sg" not in message  # only real differences are listed


def test_the_uniform_local_policy_is_one_over_the_local_actions():
    game = tiny_game()
    assert np.array_equal(uniform_local_policy(game), np.full((game.n_sl, game.n_sg, game.n_al), 1 / game.n_al))


def test_a_filter_policy_built_from_the_game_carries_the_model_it_predicts_with():
    from altmarl_ros.core.observers import ObserverSpec

    game = tiny_game()  # every local moves uniformly whatever it does: the fused model is uniform
    artifact = tiny_policy(game, observer=ObserverSpec("filter", 0.5, K))
    assert np.allclose(artifact.observer_P, np.full((game.n_sg, game.n_sl, game.n_sl), 1 / game.n_sl),
                       rtol=0, atol=1e-15)
    assert np.array_equal(artifact.observer_mu0, game.mu0_l)


def test_a_filter_policy_given_its_prediction_model_keeps_it_over_the_games():
    from altmarl_ros.core.observers import ObserverSpec

    game = tiny_game()
    rng = np.random.default_rng(5)
    given = (rng.dirichlet(np.ones(game.n_sl), size=(game.n_sg, game.n_sl)), rng.dirichlet(np.ones(game.n_sl)))
    artifact = tiny_policy(game, observer=ObserverSpec("filter", 0.5, K), prediction=given)
    assert np.array_equal(artifact.observer_P, given[0]) and np.array_equal(artifact.observer_mu0, given[1])


def test_a_policy_carries_both_prediction_arrays_exactly_when_its_observer_predicts():
    from altmarl_ros.core.observers import ObserverSpec

    filtering, fresh = tiny_policy(observer=ObserverSpec("filter", 0.5, K)), tiny_policy()
    P, mu0 = filtering.prediction
    for policy, given, says in ((fresh, dict(observer_P=P), "has no"), (fresh, dict(observer_mu0=mu0), "has no"),
                                (fresh, dict(observer_P=P, observer_mu0=mu0), "has no"),
                                (filtering, dict(observer_P=P), "needs"), (filtering, dict(observer_mu0=mu0), "needs"),
                                (filtering, {}, "needs")):
        with pytest.raises(PolicyError, match=rf"^a {policy.observer.name} policy {says} observer_P and observer_mu0"):
            PolicyArtifact(policy.pi_g, policy.pi_l, policy.meta, **given)
    assert PolicyArtifact(filtering.pi_g, filtering.pi_l, filtering.meta, observer_P=P, observer_mu0=mu0) == filtering


@pytest.mark.parametrize("scheme", ["dense-v0", "colex-combinadic-v0"])  # sorting after and before this one
def test_ranking_scheme_mismatch(tmp_path, scheme):
    policy = tiny_policy()
    path = tmp_path / "p.npz"
    meta = {**policy.meta, "ranking_scheme": scheme}
    save_policy(PolicyArtifact(policy.pi_g, policy.pi_l, meta), path)
    with pytest.raises(PolicyMismatch, match=f"ranking scheme '{scheme}' in the policy, 'colex-combinadic-v1' in"):
        load_policy(path)


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    path = save_policy(tiny_policy(), tmp_path / "good.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    for name in ("cut.npz", "junk.npz"):
        with pytest.raises(PolicyError, match=rf"{name}: not a readable policy file"):
            load_policy(tmp_path / name)
    with pytest.raises(PolicyError, match=r"absent\.npz: no such policy file"):
        load_policy(tmp_path / "absent.npz")
    for extra in ("junk", "zzz"):  # an unknown key sorting before and after the expected ones
        np.savez(tmp_path / "extra.npz", pi_g=np.zeros(1), pi_l=np.zeros(1), meta="{}", **{extra: 1})
        with pytest.raises(PolicyError, match=r"extra\.npz: policy file has keys"):
            load_policy(tmp_path / "extra.npz")


def test_edited_file_with_bad_contents(tmp_path):
    policy = tiny_policy()
    path = tmp_path / "edited.npz"
    pi_g = np.array(policy.pi_g)
    pi_g[1, 4] = 7
    np.savez(path, pi_g=pi_g, pi_l=policy.pi_l, meta=np.str_(json.dumps(policy.meta)))
    with pytest.raises(PolicyError, match=r"edited\.npz: pi_g\[1, 4\]: is 7; global actions are 0\.\.2"):
        load_policy(path)
    np.savez(path, pi_g=policy.pi_g, pi_l=policy.pi_l, meta=np.str_("{not json"))
    with pytest.raises(PolicyError, match=r"edited\.npz: meta: not valid JSON"):
        load_policy(path)


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda g, pl, m: (g[:, :-1], pl, m), r"pi_g: has shape \(2, 9\); expected \(n_sg, N_F\) = \(2, 10\)"),
        (lambda g, pl, m: (g.astype(float), pl, m), r"pi_g: has dtype float64"),
        (lambda g, pl, m: (g, pl * 2, m), r"pi_l\[0, 0, :\]: sums to"),
        (lambda g, pl, m: (g, pl[:, :, :1], m), r"pi_l: has shape \(3, 2, 1\)"),
        (lambda g, pl, m: (g, pl, {**m, "format_version": 99}), r"format_version is 99"),
        (lambda g, pl, m: (g, pl, {**m, "k": 0}), r"k is 0"),
        (lambda g, pl, m: (g, pl, {**m, "k": 2**31}), r"k is 2147483648.*\[1, 2147483647\]"),  # int32's largest
        (lambda g, pl, m: (g, pl, {**m, "sizes": {**m["sizes"], "n_al": 0}}), r"meta sizes is .*integers n_sg, n_ag, "
                                                                              r"n_sl, n_al in \[1, "),
        (lambda g, pl, m: (g, pl, {**m, "sizes": {key: m["sizes"][key] for key in ("n_sg", "n_ag", "n_sl")}}),
         r"meta sizes is .*integers n_sg, n_ag, n_sl, n_al in \[1, "),  # a size missing
        (lambda g, pl, m: (g, pl, {**m, "sizes": {**m["sizes"], "n_x": 1}}), r"meta sizes is .*integers n_sg, n_ag, "
                                                                            r"n_sl, n_al in \[1, "),  # one too many
        (lambda g, pl, m: (g, pl, {**m, "scenario": {"name": "ring", "hash": 5}}), r"meta scenario is .*; use None "
                                                                                  r"or \{'name': \.\.\., 'hash': "),
        (lambda g, pl, m: (g, pl, {**m, "scenario": "ring"}), r"meta scenario is 'ring'; use None or"),
        (lambda g, pl, m: (g, pl, {**m, "extra": 1}), r"unknown key\(s\) \[extra\]"),
        (lambda g, pl, m: (g, pl, {**m, "metrics": {"x": object()}}), r"not JSON-serialisable"),
    ],
)
def test_invalid_artifacts(change, pattern):
    policy = tiny_policy()
    pi_g, pi_l, meta = change(np.array(policy.pi_g), np.array(policy.pi_l), dict(policy.meta))
    with pytest.raises(PolicyError, match=pattern):
        PolicyArtifact(pi_g, pi_l, meta)


def test_a_bad_policy_array_names_its_first_bad_entry_in_row_major_order():
    policy = tiny_policy()
    pi_g, pi_l = np.array(policy.pi_g), np.array(policy.pi_l)
    pi_g[0, 2], pi_g[1, 4] = -1, 7
    with pytest.raises(PolicyError, match=r"^pi_g\[0, 2\]: is -1; global actions are 0\.\.2$"):
        PolicyArtifact(pi_g, policy.pi_l, policy.meta)
    pi_l[0, 1, 0], pi_l[2, 0, 1] = np.nan, -0.5
    with pytest.raises(PolicyError, match=r"^pi_l\[0, 1, 0\]: is nan; probabilities are finite and >= 0$"):
        PolicyArtifact(policy.pi_g, pi_l, policy.meta)


def test_failed_save_never_clobbers_old_file(tmp_path, monkeypatch):
    path = save_policy(tiny_policy(seed=0), tmp_path / "p.npz")
    before = path.read_bytes()
    real_savez = np.savez

    def savez_then_crash(stream, **arrays):
        real_savez(stream, **arrays)
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save_policy(tiny_policy(seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]
    assert zipfile.is_zipfile(path) and load_policy(path) == tiny_policy(seed=0)
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_sampler_trained_policy_records_scenario(tmp_path):
    game = tiny_game()
    pi_g = np.zeros((2, n_count_vectors(K, 3)), dtype=np.int64)
    pi_l = np.full((3, 2, 2), 0.5)
    policy = build_policy(pi_g, pi_l, K, n_ag=3, scenario=("warehouse_ring", "feedfacefeedface"))
    assert policy.meta["model_hash"] is None and policy.sizes == (2, 3, 3, 2)
    path = save_policy(policy, tmp_path / "p.npz")
    load_policy(path, game=game, k=K, scenario_hash="feedfacefeedface")  # sizes match, no hash to compare
    with pytest.raises(PolicyMismatch, match="scenario hash feedfacefeedface in the policy, 0000"):
        load_policy(path, scenario_hash="0000")
    with pytest.raises(PolicyError, match="policy files end in .npz"):
        save_policy(policy, tmp_path / "p.yaml")
