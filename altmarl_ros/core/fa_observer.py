"""Observers for continuous games: what the global agent makes of its k samples (docs/continuous.md, Observers).

The tabular filter (core/observer.py) predicts a distribution over zones through the
locals' fused chain P~_l(s_g). A continuous game has no such matrix, but it has the
generative model itself, so the filter here keeps particles: the sampled local
states of the last `window` decisions, newest first.

The observers are the registry's (core/observers.py) that run on continuous models, and
their entry's flags say what they do here:

    fresh   (no estimate) the summary of this decision's k samples (the paper's, the authors').
    pool    (estimates, no prediction) the weighted mean of the summaries of the kept samples as
            they were drawn.
    filter  (estimates, predicts) the same mean after every kept sample has been moved, each step,
            as a local of the fleet moves: the game's own next_local under the global state the
            fleet acted on and an action of the locals' policy (predict); each decision adds its
            k samples (correct).

A kept sample of age j gets weight (1 - gain)^j, normalised over the samples kept. With k
samples every decision this is the tabular filter's gain rule exactly (correct_kernel:
g = m / (w + m), w <- (1 - gain)(w + m)), cut at `window` decisions; gain 0 is the plain
mean of the window. A propagated sample is a draw of the current population (the same
dynamics, fresh noise), so the filter's estimate has no bias from age and its default
gain is 0; pool's samples are stale by their age, which bounds its useful window.
The estimate replaces the k-sample's summary in the global agent's observation, in
training and in evaluation alike, so the dispatcher learns on what it will read.
The functions take `xp` (numpy, or jax.numpy inside the learners' jitted rollouts, which
do the prediction with the local network: core/fa_learn.py). No JAX here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.observers import CONTINUOUS, OBSERVERS, PAPER_OBSERVER, ObserverError, observer_on, observers_on
from altmarl_ros.core.safe_files import clip_text

MAX_WINDOW = 10_000
# A predicting observer simulates window x k particles beside the fleet; by default no more than the fleet itself.
PARTICLE_BUDGET = 500
# One that does not predict reads samples stale by their age, which bounds its useful window (docs/continuous.md).
DEFAULT_POOL_WINDOW = 4


def _estimating() -> str:
    return " or ".join(name for name in observers_on(CONTINUOUS) if OBSERVERS[name].estimates)


@dataclass(frozen=True)
class FAObserverSpec:
    """An observer of a continuous game and its parameters: what an FA policy file records under "observer".

    `window`: the decisions whose k samples are kept (1 without an estimate). `gain` in [0, 1): weight
    (1 - gain)^age of a kept sample (without an estimate: 1, the newest sample alone).
    """

    name: str = PAPER_OBSERVER
    window: int = 1
    gain: float = 1.0

    def __post_init__(self):
        observer_on(self.name, CONTINUOUS)
        window = integer(ObserverError, "observer.window", self.window, 1)
        if window > MAX_WINDOW:
            raise ObserverError("observer.window", f"is {window}; keep at most {MAX_WINDOW} decisions")
        gain = as_float(ObserverError, "observer.gain", self.gain)
        if not self.estimates:
            if (window, gain) != (1, 1.0):
                raise ObserverError("observer", f"{self.name} reads only the newest k-sample: window 1 and gain 1, "
                                                f"got window {window} and gain {gain:g} (use {_estimating()})")
        elif not 0.0 <= gain < 1.0:
            raise ObserverError("observer.gain", f"is {gain:g}; {self.name} weighs a sample of age j by (1 - gain)^j, "
                                                 f"gain in [0, 1) (gain 1 is {PAPER_OBSERVER})")
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "gain", gain)

    @property
    def estimates(self) -> bool:
        """Keeps samples across decisions (its registry entry's flag); otherwise reads each k-sample alone."""
        return OBSERVERS[self.name].estimates

    @property
    def predicts(self) -> bool:
        """Moves its kept samples through the game between decisions (its registry entry's flag)."""
        return OBSERVERS[self.name].predicts

    def to_meta(self) -> dict:
        return {"name": self.name, "window": self.window, "gain": self.gain} if self.estimates else {"name": self.name}

    @classmethod
    def from_meta(cls, meta) -> "FAObserverSpec":
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            raise ObserverError("observer", f"is {clip_text(repr(meta))}; it needs a name (and, if it estimates, a "
                                            "window and a gain)")
        keys = ["gain", "name", "window"] if observer_on(meta["name"], CONTINUOUS).estimates else ["name"]
        if sorted(meta) != keys:
            raise ObserverError("observer", f"is {clip_text(repr(meta))}; {meta['name']} needs exactly "
                                            f"{', '.join(keys)}")
        return cls(**meta)

    def describe(self) -> str:
        if not self.estimates:
            return f"{self.name} (one k-sample per decision, the paper's)"
        weights = "equal weights" if self.gain == 0 else f"weights (1 - {self.gain:g})^age"
        moved = "moved through the model" if self.predicts else "as drawn"
        return f"{self.name} (the last {self.window} k-samples, {moved}, {weights})"


FRESH = FAObserverSpec()


def default_observer(name: str, k: int, horizon: int, window=None, gain=None) -> FAObserverSpec:
    """The observer `name` with the defaults for k: one that predicts keeps as many samples as PARTICLE_BUDGET
    particles allow, up to the horizon; one that does not keeps DEFAULT_POOL_WINDOW; both weigh them equally."""
    kind = observer_on(name, CONTINUOUS)
    if not kind.estimates:
        if window is not None or gain is not None:
            raise ObserverError("observer", f"{name} has no window or gain (use {_estimating()})")
        return FAObserverSpec(name)
    if window is None:
        window = min(horizon, max(1, PARTICLE_BUDGET // k)) if kind.predicts else DEFAULT_POOL_WINDOW
    return FAObserverSpec(name, window, 0.0 if gain is None else gain)


def particles(spec: FAObserverSpec, k: int) -> int:
    """Locals the observer simulates beside the fleet (what its prediction costs): the filter's window x k."""
    return spec.window * k if spec.predicts else 0


def weights(spec: FAObserverSpec, filled, xp=np):
    """[..., window] weights of the kept samples (newest first), (1 - gain)^age over the `filled` [...] kept."""
    age = xp.arange(spec.window)
    raw = xp.where(age < xp.asarray(filled)[..., None], (1.0 - spec.gain) ** age, 0.0)
    return raw / raw.sum(axis=-1, keepdims=True)


def observe(game, spec: FAObserverSpec, kept, filled, sampled, xp=np):
    """One decision's correction: (kept', filled', estimate). This decision's samples [..., k] go in front
    of the kept ones [..., window, k] (the oldest drops out past the window); the estimate [..., d_F] is the
    weighted mean of the kept samples' summaries (`game.summary`, e.g. Setup B's histogram)."""
    kept = xp.concatenate([sampled[..., None, :], kept[..., :-1, :]], axis=-2)
    filled = xp.minimum(xp.asarray(filled) + 1, spec.window)
    estimate = (weights(spec, filled, xp)[..., None] * game.summary(kept, xp)).sum(axis=-2)
    return kept, filled, estimate
