"""ALTERNATING-MARL: alternate G-LEARN and L-LEARN until no round improves by more than 2*eta.

    pi_l <- start (below)
    round r: pi_g <- G-LEARN(pi_l) (warm-started from round r-1's Q)
             J_r  <- surrogate welfare of (pi_g, pi_l) (G-LEARN's value, see glearn.py)
             stop if r > 0 and J_r <= J_accepted + 2*eta: return the last accepted pair
             log the Nash gap of (pi_g, pi_l): max(global gain, local gain)
             pi_l <- L-LEARN(pi_g, population on pi_l); stop if it equals pi_l

The objective compared is the k-agent surrogate's welfare, which G-LEARN computes
anyway: with the same seed every round's operator uses the same RNG streams, so
consecutive values are estimated alike. The returned pair is the last accepted
one, for which the log holds both unilateral gains (global: glearn.
global_best_response_gain at `gain_tol`; local: llearn.local_best_response_gain).

Start (`start="best_constant"`, the default): pi_l = the local best response to
the best constant global action, the pair of the "best constant global"
baseline. For every a_g, L-LEARN against pi_g = a_g is exact (s_g is then an
autonomous chain) and so is the pair's welfare (a linear solve on the
(s_l, s_g) chain, `constant_global_welfare`); the best a_g's pi_l starts the
alternation. Why: the game is a coordination game with several equilibria.
On the warehouse model, uniform locals (`start="uniform"`, the paper's
example) lead to locals that circle the ring and a depot that chases the
sampling noise of F: an equilibrium whose welfare is far below a parked depot
with locals walking to it. Starting from that pair, every accepted round can
only raise the surrogate welfare above it.

Default eta = ETA_C * span(r_l) / ((1 - gamma) sqrt(k)). span(r_l)/(2 sqrt(k)) is
the scale of the per-step error when k sampled locals stand for the population
(a mean of k bounded rewards), and 1/(1-gamma) carries it over the horizon:
the Õ(1/sqrt(k)) of the paper's guarantee. ETA_C = 0.01 keeps 2*eta to about 1%
of that worst case (2*eta = 1.3 at k = 10 on the authors' warehouse model, whose
welfare is about 90-100), so a real best-response improvement passes and an
improvement at the level of estimation noise stops the alternation.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from altmarl_ros.core._checks import as_float, integer
from altmarl_ros.core.baselines import blind_welfare, constant_global_candidates
from altmarl_ros.core.glearn import DEFAULT_MAX_SWEEPS, check_learning_args, learn_with_surrogate, surrogate_gain
from altmarl_ros.core.glearn_memory import DEFAULT_TABLE_BYTES, alternation_budget, check_max_memory
from altmarl_ros.core.llearn import l_learn
from altmarl_ros.core.policy import check_local_policy, uniform_local_policy
from altmarl_ros.core.sampler import DEFAULT_POOL, as_game
from altmarl_ros.errors import LearnError

ETA_C = 0.01
STARTS = ("best_constant", "uniform")


@dataclass(frozen=True)
class RoundLog:
    """One round. Gains and gap are NaN for a rejected round (its pair is not returned)."""

    round: int
    welfare_estimate: float  # surrogate welfare of this round's (pi_g, pi_l)
    nash_gap: float
    global_gain: float
    local_gain: float
    g_residual: float
    g_sweeps: int
    l_residual: float  # Bellman residual of L-LEARN's exact solution
    mu_residual: float  # of the mean-field fixed point used by L-LEARN
    accepted: bool
    seconds: float


@dataclass(frozen=True)
class AlternatingResult:
    """The last accepted (pi_g int32 [S_g, N_F], pi_l float64 [S_l, S_g, A_l]) and the round log."""

    pi_g: np.ndarray
    pi_l: np.ndarray
    rounds: list = field(repr=False)
    eta: float
    converged: bool  # stopped by the 2*eta rule or a fixed pi_l, not by the round cap
    stop_reason: str
    welfare_estimate: float
    nash_gap: float
    global_gain: float
    local_gain: float
    Q: np.ndarray = field(repr=False)  # G-LEARN's Q for the returned pair (warm start for more)
    start: str = ""  # how pi_l started, e.g. "best_constant: a_g = 2, welfare 110.4"
    k: int = 0
    m: int = 0
    seed: int = 0
    seconds: float = 0.0


def default_eta(game, k: int) -> float:
    """ETA_C * span(r_l) / ((1 - gamma) * sqrt(k)) (module docstring)."""
    return eta_from_span(float(game.r_l.max() - game.r_l.min()), game.gamma, k)


def eta_from_span(span: float, gamma: float, k: int) -> float:
    """The default eta for local rewards spanning `span` (also the FA learners', core/fa_alternating.py)."""
    return ETA_C * span / ((1.0 - gamma) * math.sqrt(k))


def constant_global_welfare(game, a_g: int, pi_l: np.ndarray) -> float:
    """Exact welfare of (global action always a_g, locals on pi_l) for s_g ~ mu0_g, s_l ~ mu0_l, infinite
    horizon: the constant rule of core.baselines.blind_welfare."""
    return blind_welfare(game, np.full(game.n_sg, a_g), pi_l)


def best_constant_start(game, k: int) -> tuple:
    """(a_g, pi_l, welfare): the best_constant_global baseline's candidate (a_g with the locals'
    best response to it) that scores best, by exact welfare rather than rollouts."""
    best = None
    for a_g, candidate in enumerate(constant_global_candidates(game, k)):
        welfare = constant_global_welfare(game, a_g, candidate.pi_l)
        if best is None or welfare > best[2]:
            best = (a_g, candidate.pi_l, welfare)
    return best


def alternating_marl(source, k, m=30, rounds=10, eta=None, seed=0, tol=1e-4, progress=None, *,
                     start="best_constant", gain_tol=1e-6, max_sweeps=DEFAULT_MAX_SWEEPS, sweep_progress=None,
                     table_bytes=DEFAULT_TABLE_BYTES, max_memory=None, pool=DEFAULT_POOL) -> AlternatingResult:
    """ALTERNATING-MARL on `source` (a MeanFieldGame or a generative sampler) with k sampled locals.

    `rounds`: at most this many G-LEARN calls. `eta`: default default_eta(game, k).
    `start`: "best_constant", "uniform", or a pi_l array [S_l, S_g, A_l] (module docstring).
    `tol`: G-LEARN's sup-norm residual; `gain_tol`: residual for the global gain
    (finer, so gap estimates are exact to 2*gamma*gain_tol/(1-gamma)).
    `progress(round_log)` is called after every round; `sweep_progress(sweep,
    residual)` after every G-LEARN sweep.
    """
    started = time.perf_counter()
    k, m, tol, max_sweeps, seed, table_bytes = check_learning_args(k, m, tol, max_sweeps, seed,
                                                                    table_bytes)
    max_memory = check_max_memory(max_memory)
    rounds = integer(LearnError, "rounds", rounds, 1)
    gain_tol = as_float(LearnError, "gain_tol", gain_tol)
    if gain_tol <= 0:
        raise LearnError("gain_tol", f"must be > 0, got {gain_tol:g}")
    game = as_game(source, pool, seed)
    glearn_memory = alternation_budget(game, k, m, table_bytes, max_memory)
    if eta is None:
        eta = default_eta(game, k)
    eta = as_float(LearnError, "eta", eta)
    if eta < 0:
        raise LearnError("eta", f"must be >= 0, got {eta:g}")

    pi_l, start_text = _start(game, k, start)
    log, accepted, Q = [], None, None
    stop_reason = f"round cap ({rounds}) reached"
    for index in range(rounds):
        round_started = time.perf_counter()
        learned, surrogate, V = learn_with_surrogate(game, pi_l, k, m, tol, max_sweeps, seed, Q, sweep_progress,
                                                     table_bytes, glearn_memory, keep_draws=True)
        Q = learned.Q
        if accepted is not None and learned.value <= accepted["welfare"] + 2 * eta:
            log.append(RoundLog(index, learned.value, math.nan, math.nan, math.nan, learned.residual,
                                learned.sweeps, math.nan, math.nan, False,
                                time.perf_counter() - round_started))
            _report(progress, log)
            stop_reason = (f"round {index} improved the surrogate welfare by "
                           f"{learned.value - accepted['welfare']:.4g} <= 2*eta = {2 * eta:.4g}")
            break
        global_gain = surrogate_gain(surrogate, V, learned.pi_g, gain_tol, max_sweeps)
        del surrogate, V
        best = l_learn(game, learned.pi_g, k, pi_l)
        gap = max(global_gain, best.gain)
        log.append(RoundLog(index, learned.value, gap, global_gain, best.gain, learned.residual,
                            learned.sweeps, best.residual, best.mu_residual, True,
                            time.perf_counter() - round_started))
        _report(progress, log)
        accepted = dict(pi_g=learned.pi_g, pi_l=pi_l, Q=learned.Q, welfare=learned.value, gap=gap,
                        global_gain=global_gain, local_gain=best.gain)
        if np.array_equal(best.pi_l, pi_l):
            stop_reason = f"round {index}: pi_l is its own best response"
            break
        pi_l = best.pi_l

    return AlternatingResult(
        pi_g=accepted["pi_g"], pi_l=accepted["pi_l"], rounds=log, eta=eta,
        converged=not stop_reason.startswith("round cap"), stop_reason=stop_reason,
        welfare_estimate=accepted["welfare"], nash_gap=accepted["gap"],
        global_gain=accepted["global_gain"], local_gain=accepted["local_gain"], Q=accepted["Q"],
        k=k, m=m, seed=seed, seconds=time.perf_counter() - started, start=start_text)


def _start(game, k, start):
    if isinstance(start, str):
        if start == "uniform":
            return uniform_local_policy(game), "uniform"
        if start == "best_constant":
            a_g, pi_l, welfare = best_constant_start(game, k)
            return pi_l, f"best_constant: a_g = {a_g}, exact welfare {welfare:.4f}"
        raise LearnError("start", f"is {start!r}; use one of {STARTS} or a pi_l array")
    return check_local_policy(game.sizes, start, LearnError, "start"), "given pi_l"


def _report(progress, log):
    if progress is not None:
        progress(log[-1])
