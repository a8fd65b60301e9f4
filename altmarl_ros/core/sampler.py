"""The generative-sampler protocol, and a sampler pooled into a MeanFieldGame for the learners.

Protocol (docs/architecture.md): an object with `sizes`
(n_sg, n_ag, n_sl, n_al), `gamma`, expected rewards `r_g` [S_g, A_g] and
`r_l` [S_l, S_g, A_l], and batch methods `sample_local(s_l, s_g, a_l, rng) -> s_l'`
and `sample_global(s_g, a_g, rng) -> s_g'` on int arrays.

`as_game` queries a sampler for `pool` draws of every local triple (s_l, s_g, a_l)
and every global pair (s_g, a_g), in two batch calls, and returns the game of
these pooled empirical kernels. G-LEARN then draws each agent's move from the
pool and takes the s_g' expectation over the pooled global draws. Why pool:
all locals share one kernel, so the m-sample operator's agent moves can all
come from the same per-triple draws; drawing fresh ones per (s_g, F, sample)
would cost m*k sampler calls per surrogate state (about 1.6e8 at k = 40) for
no change in the operator's expectation.
"""
from __future__ import annotations

import numpy as np

from altmarl_ros.core import budget
from altmarl_ros.core._checks import integer
from altmarl_ros.core.model import MeanFieldGame, make_game
from altmarl_ros.errors import LearnError, ModelError

DEFAULT_POOL = 2048


# Per draw of a tabulation: state/action/pair index arrays, next state, reward (int64/float64).
_BYTES_PER_DRAW = 96
_GAME_COPIES = 4  # counts, frequencies, the validated copy and its read-only copy


def require_tabulation(sizes, draws_per_pair: int, what: str, fix: str) -> None:
    """Check the memory budget for estimating a tabular game from `draws_per_pair` draws of
    every (s_l, s_g, a_l) and (s_g, a_g): the draws, then P_l [S_l, S_g, A_l, S_l] and P_g."""
    n_sg, n_ag, n_sl, n_al = (float(size) for size in sizes)
    pairs = n_sl * n_sg * n_al + n_sg * n_ag
    model = 8 * (n_sl * n_sg * n_al * n_sl + n_sg * n_ag * n_sg)
    budget.require(what, pairs * draws_per_pair * _BYTES_PER_DRAW + _GAME_COPIES * model, fix)


def as_game(source, pool: int = DEFAULT_POOL, seed: int = 0) -> MeanFieldGame:
    """The tabular game of `source`: itself if a MeanFieldGame, else pooled sampler draws."""
    if isinstance(source, MeanFieldGame):
        return source
    missing = [name for name in ("sizes", "gamma", "r_g", "r_l", "sample_local", "sample_global")
               if not hasattr(source, name)]
    if missing:
        raise LearnError("source", f"{type(source).__name__} is neither a MeanFieldGame nor a "
                         f"generative sampler: it lacks {', '.join(missing)} "
                         "(see the sampler protocol in docs/architecture.md)")
    pool = integer(LearnError, "pool (sampler draws per pair)", pool, 1)
    seed = integer(LearnError, "seed", seed, 0)
    try:
        n_sg, n_ag, n_sl, n_al = (integer(LearnError, f"source.sizes[{i}]", v, 1)
                                  for i, v in enumerate(source.sizes))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, LearnError):
            raise
        raise LearnError("source.sizes", f"must be 4 integers (n_sg, n_ag, n_sl, n_al), "
                         f"got {source.sizes!r}") from None
    require_tabulation((n_sg, n_ag, n_sl, n_al), pool,
                       f"pooling {pool} sampler draws per pair of {n_sl} local, {n_sg} global states",
                       "use a smaller scenario (zones.count)")
    rng = np.random.default_rng([seed, 0x5A3B1E])  # independent of G-LEARN's sample stream
    s_l, s_g, a_l = (np.repeat(axis.ravel(), pool) for axis in
                     np.meshgrid(np.arange(n_sl), np.arange(n_sg), np.arange(n_al), indexing="ij"))
    nxt = _draws(source.sample_local(s_l, s_g, a_l, rng), s_l.shape[0], n_sl, "sample_local")
    P_l = np.bincount((np.repeat(np.arange(n_sl * n_sg * n_al), pool) * n_sl + nxt),
                      minlength=n_sl * n_sg * n_al * n_sl).reshape(n_sl, n_sg, n_al, n_sl) / pool
    g, a = (np.repeat(axis.ravel(), pool) for axis in
            np.meshgrid(np.arange(n_sg), np.arange(n_ag), indexing="ij"))
    nxt = _draws(source.sample_global(g, a, rng), g.shape[0], n_sg, "sample_global")
    P_g = np.bincount(np.repeat(np.arange(n_sg * n_ag), pool) * n_sg + nxt,
                      minlength=n_sg * n_ag * n_sg).reshape(n_sg, n_ag, n_sg) / pool
    try:
        return make_game(P_g=P_g, P_l=P_l, r_g=source.r_g, r_l=source.r_l, gamma=source.gamma,
                         mu0_g=getattr(source, "mu0_g", None), mu0_l=getattr(source, "mu0_l", None),
                         name=f"{getattr(source, 'name', '') or type(source).__name__} "
                              f"(pooled, {pool} draws per pair)")
    except ModelError as exc:
        raise LearnError("source", f"the sampler's rewards or gamma are invalid: {exc}") from None


def _draws(values, expected: int, n_states: int, method: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (expected,) or not np.issubdtype(array.dtype, np.integer):
        raise LearnError(f"source.{method}", f"returned {array.dtype} array of shape {array.shape}; "
                         f"it must return one int state per input, shape ({expected},)")
    bad = np.flatnonzero((array < 0) | (array >= n_states))
    if bad.size:
        raise LearnError(f"source.{method}", f"returned state {array[bad[0]]} at index {bad[0]}; "
                         f"states are 0..{n_states - 1}")
    return array.astype(np.int64)
