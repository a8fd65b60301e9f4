"""The trained joint policy as one versioned file: what `train` writes and the nodes load.

A policy is only meaningful with the model it was trained on, the k it sees and
the count-vector ranking that indexes its columns, so the file carries them and
`load_policy` refuses a mismatch, naming every difference at once.

File (.npz, written atomically, no pickles): `pi_g` int32 [S_g, N_F] (greedy
global action for [s_g, rank(F)]), `pi_l` float64 [S_l, S_g, A_l] (action
probabilities), `meta` a JSON string with keys
  format_version, model_hash (None when trained from a sampler), k (robots
  sampled per decision), sizes {n_sg, n_ag, n_sl, n_al}, ranking_scheme,
  scenario ({name, hash} or None), observer ({name, gain, resolution}, see
  core.observer: how the k samples become the F that pi_g reads),
  config (training settings), metrics (welfare, Nash gap, ...).
`policy_id` hashes the arrays and the identity keys, the observer included
(not config or metrics, so adding an evaluation result to a policy keeps its id).
The policy of a predicting observer (a filter) also stores what it predicts with, so a coordinator
needs nothing but the file: `observer_P` float64 [S_g, S_l, S_l] (the locals'
fused model P~_l under pi_l, on the model it was trained on) and `observer_mu0`
float64 [S_l] (that model's mu0_l, the filter's prior); both are in the id.
Version 1 files (before observers) are refused: retrain.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from altmarl_ros.core.atomic import atomic_writer
from altmarl_ros.core.counts import RANKING_SCHEME, CountsError, n_count_vectors, rank
from altmarl_ros.core.fa_policy import is_fa_file
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.model import as_float_array, check_stochastic
from altmarl_ros.core.observers import ObserverError, ObserverSpec, fresh
from altmarl_ros.core.safe_files import clip_text, load_npz, parse_json
from altmarl_ros.errors import PolicyError, PolicyMismatch

FORMAT_VERSION = 2
FILE_KEYS = ("pi_g", "pi_l", "meta")
PREDICTION_KEYS = ("observer_P", "observer_mu0")  # policies of a predicting observer (a filter) only
SIZE_KEYS = ("n_sg", "n_ag", "n_sl", "n_al")
IDENTITY_KEYS = ("format_version", "model_hash", "k", "sizes", "ranking_scheme", "scenario", "observer")
META_KEYS = IDENTITY_KEYS + ("config", "metrics")


FOR_THIS_K = " for this k: use a policy trained for this model and k"


def check_global_policy(sizes, pi_g, n_f: int, error=PolicyError, field: str = "pi_g", hint: str = "") -> np.ndarray:
    """pi_g as int32 [S_g, N_F] of global actions in 0..A_g-1; `sizes` = (n_sg, n_ag, n_sl, n_al).

    The one check of a global policy: the artifact raises PolicyError, the learners LearnError.
    """
    n_sg, n_ag = sizes[0], sizes[1]
    array = np.asarray(pi_g)
    if array.shape != (n_sg, n_f):
        raise error(field, f"has shape {array.shape}; expected (n_sg, N_F) = ({n_sg}, {n_f}){hint}")
    if not np.issubdtype(array.dtype, np.integer):
        raise error(field, f"has dtype {array.dtype}; it must hold integer global actions")
    bad = np.argwhere((array < 0) | (array >= n_ag))
    if bad.size:
        s_g, f = (int(i) for i in bad[0])
        raise error(f"{field}[{s_g}, {f}]", f"is {array[s_g, f]}; global actions are 0..{n_ag - 1}")
    return np.ascontiguousarray(array, dtype=np.int32)


def check_local_policy(sizes, pi_l, error=PolicyError, field: str = "pi_l") -> np.ndarray:
    """pi_l as float64 [S_l, S_g, A_l] with finite, non-negative rows summing to 1."""
    n_sg, _, n_sl, n_al = sizes
    expected = (n_sl, n_sg, n_al)
    try:
        array = np.array(pi_l, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise error(field, f"must be a numeric array of shape {expected}") from None
    if array.shape != expected:
        raise error(field, f"has shape {array.shape}; expected (n_sl, n_sg, n_al) = {expected}")
    bad = np.argwhere(~np.isfinite(array) | (array < 0))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise error(f"{field}{list(index)}", f"is {array[index]}; probabilities are finite and >= 0")
    sums = array.sum(axis=-1)
    bad = np.argwhere(np.abs(sums - 1.0) > 1e-9)
    if bad.size:
        s_l, s_g = (int(i) for i in bad[0])
        raise error(f"{field}[{s_l}, {s_g}, :]", f"sums to {float(sums[s_l, s_g]):.10g}; normalise each row")
    return array


def uniform_local_policy(game) -> np.ndarray:
    return np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


MAX_META_INT = 2 ** 31 - 1  # sizes and k index int32 arrays


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_META_INT


def _normalised_meta(meta) -> dict:
    """`meta` as it reads back from a file (JSON types only), so round trips are exact."""
    if not isinstance(meta, dict):
        raise PolicyError(f"policy meta must be a dict with keys {', '.join(META_KEYS)}")
    try:
        meta = json.loads(json.dumps(meta, default=_json_value))
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"policy meta is not JSON-serialisable ({exc}); use numbers, strings, lists, dicts") from None
    missing = [key for key in META_KEYS if key not in meta]
    unknown = sorted(set(meta) - set(META_KEYS))
    if missing or unknown:
        raise PolicyError(
            f"policy meta has missing key(s) [{', '.join(missing)}] and unknown key(s) "
            f"[{clip_text(', '.join(unknown))}]; it needs exactly {', '.join(META_KEYS)}"
        )
    if meta["format_version"] != FORMAT_VERSION:
        raise PolicyError(
            f"policy format_version is {clip_text(repr(meta['format_version']))}; this altmarl_ros reads "
            f"version {FORMAT_VERSION}: retrain the policy with this version"
        )
    sizes = meta["sizes"]
    if not isinstance(sizes, dict) or sorted(sizes) != sorted(SIZE_KEYS) or not all(
        _is_count(sizes[key]) for key in SIZE_KEYS
    ):
        raise PolicyError(f"policy meta sizes is {clip_text(repr(sizes))}; it needs integers {', '.join(SIZE_KEYS)} "
                          f"in [1, {MAX_META_INT}]")
    if not _is_count(meta["k"]):
        raise PolicyError(f"policy meta k is {clip_text(repr(meta['k']))}; it must be an integer in "
                          f"[1, {MAX_META_INT}]")
    for key in ("model_hash", "ranking_scheme"):
        if meta[key] is not None and not isinstance(meta[key], str):
            raise PolicyError(f"policy meta {key} is {clip_text(repr(meta[key]))}; it must be text")
    scenario = meta["scenario"]
    if scenario is not None and not (isinstance(scenario, dict) and sorted(scenario) == ["hash", "name"]
                                     and all(isinstance(value, str) for value in scenario.values())):
        raise PolicyError(f"policy meta scenario is {clip_text(repr(scenario))}; use None or "
                          f"{{'name': ..., 'hash': ...}} (text)")
    for key in ("config", "metrics"):
        if not isinstance(meta[key], dict):
            raise PolicyError(f"policy meta {key} is {clip_text(repr(meta[key]))}; it must be a dict")
    try:
        observer = ObserverSpec.from_meta(meta["observer"])
        n_count_vectors(observer.resolution, sizes["n_sl"])  # refuses sizes no table can have, quickly
        observer.kind.check_k(observer, meta["k"])
    except (ObserverError, CountsError) as exc:
        raise PolicyError(f"policy meta {exc}") from None
    meta["observer"] = observer.to_meta()
    return meta


@dataclass(frozen=True, eq=False)
class PolicyArtifact:
    """pi_g [S_g, N_F] int32 and pi_l [S_l, S_g, A_l] float64 (read-only) with their metadata."""

    pi_g: np.ndarray
    pi_l: np.ndarray
    meta: dict
    observer_P: np.ndarray | None = None
    observer_mu0: np.ndarray | None = None

    def __post_init__(self):
        meta = _normalised_meta(self.meta)
        sizes = meta["sizes"]
        sizes = tuple(sizes[key] for key in SIZE_KEYS)
        n_sg, n_ag, n_sl, n_al = sizes
        K = meta["observer"]["resolution"]
        pi_g = check_global_policy(sizes, self.pi_g, n_count_vectors(K, n_sl),
                                   hint=f" = (n_sg, C(K + n_sl - 1, n_sl - 1)) for the observer's resolution "
                                        f"K = {K}, n_sl = {n_sl}")
        pi_l = check_local_policy(sizes, self.pi_l)
        pi_g = np.ascontiguousarray(pi_g, dtype=np.int32).copy()
        pi_l = np.ascontiguousarray(pi_l).copy()
        pi_g.flags.writeable = False
        pi_l.flags.writeable = False
        predicts = ObserverSpec.from_meta(meta["observer"]).kind.predicts
        if predicts != (self.observer_P is not None) or predicts != (self.observer_mu0 is not None):
            raise PolicyError(f"a {meta['observer']['name']} policy {'needs' if predicts else 'has no'} "
                              f"{' and '.join(PREDICTION_KEYS)} (the model a predicting observer predicts with)")
        if predicts:
            P = as_float_array("observer_P", self.observer_P, 3, error=PolicyError)
            if P.shape != (n_sg, n_sl, n_sl):
                raise PolicyError(f"observer_P has shape {P.shape}; expected (n_sg, n_sl, n_sl) = {(n_sg, n_sl, n_sl)}")
            check_stochastic("observer_P", P, error=PolicyError)
            mu0 = as_float_array("observer_mu0", self.observer_mu0, 1, error=PolicyError)
            if mu0.shape != (n_sl,):
                raise PolicyError(f"observer_mu0 has shape {mu0.shape}; expected ({n_sl},)")
            check_stochastic("observer_mu0", mu0, error=PolicyError)
            for name, array in (("observer_P", P), ("observer_mu0", mu0)):
                array = np.ascontiguousarray(array).copy()
                array.flags.writeable = False
                object.__setattr__(self, name, array)
        object.__setattr__(self, "pi_g", pi_g)
        object.__setattr__(self, "pi_l", pi_l)
        object.__setattr__(self, "meta", meta)

    @property
    def k(self) -> int:
        return self.meta["k"]

    @property
    def observer(self) -> ObserverSpec:
        """How the k samples become the count vector pi_g reads (core.observer)."""
        return ObserverSpec.from_meta(self.meta["observer"])

    @property
    def prediction(self) -> tuple | None:
        """(observer_P, observer_mu0), what a predicting observer (a filter) predicts with; None for the others."""
        return None if self.observer_P is None else (self.observer_P, self.observer_mu0)

    @property
    def resolution(self) -> int:
        """K: pi_g's columns are count vectors over K robots (K = k for fresh)."""
        return self.meta["observer"]["resolution"]

    @property
    def sizes(self) -> tuple:
        """(n_sg, n_ag, n_sl, n_al)."""
        return tuple(self.meta["sizes"][key] for key in SIZE_KEYS)

    @cached_property
    def policy_id(self) -> str:
        """16 hex digits over the arrays and the identity metadata (not config/metrics); computed once
        (the arrays are read-only; hashing pi_g took 5 ms of each decision at k = 50)."""
        digest = hashlib.sha256(b"altmarl-policy-v1")
        digest.update(self.pi_g.astype("<i4").tobytes())
        digest.update(self.pi_l.astype("<f8").tobytes())
        if self.observer_P is not None:
            digest.update(self.observer_P.astype("<f8").tobytes())
            digest.update(self.observer_mu0.astype("<f8").tobytes())
        identity = {key: self.meta[key] for key in IDENTITY_KEYS}
        digest.update(json.dumps(identity, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def global_action(self, s_g: int, counts) -> int:
        """The depot's action for global state s_g at the count vector F over `resolution`
        robots that the observer produced (for fresh: the k sampled locals' counts)."""
        n_sg, _, n_sl, _ = self.sizes
        if not 0 <= int(s_g) < n_sg:
            raise PolicyError(f"s_g = {s_g} is out of range; global states are in [0, {n_sg})")
        counts = np.asarray(counts)
        if counts.shape != (n_sl,) or int(counts.sum()) != self.resolution:
            raise PolicyError(
                f"counts {counts.tolist()} must have {n_sl} entries summing to the observer's "
                f"resolution {self.resolution}"
            )
        return int(self.pi_g[int(s_g), rank(counts)])

    def local_probs(self, s_l: int, s_g: int) -> np.ndarray:
        """pi_l(. | s_l, s_g): read-only float64 [A_l]."""
        n_sg, _, n_sl, _ = self.sizes
        if not (0 <= int(s_l) < n_sl and 0 <= int(s_g) < n_sg):
            raise PolicyError(f"(s_l, s_g) = ({s_l}, {s_g}) is out of range [0, {n_sl}) x [0, {n_sg})")
        return self.pi_l[int(s_l), int(s_g)]

    def __eq__(self, other):
        if not isinstance(other, PolicyArtifact):
            return NotImplemented
        return self.policy_id == other.policy_id and self.meta == other.meta

    __hash__ = None


def build_policy(pi_g, pi_l, k, *, game=None, n_ag=None, scenario=None, config=None, metrics=None,
                 observer: ObserverSpec | None = None, prediction=None):
    """A PolicyArtifact with its metadata filled in.

    Pass the `game` it was trained on (its hash and sizes are recorded), or, for a
    policy trained from a generative sampler, `n_ag` and `scenario` = (name, hash).
    `observer`: default fresh(k). A predicting observer (a filter) needs the model it predicts with: from
    `game` (P~_l under pi_l, mu0_l), or `prediction` = (P_fused, mu0) when there is none.
    """
    pi_l = np.asarray(pi_l)
    if pi_l.ndim != 3:
        raise PolicyError(f"pi_l has shape {pi_l.shape}; expected [n_sl, n_sg, n_al]")
    if game is not None:
        n_sg, n_ag, n_sl, n_al = game.sizes
    elif n_ag is None:
        raise PolicyError("build_policy needs the game or n_ag to record the policy's sizes")
    else:
        n_sl, n_sg, n_al = pi_l.shape
    if scenario is not None:
        name, scenario_hash = scenario
        scenario = {"name": str(name), "hash": str(scenario_hash)}
    meta = {
        "format_version": FORMAT_VERSION,
        "model_hash": None if game is None else game.content_hash(),
        "k": k,
        "sizes": {"n_sg": n_sg, "n_ag": n_ag, "n_sl": n_sl, "n_al": n_al},
        "ranking_scheme": RANKING_SCHEME,
        "scenario": scenario,
        "observer": (fresh(k) if observer is None else observer).to_meta(),
        "config": dict(config or {}),
        "metrics": dict(metrics or {}),
    }
    observer_P = observer_mu0 = None
    if observer is not None and observer.kind.predicts:
        if prediction is None and game is not None:
            prediction = (fold_local_policy(game, pi_l)[0], game.mu0_l)
        if prediction is None:
            raise PolicyError(f"a {observer.name} policy needs the game or prediction = (P_fused, mu0) it predicts "
                              f"with")
        observer_P, observer_mu0 = prediction
    return PolicyArtifact(pi_g=pi_g, pi_l=pi_l, meta=meta, observer_P=observer_P, observer_mu0=observer_mu0)


def save_policy(artifact: PolicyArtifact, path) -> Path:
    """Write `artifact` atomically to `path` (.npz); a failed write leaves the old file intact."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise PolicyError(f"{path}: policy files end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as stream:
        extra = ({} if artifact.observer_P is None else
                 {"observer_P": artifact.observer_P, "observer_mu0": artifact.observer_mu0})
        np.savez(stream, pi_g=artifact.pi_g, pi_l=artifact.pi_l,
                 meta=np.str_(json.dumps(artifact.meta, sort_keys=True)), **extra)
    return path


def _read_policy(path: Path) -> PolicyArtifact:
    if not path.is_file():
        raise PolicyError(f"{path}: no such policy file; train one with `altmarl train`")
    arrays = load_npz(path, "policy file", PolicyError)
    keys = sorted(arrays)
    if is_fa_file(keys):
        raise PolicyError(f"{path}: is a function-approximation policy (a continuous model's networks); use it "
                          "with --model <its continuous model> or --scenario <its continuous scenario>")
    if keys not in (sorted(FILE_KEYS), sorted(FILE_KEYS + PREDICTION_KEYS)):
        raise PolicyError(f"{path}: policy file has keys {clip_text(str(keys))}; expected {list(FILE_KEYS)} "
                          f"(+ {list(PREDICTION_KEYS)} for a predicting observer's policy)")
    pi_g, pi_l, meta_text = arrays["pi_g"], arrays["pi_l"], arrays["meta"]
    prediction = {key: arrays[key] for key in PREDICTION_KEYS if key in arrays}
    if meta_text.dtype.kind != "U":
        raise PolicyError(f"{path}: meta holds {meta_text.dtype} numbers; it must be the JSON text altmarl writes")
    meta = parse_json(str(meta_text), f"{path}: meta", PolicyError)
    try:
        return PolicyArtifact(pi_g=pi_g, pi_l=pi_l, meta=meta, **prediction)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def policy_mismatches(artifact: PolicyArtifact, game=None, k=None, scenario_hash=None, observer=None) -> list:
    """Every way `artifact` differs from the given model / k / scenario / observer name (empty if none).

    The model hash is compared only when the policy recorded one (policies
    trained from a sampler record the scenario hash instead, and are refused
    against a model unless their scenario is given too); sizes always are.
    """
    meta = artifact.meta
    differences = []
    if meta["ranking_scheme"] != RANKING_SCHEME:
        differences.append(
            f"ranking scheme {meta['ranking_scheme']!r} in the policy, {RANKING_SCHEME!r} in this code"
        )
    if game is not None:
        if meta["model_hash"] is None and meta["scenario"] is not None and scenario_hash is None:
            name = meta["scenario"]["name"]
            differences.append(f"it was learned from scenario {name!r} (hash {meta['scenario']['hash']}) by the "
                               f"simulator, not from this model: evaluate it with --scenario {name}")
        if meta["model_hash"] is None and meta["scenario"] is None:
            differences.append("it records no model hash (model_hash null), so it cannot be checked against this "
                               "model")
        if meta["model_hash"] is not None and meta["model_hash"] != game.content_hash():
            differences.append(f"model hash {meta['model_hash']} in the policy, {game.content_hash()} for the model")
        for key, model_size in zip(SIZE_KEYS, game.sizes):
            if meta["sizes"][key] != model_size:
                differences.append(f"{key} {meta['sizes'][key]} in the policy, {model_size} in the model")
    if k is not None and meta["k"] != k:
        differences.append(f"k {meta['k']} in the policy, {k} requested")
    if observer is not None and meta["observer"]["name"] != observer:
        differences.append(f"observer {meta['observer']['name']} in the policy (it was trained and selected "
                           f"for it), {observer} requested")
    if scenario_hash is not None:
        recorded = None if meta["scenario"] is None else meta["scenario"]["hash"]
        if recorded != scenario_hash:
            differences.append(f"scenario hash {recorded} in the policy, {scenario_hash} for the scenario")
    return differences


def load_policy(path, game=None, k=None, scenario_hash=None, observer=None) -> PolicyArtifact:
    """Read a policy file; with checks given, raise PolicyMismatch listing every difference."""
    path = Path(path)
    artifact = _read_policy(path)
    differences = policy_mismatches(artifact, game=game, k=k, scenario_hash=scenario_hash, observer=observer)
    if differences:
        raise PolicyMismatch(
            f"{path} does not match: {'; '.join(differences)}. "
            "Use the model/k/scenario/observer it was trained with, or retrain with `altmarl train`"
        )
    return artifact
