"""The registry of observers: what the global agent makes of its k samples, one entry per observer.

An entry (`ObserverKind`) carries everything the layers above ask of an observer, so
none of them compares observer names: how its parameters are checked (`check`), which
parameters training tries (`candidates`) and whether it chooses among them by n-agent
rollouts (`selects`), whether it keeps an estimate across decisions (`estimates`: the
kernels of core.observer run it), whether that estimate is predicted through the locals'
fused model (`predicts`: its policy files store that model) and how it reads in a line
(`describe`) and which models it runs on (`models`: tabular, continuous; a continuous model's
observer keeps k-samples rather than a distribution, core/fa_observer.py, and takes its behaviour
from the same `estimates` and `predicts`). The CLI's --observer choices, the sweep's observer
axis and every check of a policy file (tabular or FA) or a GlobalCommand read this registry.

Adding an observer is one module that registers an entry (`register_observer`) and is
imported where it should be known (docs/training.md, Adding an observer); an observer that
is a new combination of the kernels' steps (an estimate predicted or not, corrected by
each sample, rounded to a resolution) needs no other code.

Import-light (no numba): the CLI reads it to build its parser, before any command runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.registry import Registry, RegistryError
from altmarl_ros.core.safe_files import clip_text
from altmarl_ros.errors import LearnError

PAPER_OBSERVER = "fresh"  # the paper's: every policy's default, the sweep's plain points, the report's reference
DEFAULT_OBSERVER = "filter"  # what `altmarl train` deploys on a tabular model unless --observer says otherwise
TABULAR, CONTINUOUS = "tabular", "continuous"  # the kinds of model an observer may run on (ObserverKind.models)
MODELS = (TABULAR, CONTINUOUS)


class ObserverError(LearnError):
    """Bad observer settings or inputs; message "<field>: <detail>"."""


@dataclass(frozen=True)
class ObserverSpec:
    """An observer and its parameters: what a policy artifact records under "observer".

        `gain` (alpha): weight of a full k-sample in the estimate (1 = fresh).
    `resolution` (K): pi_g is queried at the estimate rounded to K robots; its
    table has C(K + S_l - 1, S_l - 1) columns. fresh has K = k.
    `prior`: weight, in sampled robots, of the model's initial distribution mu0_l
    as the estimate before the first sample (0: the first sample alone).
    """

    name: str
    gain: float
    resolution: int
    prior: float = 0.0

    def __post_init__(self):
        observer_on(self.name, TABULAR)
        object.__setattr__(self, "gain", check_gain(self.gain))
        prior = as_float(ObserverError, "observer.prior", self.prior)
        if prior < 0:
            raise ObserverError("observer.prior", f"is {prior:g}; it must be >= 0")
        object.__setattr__(self, "prior", prior)
        object.__setattr__(self, "resolution", integer(ObserverError, "observer.resolution", self.resolution, 1))
        self.kind.check(self)

    @property
    def kind(self) -> "ObserverKind":
        """Its registry entry: what every layer asks of this observer."""
        return OBSERVERS[self.name]

    def memory(self, k: int) -> float:
        """W = k (1 - alpha) / alpha: the estimate's steady weight in sampled robots."""
        return k * (1.0 - self.gain) / self.gain

    def to_meta(self) -> dict:
        return {"name": self.name, "gain": self.gain, "resolution": self.resolution, "prior": self.prior}

    @classmethod
    def from_meta(cls, meta) -> "ObserverSpec":
        if not isinstance(meta, dict) or sorted(meta) != ["gain", "name", "prior", "resolution"]:
            raise ObserverError("observer", f"is {clip_text(repr(meta))}; it needs exactly name, gain, resolution, "
                                            f"prior")
        return cls(meta["name"], meta["gain"], meta["resolution"], meta["prior"])

    def describe(self) -> str:
        return self.kind.describe(self)


def check_gain(gain) -> float:
    """A gain (alpha) in (0, 1], as float."""
    gain = as_float(ObserverError, "observer.gain", gain)
    if not 0.0 < gain <= 1.0:
        raise ObserverError("observer.gain", f"must be in (0, 1], got {gain:g}")
    return gain


def equivalent_samples(k: int, gain: float) -> int:
    """Fresh samples with the variance of the filter's steady estimate: k (2 - alpha) / alpha.

    An exponentially weighted mean of iid k-sample proportions with weight alpha
    has variance alpha / (2 - alpha) times one sample's (ignoring the prediction
    step's model error), so that is the resolution its noise corresponds to.
    """
    return max(k, int(round(k * (2.0 - gain) / gain)))


@dataclass(frozen=True)
class ObserverKind:
    """A registered observer: the behaviour every layer asks of it (module docstring).

    `estimates`: keeps an estimate mu across decisions (correct it with each sample, round it
    to the resolution), so it decides on its estimate when no reply arrives and the count
    vector it queries is not the sample's; False: each decision reads its own sample, scaled
    to the resolution (fresh). `predicts` (only with estimates): mu is predicted through the
    locals' fused model P~_l between decisions, so its policies store that model and its prior
    starts from mu0_l; without it an identity model stands in and there is no prior.
    `selects`: training chooses among `candidates` by n-agent rollouts; False: one candidate.
    `models`: the kinds of model it runs on (TABULAR: core/observer.py's kernels; CONTINUOUS: the kept
    k-samples of core/fa_observer.py, moved through the game when it predicts).
    """

    name: str
    description: str  # one line: the CLI's help and docs
    estimates: bool = True
    predicts: bool = True
    selects: bool = True
    models: frozenset = frozenset({TABULAR})

    def check(self, spec: ObserverSpec) -> None:
        """Refuse parameters this observer cannot run (ObserverError naming the field)."""
        if spec.prior > 0 and not self.predicts:
            raise ObserverError("observer.prior", f"is {spec.prior:g}; {self.name} has no model to start from: "
                                                  "use prior 0")

    def check_k(self, spec: ObserverSpec, k: int) -> None:
        """Refuse a spec that cannot serve a policy sampling k robots per decision: without an estimate,
        pi_g reads the sample itself, so its resolution is k."""
        if not self.estimates and spec.resolution != k:
            raise ObserverError("observer", f"is {self.name} with resolution {spec.resolution}; {self.name} reads "
                                            f"the k = {k} samples themselves (resolution = k)")

    def candidates(self, k: int, cap: int, gains) -> list:
        """The specs training tries at k, the paper's fresh(k) first: for every gain, the resolution
        its steady estimate is worth (equivalent_samples, at most `cap`, never below k), with prior 0
        and, for a predicting observer, the steady weight W on mu0_l."""
        out = [fresh(k)]
        for gain in gains:
            K = min(equivalent_samples(k, gain), cap)
            priors = (0.0, k * (1.0 - gain) / gain) if self.predicts else (0.0,)
            out += [ObserverSpec(self.name, gain, K, prior) for prior in priors]
        return out

    def describe(self, spec: ObserverSpec) -> str:
        prior = f", prior mu0_l worth {spec.prior:g} robots" if spec.prior else ""
        return f"{self.name} (gain {spec.gain:g}, pi_g queried at {spec.resolution} robots{prior})"


class FreshKind(ObserverKind):
    """The paper's observer: no parameters, pi_g reads each decision's k-sample itself."""

    def check(self, spec: ObserverSpec) -> None:
        if spec.gain != 1.0:
            raise ObserverError("observer.gain", f"is {spec.gain:g}; the {self.name} observer has gain 1 (use a "
                                                 f"filter)")
        if spec.prior != 0:
            raise ObserverError("observer.prior", f"is {spec.prior:g}; it must be 0 for {self.name}")

    def candidates(self, k: int, cap: int, gains) -> list:
        return [ObserverSpec(self.name, 1.0, k)]

    def describe(self, spec: ObserverSpec) -> str:
        return f"{self.name} (one k-sample per decision, the paper's)"


OBSERVERS = Registry("observer")


def register_observer(kind: ObserverKind) -> ObserverKind:
    """Add an observer to the registry (a name taken, or predicting without an estimate, is refused)."""
    if kind.predicts and not kind.estimates:
        raise RegistryError("predicts", f"observer {kind.name!r} predicts but keeps no estimate to predict")
    if not kind.models or not set(kind.models) <= set(MODELS):
        raise RegistryError("models", f"observer {kind.name!r} runs on {sorted(kind.models)}; name some of {MODELS}")
    return OBSERVERS.register(kind.name, kind)


def observers_on(models: str) -> tuple:
    """The registered observers that run on `models` (TABULAR or CONTINUOUS), in registration order."""
    return tuple(name for name, kind in OBSERVERS.items() if models in kind.models)


def observer_on(name, models: str, error: type[LearnError] = ObserverError, field: str = "observer") -> ObserverKind:
    """The entry of observer `name` if it runs on `models`; else `error` naming `field` and the choices there."""
    choices = observers_on(models)
    if not isinstance(name, str) or name not in choices:
        runs_on = f", which runs on {' and '.join(sorted(OBSERVERS[name].models))} models only" \
            if isinstance(name, str) and name in OBSERVERS else ""
        raise error(field, f"is {clip_text(repr(name))}{runs_on}; a {models} model's observers are "
                           f"{', '.join(choices)}")
    return OBSERVERS[name]


def fresh(k: int) -> ObserverSpec:
    """The paper's observer: pi_g reads each decision's k-sample."""
    return ObserverSpec(PAPER_OBSERVER, 1.0, k)


register_observer(FreshKind(PAPER_OBSERVER, "the paper's method: one fresh k-sample per decision, read as the whole "
                                            "fleet", estimates=False, predicts=False, selects=False,
                            models=frozenset(MODELS)))
register_observer(ObserverKind(DEFAULT_OBSERVER, "keeps an estimate of the fleet, predicted through the model and "
                                                 "local policy and corrected by each k-sample; its gain and pi_g's "
                                                 "resolution are chosen by n-agent rollouts with fresh among the "
                                                 "candidates, so it is never selected below fresh, and at small k "
                                                 "it decides like a much larger sample (costs several "
                                                 "ALTERNATING-MARL runs); on a continuous model, particles: the "
                                                 "last --observer-window k-samples moved through the model",
                               models=frozenset(MODELS)))
register_observer(ObserverKind("pool", "continuous models: the mean of the last --observer-window k-samples' "
                                       "histograms as drawn, without prediction", predicts=False, selects=False,
                               models=frozenset({CONTINUOUS})))
