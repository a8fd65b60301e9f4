"""MeanFieldGame validation, file formats and content hash."""
import os
import re

import numpy as np
import pytest
import yaml

from altmarl_ros.core.model import MeanFieldGame, ModelError, load_model, make_game, save_model
from altmarl_ros.errors import AltmarlError


def tiny_arrays(seed=0, n_sg=2, n_ag=3, n_sl=3, n_al=2):
    rng = np.random.default_rng(seed)

    def stochastic(*shape):
        raw = rng.random(shape) + 0.1
        return raw / raw.sum(axis=-1, keepdims=True)

    return dict(
        P_g=stochastic(n_sg, n_ag, n_sg),
        P_l=stochastic(n_sl, n_sg, n_al, n_sl),
        r_g=rng.normal(size=(n_sg, n_ag)),
        r_l=rng.normal(size=(n_sl, n_sg, n_al)),
        gamma=0.9,
    )


def test_make_game_sizes_defaults_and_read_only_copies():
    arrays = tiny_arrays()
    game = make_game(**arrays)
    assert game.sizes == (game.n_sg, game.n_ag, game.n_sl, game.n_al) == (2, 3, 3, 2)
    assert np.array_equal(game.mu0_g, [0.5, 0.5]) and np.allclose(game.mu0_l, 1 / 3)
    for key in ("P_g", "P_l", "r_g", "r_l", "mu0_g", "mu0_l"):
        array = getattr(game, key)
        assert array.dtype == np.float64 and array.flags.c_contiguous and not array.flags.writeable
    arrays["P_g"][0, 0, 0] = 99.0  # the game holds its own copy
    assert game.P_g[0, 0, 0] != 99.0
    assert isinstance(game.gamma, float)


def test_content_hash_is_stable_and_sensitive():
    game = make_game(**tiny_arrays())
    assert len(game.content_hash()) == 16 and int(game.content_hash(), 16) >= 0
    # the same numbers from another dtype/layout hash the same; labels do not count
    arrays = tiny_arrays()
    arrays["P_l"] = np.asfortranarray(arrays["P_l"])
    same = make_game(**arrays, name="other", description="x")
    assert same.content_hash() == game.content_hash() and same == game
    changed = tiny_arrays()
    changed["r_l"][1, 0, 1] += 1e-12
    assert make_game(**changed).content_hash() != game.content_hash()
    assert make_game(**{**tiny_arrays(), "gamma": 0.91}).content_hash() != game.content_hash()
    mu = make_game(**tiny_arrays(), mu0_g=[0.25, 0.75])
    assert mu.content_hash() != game.content_hash()


def test_content_hash_value_is_pinned():
    """Policy files store this hash: changing the hashing scheme would orphan them."""
    game = make_game(
        P_g=[[[1.0]]], P_l=[[[[1.0]]]], r_g=[[1.0]], r_l=[[[0.5]]], gamma=0.5
    )
    assert game.content_hash() == PINNED_HASH


PINNED_HASH = "b65733818c62f9e8"


def bad(key, value, **extra):
    arrays = tiny_arrays()
    arrays[key] = value
    arrays.update(extra)
    return arrays


def _broken_row(arrays):
    P_l = arrays["P_l"].copy()
    P_l[2, 0, 1, 0] -= 0.07
    return P_l


@pytest.mark.parametrize(
    "arrays, pattern",
    [
        (bad("P_g", np.ones((2, 3, 3)) / 3), r"P_g has shape \(2, 3, 3\); expected \(2, 3, 2\)"),
        (bad("P_l", np.ones((3, 4, 2, 3)) / 3), r"P_l has shape \(3, 4, 2, 3\); expected \(3, 2, 2, 3\).*S_g = 2 "
                                                r"from P_g"),
        (bad("r_g", np.zeros((2, 2))), r"r_g has shape \(2, 2\); expected \(2, 3\)"),
        (bad("r_l", np.zeros((3, 2, 3))), r"r_l has shape \(3, 2, 3\); expected \(3, 2, 2\)"),
        (bad("P_l", np.zeros((3, 2, 3))), r"P_l has 3 dimensions"),
        (bad("P_l", _broken_row(tiny_arrays())), r"P_l\[2, 0, 1, :\] sums to 0\.93"),
        (bad("r_g", np.array([[0.0, np.nan, 0.0], [0.0, 0.0, 0.0]])), r"r_g\[0, 1\] is nan"),
        (bad("r_l", np.full((3, 2, 2), np.inf)), r"r_l\[0, 0, 0\] is inf"),
        (bad("P_g", np.array([[[1.5, -0.5]] * 3] * 2)), r"P_g\[0, 0, 1\] is -0\.5; probabilities must be >= 0"),
        (bad("gamma", 1.0), r"gamma is 1\.0; it must be in \[0, 1\)"),
        (bad("gamma", -0.1), r"gamma is -0\.1"),
        (bad("gamma", "high"), r"gamma is 'high'"),
        (bad("gamma", float("nan")), r"gamma is nan"),
        (bad("P_g", [[[0.5, 0.5]], [[1.0]]]), r"P_g is not a numeric array"),
        (bad("gamma", 0.9, mu0_g=[0.5, 0.6]), r"mu0_g\[:\] sums to 1\.1"),
        (bad("gamma", 0.9, mu0_l=[0.5, 0.5]), r"mu0_l has shape \(2,\); expected \(3,\)"),
        (bad("r_g", np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1j]])), r"r_g holds complex numbers"),
        (bad("r_g", np.array([[0.0, 0.0, 0.0], [0.0, 2e9, 0.0]])), r"r_g\[1, 1\] is 2e\+09; rewards must be within"),
    ],
)
def test_invalid_games_name_array_index_and_fix(arrays, pattern):
    with pytest.raises(ModelError, match=pattern) as info:
        make_game(**arrays)
    assert isinstance(info.value, AltmarlError)


@pytest.mark.parametrize("key, row", [("mu0_g", "mu0_g[:]"), ("mu0_l", "mu0_l[:]"), ("P_g", "P_g[0, 0, :]"),
                                      ("P_l", "P_l[0, 0, 0, :]")])
def test_every_distribution_sums_to_one_within_1e_9(key, row):
    """The documented tolerance: a row off by 1e-8 is refused (naming it), one off by 1e-11 accepted."""
    def arrays_with(excess):
        arrays = dict(tiny_arrays(), mu0_g=np.array([0.25, 0.75]), mu0_l=np.array([0.2, 0.3, 0.5]))
        value = np.array(arrays[key], dtype=float)
        value[(0,) * value.ndim] += excess
        arrays[key] = value
        return arrays

    make_game(**arrays_with(1e-11))
    with pytest.raises(ModelError, match=re.escape(f"{row} sums to 1.00000001")):
        make_game(**arrays_with(1e-8))


@pytest.mark.parametrize("key, shape", [("P_g", (0, 3, 0)), ("P_l", (3, 2, 0, 3))])
def test_empty_state_or_action_sets_are_refused(key, shape):
    arrays = tiny_arrays()
    arrays[key] = np.zeros(shape)
    if key == "P_g":
        arrays["r_g"] = np.zeros((0, 3))
    with pytest.raises(ModelError, match="every state and action set needs at least one element"):
        make_game(**arrays)


def test_rewards_may_reach_1e9_and_the_first_entry_beyond_is_named():
    """docs/operations.md: |r| <= 1e9; the error names the first offending entry in C order."""
    arrays = tiny_arrays()
    arrays["r_g"][0, 1], arrays["r_l"][2, 1, 0] = -1e9, 1e9
    make_game(**arrays)
    arrays["r_l"][0, 1, 1], arrays["r_l"][1, 0, 0] = -np.nextafter(1e9, np.inf), 3e9
    with pytest.raises(ModelError, match=r"r_l\[0, 1, 1\] is -1e\+09; rewards must be within \+-1e\+09"):
        make_game(**arrays)


def test_direct_construction_is_validated_too():
    with pytest.raises(ModelError, match="gamma"):
        MeanFieldGame(**bad("gamma", 1.0))


@pytest.mark.parametrize("suffix", [".npz", ".yaml", ".yml"])
def test_save_load_round_trip_is_exact(tmp_path, suffix):
    arrays = tiny_arrays(seed=3)
    arrays["r_l"][0, 0, 0], arrays["r_g"][1, 2] = 1e-05, -2e-10  # repr without a '.': "1e-05"
    game = make_game(**arrays, mu0_l=[0.2, 0.3, 0.5], name="tiny", description="a test")
    path = save_model(game, tmp_path / f"m{suffix}")
    loaded = load_model(path)
    for key in ("P_g", "P_l", "r_g", "r_l", "mu0_g", "mu0_l"):
        assert np.array_equal(getattr(loaded, key), getattr(game, key))
    assert loaded.gamma == game.gamma and loaded.content_hash() == game.content_hash()
    assert (loaded.name, loaded.description) == ("tiny", "a test")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    if suffix != ".npz":  # any YAML 1.1 reader (not only ours) gets floats, not the string "1e-05"
        assert yaml.safe_load(path.read_text())["r_l"][0][0][0] == 1e-05


def test_hand_written_yaml(tmp_path):
    path = tmp_path / "coin.yaml"
    path.write_text(
        "# one global state, two local states\n"
        "gamma: 0.9\n"
        "P_g: [[[1.0]]]\n"  # S_g = 1, A_g = 1
        "r_g: [[0]]\n"
        "P_l:\n"
        "  - [[[0.9, 0.1], [0.1, 0.9]]]\n"
        "  - [[[0.5, 0.5], [0.0, 1.0]]]\n"
        "r_l:\n"
        "  - [[1, 0]]\n"
        "  - [[0, 2]]\n"
    )
    game = load_model(path)
    assert game.sizes == (1, 1, 2, 2) and game.name == "coin"
    assert game.P_l[1, 0, 1, 1] == 1.0 and game.r_l[1, 0, 1] == 2.0


def write_yaml(tmp_path, text):
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return path


GOOD_YAML = "gamma: 0.5\nP_g: [[[1.0]]]\nr_g: [[0.0]]\nP_l: [[[[1.0]]]]\nr_l: [[[1.0]]]\n"


@pytest.mark.parametrize(
    "text, pattern",
    [
        (GOOD_YAML + "rewards: 3\n", r"model\.yaml: unknown key\(s\) rewards"),
        (GOOD_YAML.replace("gamma: 0.5\n", ""), r"missing key\(s\) gamma"),
        (GOOD_YAML.replace("0.5", "1"), r"model\.yaml: gamma is 1\.0"),
        (GOOD_YAML.replace("P_l: [[[[1.0]]]]", "P_l: [[[[0.5]]]]"), r"model\.yaml: P_l\[0, 0, 0, :\] sums to 0\.5"),
        ("- 1\n- 2\n", r"top level must be a mapping"),
        ("gamma: [\n", r"not valid YAML"),
    ],
)
def test_bad_yaml_files(tmp_path, text, pattern):
    with pytest.raises(ModelError, match=pattern):
        load_model(write_yaml(tmp_path, text))


def test_bad_npz_files(tmp_path):
    game = make_game(**tiny_arrays())
    arrays = {k: np.asarray(getattr(game, k)) for k in ("P_g", "P_l", "r_g", "r_l")}
    np.savez(tmp_path / "extra.npz", gamma=0.9, extra=np.zeros(2), **arrays)
    with pytest.raises(ModelError, match=r"extra\.npz: unknown key\(s\) extra"):
        load_model(tmp_path / "extra.npz")
    np.savez(tmp_path / "vector_gamma.npz", gamma=[0.9, 0.8], **arrays)
    with pytest.raises(ModelError, match=r"vector_gamma\.npz: gamma has shape \(2,\); it must be a scalar"):
        load_model(tmp_path / "vector_gamma.npz")
    del arrays["r_l"]
    np.savez(tmp_path / "missing.npz", gamma=0.9, **arrays)
    with pytest.raises(ModelError, match=r"missing key\(s\) r_l"):
        load_model(tmp_path / "missing.npz")
    save_model(game, tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"truncated\.npz: not a readable \.npz"):
        load_model(tmp_path / "truncated.npz")
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "absent.npz")
    with pytest.raises(ModelError, match="unknown model file type"):
        load_model(tmp_path / "model.json")


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    game = make_game(**tiny_arrays())
    path = save_model(game, tmp_path / "m.npz")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_model(make_game(**tiny_arrays(seed=9)), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
