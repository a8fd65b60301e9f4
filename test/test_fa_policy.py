"""FA policy files (altmarl_ros/core/fa_policy.py): round trip, acting as the networks say, and one-line
errors naming the member and the fix for every way a file can be wrong, as tabular policy files get."""
import json
import zipfile

import numpy as np
import pytest

from altmarl_ros.core.continuous import BimodalLine
from altmarl_ros.core.fa_policy import build_fa_policy, load_fa_policy, save_fa_policy
from altmarl_ros.core.policy import load_policy
from altmarl_ros.errors import PolicyError, PolicyMismatch

GAME = BimodalLine()


def _layers(rng, sizes):
    return [(rng.normal(size=(a, b)).astype(np.float32), rng.normal(size=b).astype(np.float32))
            for a, b in zip(sizes[:-1], sizes[1:])]


@pytest.fixture
def policy():
    rng = np.random.default_rng(0)
    return build_fa_policy(GAME, 3, _layers(rng, (6, 8, 8, 5)), _layers(rng, (2, 8, 8, 3)),
                           global_inputs="state+summary", hidden=(8, 8), metrics={"welfare": 1.5})


def test_round_trip_and_greedy_actions(tmp_path, policy):
    path = save_fa_policy(policy, tmp_path / "p.npz")
    loaded = load_fa_policy(path, game=GAME, k=3)
    assert loaded.policy_id == policy.policy_id and loaded.meta == policy.meta
    s_g = np.array([0.1, -1.5])
    sampled = np.array([[0.0, 0.1, 1.7], [-1.9, -1.9, 0.5]])
    x = np.concatenate([s_g[:, None], np.stack([np.histogram(row, np.linspace(-2, 2, 6))[0] / 3
                                                for row in sampled])], axis=1)
    h = x
    for W, b in policy.global_params[:-1]:
        h = np.tanh(h @ W + b)
    expected = np.argmax(h @ policy.global_params[-1][0] + policy.global_params[-1][1], axis=1)
    assert loaded.global_action(GAME, s_g, sampled).tolist() == expected.tolist()
    short = np.concatenate([s_g[:, None], np.stack([np.histogram(row[:2], bins=5, range=(-2, 2))[0] / 2
                                                    for row in sampled[:, :2]])], axis=1)
    for W, b in policy.global_params[:-1]:
        short = np.tanh(short @ W + b)  # fewer than k (a node's missed replies): the histogram of those
    assert loaded.global_action(GAME, s_g, sampled[:, :2]).tolist() == np.argmax(
        short @ policy.global_params[-1][0] + policy.global_params[-1][1], axis=1).tolist()
    for bad in (sampled[:, :0], np.concatenate([sampled, sampled[:, :1]], axis=1)):
        with pytest.raises(PolicyError, match=f"got {bad.shape[1]} sampled states; this policy reads 1 to k = 3"):
            loaded.global_action(GAME, s_g, bad)
    assert loaded.local_actions(GAME, np.array([0.3, -0.3]), 0.0).shape == (2,)


def _rewrite(path, change):
    """Rewrite the .npz with change(members) applied."""
    with np.load(path) as data:
        members = dict(data)
    change(members)
    np.savez(path, **members)


def _meta_change(**updates):
    def change(members):
        meta = json.loads(str(members["meta"]))
        meta.update(updates)
        members["meta"] = np.str_(json.dumps(meta))
    return change


@pytest.mark.parametrize("change, message", [
    (lambda m: m.__setitem__("g_W1", np.zeros((8, 7), np.float32)),
     r"g_W1: has shape \(8, 7\); expected \(8, 8\) \(layer 1 of the global network: 8 inputs, 8 outputs\)"),
    (lambda m: m["l_b2"].__setitem__(1, np.nan), r"l_b2\[1\]: is nan; weights are finite"),
    (lambda m: m.__setitem__("l_W0", m["l_W0"].astype(np.int64)), r"l_W0: has dtype int64; weights are floats"),
    (lambda m: m.pop("g_b2"), r"the global network's layers are incomplete .*each layer i needs g_W<i> and g_b<i>"),
    (lambda m: m.__setitem__("x_W0", np.zeros(1)), r"unknown member 'x_W0'"),
    (lambda m: m.pop("meta"), r"an FA policy file has a 'meta' JSON text member"),
    (_meta_change(format_version=7), r"FA policy format is 'altmarl-fa' version 7; .* retrain"),
    (_meta_change(hidden=[8]), r"the global network has 3 layers; meta hidden \[8\] means 2"),
    (_meta_change(global_inputs="all"), r"global_inputs is 'all'; use one of"),
    (_meta_change(k=0), r"meta k is 0; it must be an integer"),
    (_meta_change(observer={"name": "filter"}), r"meta observer: is \{'name': 'filter'\}; filter needs exactly gain, "
                                               r"name, window"),
    (_meta_change(observer={"name": "fresh", "window": 1}), r"meta observer: is .*; fresh needs exactly name$"),
    (_meta_change(observer=["fresh"]), r"meta observer: is \['fresh'\]; it needs a name"),
    (_meta_change(observer={"name": "kalman"}), r"meta observer: is 'kalman'; a continuous model's observers are "),
    (_meta_change(observer={"name": "pool", "window": 3, "gain": -0.5}), r"meta observer.gain: is -0.5; pool weighs"),
    (_meta_change(extra=1), r"unknown key\(s\) \[extra\]"),
])
def test_a_bad_file_gets_one_line_naming_what_and_the_fix(tmp_path, policy, change, message):
    path = save_fa_policy(policy, tmp_path / "p.npz")
    _rewrite(path, change)
    with pytest.raises(PolicyError, match=message) as caught:
        load_fa_policy(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path))


def test_mismatches_are_all_named(tmp_path, policy):
    path = save_fa_policy(policy, tmp_path / "p.npz")
    other = BimodalLine(steer=0.5)
    with pytest.raises(PolicyMismatch, match=r"model setup_b \(hash \w+\) in the policy, setup_b \(\w+\) here; "
                                             r"k 3 in the policy, 4 requested"):
        load_fa_policy(path, game=other, k=4)


def test_files_of_the_other_kind_are_named(tmp_path, policy):
    path = save_fa_policy(policy, tmp_path / "p.npz")
    with pytest.raises(PolicyError, match="is a function-approximation policy"):
        load_policy(path)
    with pytest.raises(PolicyError, match="no such policy file"):
        load_fa_policy(tmp_path / "missing.npz")
    with zipfile.ZipFile(tmp_path / "junk.npz", "w") as archive:
        archive.writestr("readme.txt", "x")
    with pytest.raises(PolicyError, match="junk.npz"):
        load_fa_policy(tmp_path / "junk.npz")


@pytest.mark.slow
def test_jax_is_imported_by_the_learners_only():
    """The CLI's parser, the policy checks, the continuous games and the ROS nodes never pay JAX's import."""
    from _fresh_python import packages_imported

    code = ("import altmarl_ros.cli as cli; cli.build_parser(); import altmarl_ros.core.policy, "
            "altmarl_ros.core.continuous, altmarl_ros.core.fa_policy, altmarl_ros.commands._continuous, "
            "altmarl_ros.nodes.coordinator, altmarl_ros.nodes.local_agents")
    jax = ("jax", "jaxlib", "optax")
    assert packages_imported(code, jax) == []
    assert "jax" in packages_imported("import altmarl_ros.core.fa_alternating", jax)  # the check can see JAX
