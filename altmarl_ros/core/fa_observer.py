"""Observers for continuous games: what the global agent makes of its k samples (docs/continuous.md, Observers).

The tabular filter (core/observer.py) predicts a distribution over zones through the
locals' fused chain P~_l(s_g). A continuous game has no such matrix, but it has the
generative model itself, so the filter here keeps particles: the sampled local
states of the last `window` decisions, newest first.

    fresh   the summary of this decision's k samples (the paper's, the authors').
    pool    the weighted mean of the summaries of the kept samples as they were drawn: no prediction.
    filter  the same mean after every kept sample has been moved, each step, as a local of the fleet
            moves: the game's own next_local under the global state the fleet acted on and an action
            of the locals' policy (predict); each decision adds its k samples (correct).

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
from altmarl_ros.core.observer import ObserverError
from altmarl_ros.core.registry import Registry
from altmarl_ros.core.safe_files import clip_text

FA_OBSERVERS = Registry("continuous-model observer")
FA_OBSERVERS.register("fresh", "one fresh k-sample per decision, read as the fleet (the paper's method)")
FA_OBSERVERS.register("pool", "the mean of the last window k-samples' histograms, as drawn (no prediction)")
FA_OBSERVERS.register("filter", "particles: the last window k-samples, each moved through the model under the "
                                "locals' policy, corrected by each new k-sample")

MAX_WINDOW = 10_000
# The filter simulates window x k particles beside the fleet; by default no more than the fleet itself.
PARTICLE_BUDGET = 500
DEFAULT_POOL_WINDOW = 4


@dataclass(frozen=True)
class FAObserverSpec:
    """An observer of a continuous game and its parameters: what an FA policy file records under "observer".

    `window`: the decisions whose k samples are kept (1 for fresh). `gain` in [0, 1): weight
    (1 - gain)^age of a kept sample (fresh: 1, the newest sample alone).
    """

    name: str = "fresh"
    window: int = 1
    gain: float = 1.0

    def __post_init__(self):
        FA_OBSERVERS.check([self.name], ObserverError, "observer")
        window = integer(ObserverError, "observer.window", self.window, 1)
        if window > MAX_WINDOW:
            raise ObserverError("observer.window", f"is {window}; keep at most {MAX_WINDOW} decisions")
        gain = as_float(ObserverError, "observer.gain", self.gain)
        if self.name == "fresh":
            if (window, gain) != (1, 1.0):
                raise ObserverError("observer", f"fresh reads only the newest k-sample: window 1 and gain 1, got "
                                                f"window {window} and gain {gain:g} (use pool or filter)")
        elif not 0.0 <= gain < 1.0:
            raise ObserverError("observer.gain", f"is {gain:g}; {self.name} weighs a sample of age j by (1 - gain)^j, "
                                                 "gain in [0, 1) (gain 1 is fresh)")
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "gain", gain)

    @property
    def predicts(self) -> bool:
        return self.name == "filter"

    def to_meta(self) -> dict:
        return {"name": "fresh"} if self.name == "fresh" else {"name": self.name, "window": self.window,
                                                               "gain": self.gain}

    @classmethod
    def from_meta(cls, meta) -> "FAObserverSpec":
        keys = ["name"] if isinstance(meta, dict) and meta.get("name") == "fresh" else ["gain", "name", "window"]
        if not isinstance(meta, dict) or sorted(meta) != keys:
            raise ObserverError("observer", f"is {clip_text(repr(meta))}; use {{'name': 'fresh'}} or "
                                            "{'name': 'pool' | 'filter', 'window': W, 'gain': G}")
        return cls(**meta)

    def describe(self) -> str:
        if self.name == "fresh":
            return "fresh (one k-sample per decision, the paper's)"
        weights = "equal weights" if self.gain == 0 else f"weights (1 - {self.gain:g})^age"
        moved = "moved through the model" if self.predicts else "as drawn"
        return f"{self.name} (the last {self.window} k-samples, {moved}, {weights})"


FRESH = FAObserverSpec()


def default_observer(name: str, k: int, horizon: int, window=None, gain=None) -> FAObserverSpec:
    """The observer `name` with the defaults for k: pool keeps DEFAULT_POOL_WINDOW samples; the filter
    keeps as many as PARTICLE_BUDGET particles allow, up to the horizon; both weigh them equally."""
    FA_OBSERVERS.check([name], ObserverError, "observer")
    if name == "fresh":
        if window is not None or gain is not None:
            raise ObserverError("observer", "fresh has no window or gain (use pool or filter)")
        return FRESH
    if window is None:
        window = DEFAULT_POOL_WINDOW if name == "pool" else min(horizon, max(1, PARTICLE_BUDGET // k))
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
