"""A function-approximation (FA) joint policy as one versioned file, validated like a tabular one.

The continuous games' policies (core/continuous.py) are two MLPs, not tables:
the global network maps the global agent's observation (its state's features and
the summary of its k samples, or the summary alone: `global_inputs`) to logits over
A_g; the local network maps a local's (s_l, s_g) features to logits over A_l.
Deployed, both act greedily (argmax), as the authors' evaluation does.

File (.npz, written atomically, no pickles): `g_W0, g_b0, ..., l_W0, l_b0, ...`
float32 weights ([inputs, outputs]) and biases, and `meta`, a JSON string with keys
  format ("altmarl-fa"), format_version, model ({name, hash}), k, n_ag, n_al,
  global_inputs ("state+summary" | "summary"), inputs ({global, local}: feature sizes),
  hidden (layer widths), activation ("tanh"), observer (core/fa_observer.py: {"name": "fresh"}, or an
  observer that estimates, pool or filter, with its window and gain; the global network was trained on that
  observer's estimate), config, metrics.
`load_fa_policy` checks every array against the metadata and, given the game and k,
names every mismatch at once (PolicyMismatch), as core.policy.load_policy does.
No JAX here: acting and checking a policy never import it (`mlp_apply` takes `xp`,
so the learners' jitted code runs the same forward pass with jax.numpy).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altmarl_ros.core.atomic import atomic_writer
from altmarl_ros.core.fa_observer import FRESH, FAObserverSpec
from altmarl_ros.core.observers import ObserverError
from altmarl_ros.core.safe_files import clip_text, load_npz, parse_json
from altmarl_ros.errors import PolicyError, PolicyMismatch

FORMAT = "altmarl-fa"
FORMAT_VERSION = 1
GLOBAL_INPUTS = ("state+summary", "summary")
ACTIVATION = "tanh"
META_KEYS = ("format", "format_version", "model", "k", "n_ag", "n_al", "global_inputs", "inputs", "hidden",
             "activation", "observer", "config", "metrics")
IDENTITY_KEYS = META_KEYS[:-2]
NETWORKS = {"g": "global", "l": "local"}
_ARRAY_KEY = re.compile(r"^([gl])_([Wb])(\d+)$")


def mlp_apply(params, x, xp=np):
    """Logits of the MLP `params` = [(W, b), ...] at `x` [..., inputs]: tanh between layers."""
    for W, b in params[:-1]:
        x = xp.tanh(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def global_observation(game, s_g, summary, global_inputs: str, xp=np):
    """What the global network reads: its state's features and `summary` (of its k samples, `game.summary`,
    or an observer's estimate of it), or the summary alone (the authors' dispatcher reads the histogram alone)."""
    if global_inputs == "summary":
        return summary
    return xp.concatenate([game.global_state_features(s_g, xp), summary], axis=-1)


def observation_sizes(game, k: int, global_inputs: str) -> dict:
    """{"global": d_g, "local": d_l}: the networks' input sizes on `game` at k."""
    state = np.zeros((1, *game.state_shape), game.state_dtype)
    summary = game.summary(np.zeros((1, k, *game.state_shape), game.state_dtype))
    return {"global": int(global_observation(game, state, summary, global_inputs).shape[-1]),
            "local": int(game.local_features(state, state).shape[-1])}


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2 ** 31 - 1


def _check_meta(meta) -> dict:
    if not isinstance(meta, dict):
        raise PolicyError(f"FA policy meta must be a dict with keys {', '.join(META_KEYS)}")
    meta = json.loads(json.dumps(meta))
    missing = [key for key in META_KEYS if key not in meta]
    unknown = sorted(set(meta) - set(META_KEYS))
    if missing or unknown:
        raise PolicyError(f"FA policy meta has missing key(s) [{', '.join(missing)}] and unknown key(s) "
                          f"[{clip_text(', '.join(unknown))}]; it needs exactly {', '.join(META_KEYS)}")
    if meta["format"] != FORMAT or meta["format_version"] != FORMAT_VERSION:
        raise PolicyError(f"FA policy format is {clip_text(repr(meta['format']))} version "
                          f"{clip_text(repr(meta['format_version']))}; this altmarl_ros reads {FORMAT} version "
                          f"{FORMAT_VERSION}: retrain the policy with this version")
    model = meta["model"]
    if not (isinstance(model, dict) and sorted(model) == ["hash", "name"]
            and all(isinstance(value, str) for value in model.values())):
        raise PolicyError(f"FA policy meta model is {clip_text(repr(model))}; use {{'name': ..., 'hash': ...}} (text)")
    for key in ("k", "n_ag", "n_al"):
        if not _count(meta[key]):
            raise PolicyError(f"FA policy meta {key} is {clip_text(repr(meta[key]))}; it must be an integer in "
                              f"[1, {2 ** 31 - 1}]")
    if meta["global_inputs"] not in GLOBAL_INPUTS:
        raise PolicyError(f"FA policy meta global_inputs is {clip_text(repr(meta['global_inputs']))}; "
                          f"use one of {GLOBAL_INPUTS}")
    inputs = meta["inputs"]
    if not (isinstance(inputs, dict) and sorted(inputs) == ["global", "local"] and all(map(_count, inputs.values()))):
        raise PolicyError(f"FA policy meta inputs is {clip_text(repr(inputs))}; use {{'global': d_g, 'local': d_l}} "
                          "(integers >= 1)")
    hidden = meta["hidden"]
    if not (isinstance(hidden, list) and 1 <= len(hidden) <= 8 and all(_count(h) and h <= 4096 for h in hidden)):
        raise PolicyError(f"FA policy meta hidden is {clip_text(repr(hidden))}; use 1 to 8 layer widths in [1, 4096]")
    if meta["activation"] != ACTIVATION:
        raise PolicyError(f"FA policy meta activation is {clip_text(repr(meta['activation']))}; only {ACTIVATION!r}")
    try:
        meta["observer"] = FAObserverSpec.from_meta(meta["observer"]).to_meta()
    except ObserverError as exc:
        raise PolicyError(f"FA policy meta {exc}") from None
    for key in ("config", "metrics"):
        if not isinstance(meta[key], dict):
            raise PolicyError(f"FA policy meta {key} is {clip_text(repr(meta[key]))}; it must be a dict")
    return meta


def _check_network(prefix: str, layers, n_in: int, hidden: list, n_out: int) -> list:
    """[(W, b)] as read-only float32, each shape checked against the metadata's sizes."""
    name = NETWORKS[prefix]
    widths = [n_in, *hidden, n_out]
    if len(layers) != len(widths) - 1:
        raise PolicyError(f"the {name} network has {len(layers)} layers; meta hidden {hidden} means "
                          f"{len(widths) - 1}")
    checked = []
    for index, (W, b) in enumerate(layers):
        for key, array, shape in ((f"{prefix}_W{index}", W, (widths[index], widths[index + 1])),
                                  (f"{prefix}_b{index}", b, (widths[index + 1],))):
            array = np.asarray(array)
            if array.shape != shape:
                raise PolicyError(key, f"has shape {array.shape}; expected {shape} (layer {index} of the {name} "
                                       f"network: {widths[index]} inputs, {widths[index + 1]} outputs)")
            if array.dtype.kind != "f":
                raise PolicyError(key, f"has dtype {array.dtype}; weights are floats")
            bad = np.argwhere(~np.isfinite(array))
            if bad.size:
                raise PolicyError(f"{key}{bad[0].tolist()}", f"is {array[tuple(bad[0])]}; weights are finite")
        pair = []
        for array in (W, b):
            array = np.array(array, dtype=np.float32)
            array.flags.writeable = False
            pair.append(array)
        checked.append(tuple(pair))
    return checked


@dataclass(frozen=True, eq=False)
class FAPolicy:
    """global_params, local_params: [(W, b), ...] (read-only float32) with their metadata."""

    global_params: list
    local_params: list
    meta: dict

    def __post_init__(self):
        meta = _check_meta(self.meta)
        object.__setattr__(self, "meta", meta)
        object.__setattr__(self, "global_params", _check_network("g", self.global_params, meta["inputs"]["global"],
                                                                 meta["hidden"], meta["n_ag"]))
        object.__setattr__(self, "local_params", _check_network("l", self.local_params, meta["inputs"]["local"],
                                                                meta["hidden"], meta["n_al"]))

    @property
    def k(self) -> int:
        return self.meta["k"]

    @property
    def observer(self) -> FAObserverSpec:
        return FAObserverSpec.from_meta(self.meta["observer"])

    @property
    def policy_id(self) -> str:
        """16 hex digits over the weights and the identity metadata (not config/metrics)."""
        digest = hashlib.sha256(b"altmarl-fa-policy-v1")
        for W, b in self.global_params + self.local_params:
            digest.update(W.astype("<f4").tobytes())
            digest.update(b.astype("<f4").tobytes())
        digest.update(json.dumps({key: self.meta[key] for key in IDENTITY_KEYS}, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def global_action(self, game, s_g, sampled) -> np.ndarray:
        """Greedy global actions for states s_g [...] and the k sampled local states [..., k]: a decision on one
        k-sample, which is also every observer's first decision (its estimate is that sample's summary). Fewer
        than k (a node's missed replies): the summary of those that replied."""
        sampled = np.asarray(sampled)
        got = sampled.shape[sampled.ndim - 1 - len(game.state_shape)]
        if not 1 <= got <= self.k:
            raise PolicyError(f"the global agent got {got} sampled states; this policy reads 1 to k = {self.k}")
        x = global_observation(game, np.asarray(s_g), game.summary(sampled), self.meta["global_inputs"])
        return np.argmax(mlp_apply(self.global_params, x), axis=-1)

    def local_actions(self, game, s_l, s_g) -> np.ndarray:
        """Greedy local actions of locals in states s_l [...] under global state s_g (broadcast)."""
        return np.argmax(mlp_apply(self.local_params, game.local_features(np.asarray(s_l), np.asarray(s_g))), axis=-1)


def build_fa_policy(game, k: int, global_params, local_params, *, global_inputs: str, hidden,
                    observer: FAObserverSpec = FRESH, config=None, metrics=None) -> FAPolicy:
    """An FAPolicy for `game` (a ContinuousGame) with its metadata filled in; `observer`: what its global
    network was trained to read."""
    sizes = {"global": int(np.asarray(global_params[0][0]).shape[0]),
             "local": int(np.asarray(local_params[0][0]).shape[0])}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model": {"name": game.name, "hash": game.content_hash()}, "k": k, "n_ag": game.n_ag, "n_al": game.n_al,
            "global_inputs": global_inputs, "inputs": sizes, "hidden": list(hidden), "activation": ACTIVATION,
            "observer": observer.to_meta(), "config": dict(config or {}), "metrics": dict(metrics or {})}
    return FAPolicy([tuple(np.asarray(a) for a in layer) for layer in global_params],
                    [tuple(np.asarray(a) for a in layer) for layer in local_params], meta)


def save_fa_policy(policy: FAPolicy, path) -> Path:
    """Write `policy` atomically to `path` (.npz); a failed write leaves the old file intact."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise PolicyError(f"{path}: policy files end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, params in (("g", policy.global_params), ("l", policy.local_params)):
        for index, (W, b) in enumerate(params):
            arrays[f"{prefix}_W{index}"], arrays[f"{prefix}_b{index}"] = W, b
    with atomic_writer(path) as stream:
        np.savez(stream, meta=np.str_(json.dumps(policy.meta, sort_keys=True)), **arrays)
    return path


def is_fa_file(keys) -> bool:
    """Whether an .npz's member names are an FA policy's (so the tabular loader can say so)."""
    return "meta" in keys and any(_ARRAY_KEY.match(key) for key in keys)


def _read(path: Path) -> FAPolicy:
    if not path.is_file():
        raise PolicyError(f"{path}: no such policy file; train one with `altmarl train --model <continuous model>`")
    arrays = load_npz(path, "policy file", PolicyError)
    if "meta" not in arrays or arrays["meta"].dtype.kind != "U":
        raise PolicyError(f"{path}: an FA policy file has a 'meta' JSON text member; this one has "
                          f"{clip_text(str(sorted(arrays)))}")
    if "pi_g" in arrays:
        raise PolicyError(f"{path} is a tabular policy (pi_g, pi_l); a continuous model or scenario needs an FA "
                          "policy: train one with `altmarl train --model <continuous model>` or `--scenario "
                          "<continuous scenario>`")
    meta = parse_json(str(arrays["meta"]), f"{path}: meta", PolicyError)
    layers = {"g": {}, "l": {}}
    for key in arrays:
        if key == "meta":
            continue
        match = _ARRAY_KEY.match(key)
        if match is None:
            raise PolicyError(f"{path}: unknown member {clip_text(repr(key))}; an FA policy holds meta and "
                              "g_W<i>, g_b<i>, l_W<i>, l_b<i>")
        layers[match[1]].setdefault(int(match[3]), {})[match[2]] = arrays[key]
    params = {}
    for prefix, found in layers.items():
        if sorted(found) != list(range(len(found))) or any(sorted(layer) != ["W", "b"] for layer in found.values()):
            raise PolicyError(f"{path}: the {NETWORKS[prefix]} network's layers are incomplete "
                              f"({clip_text(str({i: sorted(layer) for i, layer in sorted(found.items())}))}); "
                              f"each layer i needs {prefix}_W<i> and {prefix}_b<i>, numbered from 0")
        params[prefix] = [(found[i]["W"], found[i]["b"]) for i in range(len(found))]
    try:
        return FAPolicy(params["g"], params["l"], meta)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def load_fa_policy(path, game=None, k=None) -> FAPolicy:
    """Read an FA policy file; given the game and/or k, raise PolicyMismatch listing every difference."""
    path = Path(path)
    policy = _read(path)
    meta, differences = policy.meta, []
    if game is not None:
        if meta["model"]["hash"] != game.content_hash():
            differences.append(f"model {meta['model']['name']} (hash {meta['model']['hash']}) in the policy, "
                               f"{game.name} ({game.content_hash()}) here")
        for key in ("n_ag", "n_al"):
            if meta[key] != getattr(game, key):
                differences.append(f"{key} {meta[key]} in the policy, {getattr(game, key)} in the model")
        for key, size in observation_sizes(game, meta["k"], meta["global_inputs"]).items():
            if meta["inputs"][key] != size:
                differences.append(f"{key} network inputs {meta['inputs'][key]} in the policy, {size} features "
                                   "in the model")
    if k is not None and meta["k"] != k:
        differences.append(f"k {meta['k']} in the policy, {k} requested")
    if differences:
        raise PolicyMismatch(f"{path} does not match: {'; '.join(differences)}. Use the model/k it was trained "
                             "with, or retrain with `altmarl train`")
    return policy
