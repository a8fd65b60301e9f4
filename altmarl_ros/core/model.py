"""The mean-field game as validated, read-only float64 arrays, plus its file formats.

Every learner, the evaluator, the simulator's estimator and the ROS nodes share
this one representation. Validation lives here so that no kernel ever has to
check a probability row: a `MeanFieldGame` that exists is a valid game.

Arrays (axes in this order):
  P_g  [S_g, A_g, S_g']          global transition  P_g(s_g' | s_g, a_g)
  P_l  [S_l, S_g, A_l, S_l']     local transition   P_l(s_l' | s_l, s_g, a_l)
  r_g  [S_g, A_g]                global reward
  r_l  [S_l, S_g, A_l]           local reward (averaged over the n locals)
  gamma                          discount, 0 <= gamma < 1
  mu0_g [S_g], mu0_l [S_l]       initial distributions (default: uniform)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from altmarl_ros.core.atomic import atomic_writer, write_atomic
from altmarl_ros.core.safe_files import load_npz, load_yaml, npz_members
from altmarl_ros.errors import ModelError

ROW_SUM_TOLERANCE = 1e-9
# |reward| bound: discounted sums of rewards (up to r / (1 - gamma)) must stay far from float
# overflow, and G-LEARN stores Q in float32 (about 7 significant digits).
REWARD_LIMIT = 1e9
ARRAY_KEYS = ("P_g", "P_l", "r_g", "r_l", "mu0_g", "mu0_l")
REQUIRED_KEYS = ("P_g", "P_l", "r_g", "r_l", "gamma")
OPTIONAL_KEYS = ("mu0_g", "mu0_l", "name", "description")
MODEL_SUFFIXES = (".npz", ".yaml", ".yml")


def _index_text(index) -> str:
    return ", ".join(str(int(i)) for i in index)


def as_float_array(name: str, value, ndim: int, error=ModelError) -> np.ndarray:
    """`value` as a float64 array of `ndim` dimensions, or `error` naming `name`."""
    try:
        raw = np.asarray(value)
        array = None if raw.dtype.kind == "c" else np.array(raw, dtype=np.float64, order="C")
    except (TypeError, ValueError, OverflowError) as exc:
        raise error(
            f"{name} is not a numeric array of {ndim} dimensions ({exc}); "
            "give nested lists of numbers of equal length"
        ) from None
    if array is None:
        raise error(f"{name} holds complex numbers; every entry must be a real number")
    if array.ndim != ndim:
        raise error(f"{name} has {array.ndim} dimensions (shape {array.shape}); it needs {ndim}")
    return array


def check_finite(name: str, array: np.ndarray, error=ModelError) -> None:
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        index = tuple(bad[0])
        raise error(
            f"{name}[{_index_text(index)}] is {array[index]}; every entry must be a finite number"
        )


def check_magnitude(name: str, array: np.ndarray, limit: float = REWARD_LIMIT, error=ModelError) -> None:
    """Finite entries with |x| <= limit (rewards; see REWARD_LIMIT)."""
    check_finite(name, array, error)
    bad = np.argwhere(np.abs(array) > limit)
    if len(bad):
        index = tuple(bad[0])
        raise error(f"{name}[{_index_text(index)}] is {array[index]:g}; rewards must be within "
                    f"+-{limit:g} (rescale them: a policy does not change when rewards are scaled)")


def check_stochastic(name: str, array: np.ndarray, error=ModelError) -> None:
    """Entries finite and >= 0, each row over the last axis summing to 1 within 1e-9."""
    check_finite(name, array, error)
    negative = np.argwhere(array < 0)
    if len(negative):
        index = tuple(negative[0])
        raise error(
            f"{name}[{_index_text(index)}] is {array[index]}; probabilities must be >= 0"
        )
    sums = array.sum(axis=-1)
    bad = np.argwhere(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if len(bad):
        index = tuple(bad[0])
        row = f"{name}[{_index_text(index)}, :]" if index else f"{name}[:]"
        raise error(
            f"{row} sums to {float(sums[index]):.10g}; each row over the last axis must sum to 1 "
            f"(within {ROW_SUM_TOLERANCE:g})"
        )


def _check_shape(name: str, array: np.ndarray, expected: tuple, derived_from: str) -> None:
    if array.shape != expected:
        raise ModelError(
            f"{name} has shape {array.shape}; expected {expected} ({derived_from})"
        )


def _validated_gamma(gamma) -> float:
    if isinstance(gamma, bool):
        raise ModelError(f"gamma is {gamma!r}; it must be a number in [0, 1), e.g. 0.95")
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise ModelError(f"gamma is {gamma!r}; it must be a number in [0, 1), e.g. 0.95") from None
    if not (0.0 <= value < 1.0):
        raise ModelError(
            f"gamma is {value!r}; it must be in [0, 1) (a discounted game needs gamma < 1), e.g. 0.95"
        )
    return value


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float64).copy()
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class MeanFieldGame:
    """A validated mean-field game; arrays are private read-only float64 copies.

    Construct with `make_game` (or directly: the same validation runs either way).
    `name`/`description` are labels only: they are not part of `content_hash()`.
    """

    P_g: np.ndarray
    P_l: np.ndarray
    r_g: np.ndarray
    r_l: np.ndarray
    gamma: float
    mu0_g: np.ndarray | None = None
    mu0_l: np.ndarray | None = None
    name: str = ""
    description: str = ""
    _hash: str = field(init=False, repr=False, default="")

    def __post_init__(self):
        P_g = as_float_array("P_g", self.P_g, 3)
        P_l = as_float_array("P_l", self.P_l, 4)
        r_g = as_float_array("r_g", self.r_g, 2)
        r_l = as_float_array("r_l", self.r_l, 3)
        n_sg, n_ag = P_g.shape[0], P_g.shape[1]
        n_sl, n_al = P_l.shape[0], P_l.shape[2]
        if min(P_g.shape) == 0 or min(P_l.shape) == 0:
            raise ModelError(
                f"P_g has shape {P_g.shape} and P_l has shape {P_l.shape}; "
                "every state and action set needs at least one element"
            )
        _check_shape("P_g", P_g, (n_sg, n_ag, n_sg), "P_g[s_g, a_g, s_g']: axes 0 and 2 are both S_g")
        _check_shape(
            "P_l", P_l, (n_sl, n_sg, n_al, n_sl),
            f"P_l[s_l, s_g, a_l, s_l']: S_g = {n_sg} from P_g, axes 0 and 3 are both S_l",
        )
        _check_shape("r_g", r_g, (n_sg, n_ag), "[S_g, A_g] from P_g")
        _check_shape("r_l", r_l, (n_sl, n_sg, n_al), "[S_l, S_g, A_l] from P_l")
        mu0_g = (np.full(n_sg, 1.0 / n_sg) if self.mu0_g is None
                 else as_float_array("mu0_g", self.mu0_g, 1))
        mu0_l = (np.full(n_sl, 1.0 / n_sl) if self.mu0_l is None
                 else as_float_array("mu0_l", self.mu0_l, 1))
        _check_shape("mu0_g", mu0_g, (n_sg,), "[S_g] from P_g")
        _check_shape("mu0_l", mu0_l, (n_sl,), "[S_l] from P_l")
        check_stochastic("P_g", P_g)
        check_stochastic("P_l", P_l)
        check_magnitude("r_g", r_g)
        check_magnitude("r_l", r_l)
        check_stochastic("mu0_g", mu0_g)
        check_stochastic("mu0_l", mu0_l)
        gamma = _validated_gamma(self.gamma)
        for key in ("name", "description"):
            if not isinstance(getattr(self, key), str):
                raise ModelError(f"{key} is {getattr(self, key)!r}; it must be a string")
        arrays = dict(P_g=P_g, P_l=P_l, r_g=r_g, r_l=r_l, mu0_g=mu0_g, mu0_l=mu0_l)
        for key, array in arrays.items():
            object.__setattr__(self, key, _read_only(array))
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "_hash", self._compute_hash())

    @property
    def n_sg(self) -> int:
        return self.P_g.shape[0]

    @property
    def n_ag(self) -> int:
        return self.P_g.shape[1]

    @property
    def n_sl(self) -> int:
        return self.P_l.shape[0]

    @property
    def n_al(self) -> int:
        return self.P_l.shape[2]

    @property
    def sizes(self) -> tuple:
        """(n_sg, n_ag, n_sl, n_al), as in the generative-sampler protocol."""
        return (self.n_sg, self.n_ag, self.n_sl, self.n_al)

    def _compute_hash(self) -> str:
        digest = hashlib.sha256(b"altmarl-mean-field-game-v1")
        for key in ARRAY_KEYS:
            array = getattr(self, key)
            digest.update(key.encode() + repr(array.shape).encode())
            digest.update(array.astype("<f8", copy=False).tobytes(order="C"))
        digest.update(b"gamma" + np.float64(self.gamma).astype("<f8").tobytes())
        return digest.hexdigest()[:16]

    def content_hash(self) -> str:
        """16 hex digits over every array (float64, C order, with shapes) and gamma."""
        return self._hash

    def __eq__(self, other):
        if not isinstance(other, MeanFieldGame):
            return NotImplemented
        return self._hash == other._hash

    def __hash__(self):
        return hash(self._hash)


def make_game(*, P_g, P_l, r_g, r_l, gamma, mu0_g=None, mu0_l=None, name="", description=""):
    """A validated `MeanFieldGame`; mu0_g / mu0_l default to uniform."""
    return MeanFieldGame(P_g=P_g, P_l=P_l, r_g=r_g, r_l=r_l, gamma=gamma,
                         mu0_g=mu0_g, mu0_l=mu0_l, name=name, description=description)


def _check_keys(path: Path, keys) -> None:
    allowed = REQUIRED_KEYS + OPTIONAL_KEYS
    unknown = sorted(set(keys) - set(allowed))
    missing = [key for key in REQUIRED_KEYS if key not in keys]
    problems = []
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing key(s) {', '.join(missing)}")
    if problems:
        raise ModelError(
            f"{path}: {'; '.join(problems)}; a model has keys {', '.join(REQUIRED_KEYS)} "
            f"and optionally {', '.join(OPTIONAL_KEYS)}"
        )


def _read_npz(path: Path) -> dict:
    _check_keys(path, npz_members(path, ".npz model file", ModelError))
    fields = load_npz(path, ".npz model file", ModelError)
    for key in ("gamma", "name", "description"):
        if key in fields:
            value = fields[key]
            if value.ndim != 0:
                raise ModelError(f"{path}: {key} has shape {value.shape}; it must be a scalar")
            fields[key] = value.item()
    return fields


def _read_yaml(path: Path) -> dict:
    document = load_yaml(path, "model file", ModelError)
    if not isinstance(document, dict):
        raise ModelError(
            f"{path}: the top level must be a mapping with keys {', '.join(REQUIRED_KEYS)}"
        )
    _check_keys(path, document.keys())
    return document


def load_model(path) -> MeanFieldGame:
    """Load and validate a model from .npz (exact keys) or .yaml/.yml; errors name the file."""
    path = Path(path)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: unknown model file type; use one of {', '.join(MODEL_SUFFIXES)}")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    fields = _read_npz(path) if path.suffix.lower() == ".npz" else _read_yaml(path)
    if fields.get("name") in (None, ""):
        fields["name"] = path.stem
    if fields.get("description") is None:
        fields["description"] = ""
    try:
        return make_game(**fields)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def save_model(game: MeanFieldGame, path) -> Path:
    """Write `game` atomically as .npz or .yaml/.yml (chosen by suffix); returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: unknown model file type; use one of {', '.join(MODEL_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {key: np.asarray(getattr(game, key)) for key in ARRAY_KEYS}
    if suffix == ".npz":
        with atomic_writer(path) as stream:
            np.savez(stream, gamma=np.float64(game.gamma), name=np.str_(game.name),
                     description=np.str_(game.description), **arrays)
    else:
        write_atomic(path, model_yaml_text(game))
    return path


def model_yaml_text(game: MeanFieldGame, header: str = "") -> str:
    """The YAML form of `game`; floats are written with repr, so loading is exact.

    Innermost rows (one probability distribution or one reward row) go on one line.
    `header` (comment lines, without '#') is written at the top.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    if game.name:
        lines.append(f"name: {json.dumps(game.name)}")
    if game.description:
        lines.append(f"description: {json.dumps(game.description)}")
    lines.append(f"gamma: {_yaml_float(game.gamma)}")
    for key in ARRAY_KEYS:
        lines.append(f"{key}:")
        lines.extend(_yaml_nested(np.asarray(getattr(game, key)), indent=2))
    return "\n".join(lines) + "\n"


def _yaml_float(value) -> str:
    """Shortest exact repr, spelled so YAML 1.1 reads it as a float ("1e-05" would be a string)."""
    text = repr(float(value))
    return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text


def _yaml_row(row: np.ndarray) -> str:
    return "[" + ", ".join(_yaml_float(x) for x in row) + "]"


def _yaml_nested(array: np.ndarray, indent: int) -> list:
    pad = " " * indent
    if array.ndim == 1:
        return [pad + _yaml_row(array)]
    lines = []
    for sub in array:
        if sub.ndim == 1:
            lines.append(pad + "- " + _yaml_row(sub))
        else:
            nested = _yaml_nested(sub, indent + 2)
            lines.append(pad + "- " + nested[0].lstrip())
            lines.extend(nested[1:])
    return lines
