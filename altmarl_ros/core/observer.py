"""Running observers: what the global agent makes of its k samples before it queries pi_g.

Which observers exist, and what each one does, is the registry's (core.observers); this
module runs them: the numba steps the evaluator's rollout kernel inlines and the stateful
`Observer` every other rollout, the environments and the coordinator run.

The paper's deployment (`fresh`) reads one fresh k-sample per decision as if it
were the fleet. The coordinator, though, gets a new sample every decision and
knows the model, so it can estimate the population far better than one sample
does. The `filter` observer keeps an estimate mu of the locals' state
distribution and, per decision,

    predict  mu <- mu P~_l(s_g)            once per epoch since the last estimate,
                                           s_g = the global state the locals acted on
    correct  mu <- (1 - g) mu + g F / m    F: this decision's m sampled counts (m <= k)
             g  =  m / (w + m),  w <- (1 - alpha) (w + m)

with P~_l(s'|s, s_g) = sum_a pi_l(a|s, s_g) P_l(s'|s, s_g, a) (G-LEARN's fused
model). w is the estimate's weight in sampled robots (a fading-memory mean):
it starts at 0, so the first decision reads its sample as `fresh` does and the
following ones average their samples; with full samples it settles at
W = k (1 - alpha) / alpha, where the gain is exactly `alpha`. A short sample
(m < k robots usable) moves the estimate less, an empty one not at all, and a
fleet that changes size keeps only the weight of the robots that stayed
(`resized`). pi_g is queried at mu rounded to a count vector over `resolution`
robots (largest remainders); pi_g is trained at that resolution.

`fresh` is the same recursion with alpha = 1 (w stays 0, so mu = F/m) and
resolution k; it is computed in integers (F scaled to k by largest remainders,
which is F itself for a full sample), so it is bit-for-bit the paper's
deployment. An observer that keeps an estimate but does not predict runs the
same steps with an identity model in place of P~_l. Nothing here imports ROS: the evaluator, the continuous-simulator
rollout, the sweep and the coordinator node all run these functions.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from altmarl_ros.core._checks import integer
from altmarl_ros.core.model import as_float_array, check_stochastic
from altmarl_ros.core.observers import ObserverError, ObserverSpec, fresh


# ----------------------------------------------------------------------------- kernels
# One home for each step; the evaluator's rollout kernel calls them inline (public for that).


@njit(cache=True, inline="always")
def predict_kernel(mu, P_sg, scratch):
    """mu <- mu P_sg in place (P_sg [S_l, S_l] row-stochastic); scratch [S_l]."""
    n = mu.shape[0]
    for j in range(n):
        scratch[j] = 0.0
    for i in range(n):
        if mu[i] != 0.0:
            for j in range(n):
                scratch[j] += mu[i] * P_sg[i, j]
    for j in range(n):
        mu[j] = scratch[j]


@njit(cache=True, inline="always")
def correct_kernel(mu, weight, counts, forget):
    """Blend the m = sum(counts) samples into mu in place; returns the new weight.

    gain m / (weight + m); then weight <- forget * (weight + m), forget = 1 - alpha.
    """
    m = 0
    for j in range(counts.shape[0]):
        m += counts[j]
    if m == 0:
        return weight
    g = m / (weight + m)
    for j in range(mu.shape[0]):
        mu[j] = (1.0 - g) * mu[j] + g * counts[j] / m
    return forget * (weight + m)


@njit(cache=True, inline="always")
def _remainder(weight, K, total, given, exact):
    """weight's share of K robots less `given`: in exact integers (times total) or in floating point."""
    if exact:
        return weight * K - given * total
    return weight * K / total - given


@njit(cache=True, inline="always")
def _largest_remainders(weights, total, K, out, exact):
    """out <- each weight's whole share of K, then one more at a time to the largest remainder
    (share - out, ties to the lower index) until they sum to K."""
    n = weights.shape[0]
    assigned = 0
    for j in range(n):
        out[j] = weights[j] * K // total if exact else int(np.floor(weights[j] * K / total))
        assigned += out[j]
    for _ in range(K - assigned):
        best, best_rem = 0, _remainder(weights[0], K, total, out[0], exact)
        for j in range(1, n):
            rem = _remainder(weights[j], K, total, out[j], exact)
            if rem > best_rem:
                best, best_rem = j, rem
        out[best] += 1


@njit(cache=True, inline="always")
def round_kernel(mu, K, out):
    """out <- the count vector over K robots nearest mu (largest remainders, ties to the lower index)."""
    total = 0.0
    for j in range(mu.shape[0]):
        total += mu[j]
    _largest_remainders(mu, total, K, out, False)


@njit(cache=True, inline="always")
def scale_kernel(counts, K, out):
    """out <- counts scaled to sum K by largest remainders, in exact integers (= counts if they sum to K)."""
    _largest_remainders(counts, counts.sum(), K, out, True)


# ----------------------------------------------------------------------------- drivers


def propagate(mu, P_fused, s_g: int, epochs: int = 1) -> np.ndarray:
    """mu after `epochs` steps of the locals' fused chain P~_l(s_g) (P_fused [S_g, S_l, S_l])."""
    out = np.array(mu, dtype=np.float64)
    scratch = np.empty_like(out)
    for _ in range(epochs):
        predict_kernel(out, P_fused[s_g], scratch)
    return out


def still_model(n_sg: int, n_sl: int) -> np.ndarray:
    """What an observer that does not predict runs in place of P~_l: every local stays (identity), exactly."""
    return np.tile(np.eye(n_sl), (n_sg, 1, 1))


def round_counts(mu, K: int) -> np.ndarray:
    """The count vector over K robots nearest the distribution mu (largest remainders)."""
    out = np.empty(len(mu), np.int64)
    round_kernel(np.asarray(mu, dtype=np.float64), K, out)
    return out


def scale_counts(counts, K: int) -> np.ndarray:
    """Observed counts (sum m >= 1) scaled to K robots by largest remainders, exactly."""
    counts = np.asarray(counts, dtype=np.int64)
    out = np.empty(len(counts), np.int64)
    scale_kernel(counts, K, out)
    return out


class Observer:
    """One running observer (the coordinator's, or one rollout's): `decide` per decision.

    P_fused is the locals' fused model [S_g, S_l, S_l] (fused.fold_local_policy of
    the policy's pi_l on the model it was trained on); k the robots sampled per
    decision; mu0 the model's initial local distribution (used when spec.prior > 0).
    """

    def __init__(self, spec: ObserverSpec, P_fused, k: int, mu0=None):
        self.spec = spec
        self.P_fused = np.ascontiguousarray(P_fused, dtype=np.float64)
        self.k = integer(ObserverError, "k", k, 1)
        if spec.prior > 0 and mu0 is None:
            raise ObserverError("mu0", "a filter with a prior needs the model's initial distribution mu0_l")
        self.mu0 = None if mu0 is None else np.asarray(mu0, dtype=np.float64)
        self._forget = 1.0 - spec.gain
        self.reset()

    def reset(self) -> None:
        """Back to the estimate before any sample: the prior, or none."""
        self._pending = []  # global states the locals acted on since the last estimate
        if self.spec.prior > 0:
            self.mu, self.weight = self.mu0.copy(), self.spec.prior
        else:
            self.mu, self.weight = None, 0.0

    def elapsed(self, s_g: int) -> None:
        """One epoch passed with the locals acting under global state s_g."""
        if self.mu is not None:
            self._pending.append(int(s_g))

    def resized(self, n_before: int, n_after: int) -> None:
        """The fleet went from n_before to n_after robots: keep only the weight of those that stayed."""
        if n_before > 0 and n_after != n_before:
            self.weight *= min(n_before, n_after) / max(n_before, n_after)

    def decide(self, counts) -> np.ndarray | None:
        """Predict through the epochs since the last decision, correct with this decision's
        sampled counts (sum m, 0 <= m <= k), and return the count vector over
        `resolution` robots at which to query pi_g (None when there is nothing to decide on:
        fresh without a sample, filter before any estimate)."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or counts.shape[0] != self.P_fused.shape[1] or (counts < 0).any():
            raise ObserverError("counts", f"{counts.tolist()} must be {self.P_fused.shape[1]} non-negative counts")
        m = int(counts.sum())
        if m > self.k:
            raise ObserverError("counts", f"sum to {m}, more than k = {self.k} samples")
        K = self.spec.resolution
        if not self.spec.kind.estimates:
            self._pending.clear()
            if m == 0:
                return None
            self.mu = counts / m
            return scale_counts(counts, K)
        if self.mu is None:
            if m == 0:
                return None
            self.mu = np.zeros(len(counts))
        scratch = np.empty_like(self.mu)
        for s_g in self._pending:
            predict_kernel(self.mu, self.P_fused[s_g], scratch)
        self._pending.clear()
        self.weight = correct_kernel(self.mu, self.weight, counts, self._forget)
        return round_counts(self.mu, K)


def deployed_observer(n_sg: int, n_sl: int, k: int, spec: ObserverSpec | None = None, prediction=None) -> Observer:
    """The stateful observer a deployed policy runs (default fresh). A predicting observer (a filter)
    predicts with prediction = (P_fused [S_g, S_l, S_l], mu0 [S_l]); for the others an identity
    model stands in and `prediction` is not used."""
    spec = fresh(k) if spec is None else spec
    if spec.kind.predicts and prediction is None:
        raise ObserverError("prediction", f"a {spec.name} observer needs the model it predicts with: pass "
                                          "(P_fused, mu0), e.g. the policy's observer_P, observer_mu0")
    if not spec.kind.predicts:
        return Observer(spec, still_model(n_sg, n_sl), k)
    if not isinstance(prediction, (tuple, list)) or len(prediction) != 2:
        raise ObserverError("prediction", f"must be a pair (P_fused [S_g, S_l, S_l], mu0 [S_l]), got {prediction!r}")
    P_fused = as_float_array("prediction P_fused", prediction[0], 3, error=ObserverError)
    if P_fused.shape != (n_sg, n_sl, n_sl):
        raise ObserverError("prediction", f"P_fused has shape {P_fused.shape}; expected (S_g, S_l, S_l) = "
                                          f"{(n_sg, n_sl, n_sl)}")
    check_stochastic("prediction P_fused", P_fused, error=ObserverError)
    mu0 = None
    if prediction[1] is not None:
        mu0 = as_float_array("prediction mu0", prediction[1], 1, error=ObserverError)
        if mu0.shape != (n_sl,):
            raise ObserverError("prediction", f"mu0 has shape {mu0.shape}; expected ({n_sl},)")
        check_stochastic("prediction mu0", mu0, error=ObserverError)
    return Observer(spec, P_fused, k, mu0=mu0)
