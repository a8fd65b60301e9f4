"""The random-number generators the numba kernels use: one home for their constants and steps.

Two generators, each chosen for its kernels:
- splitmix64, counter-based: a draw is a pure function of (key, counter), so G-LEARN's
  samples and each robot's stream do not depend on how work is split or ordered
  (`counter_uniform`; `stream_start` or `stream_states` + `next_uniform` / `next_bits` for a stream).
- xoshiro256+, one state per rollout: the evaluator's long sequential streams, seeded
  from numpy's SeedSequence (`xoshiro_next`).
Python drivers draw their own seeds with numpy Generators; kernels never call numpy's RNG.
"""
import numpy as np
from numba import njit

U53 = 1.0 / 9007199254740992.0  # 2**-53: (uint64 >> 11) * U53 is uniform in [0, 1)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def mix64(z):
    """splitmix64 finaliser: a bijective avalanche of a uint64."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def position_uniform(position):
    """Uniform in [0, 1) at a splitmix64 position (key + counter*golden, which callers may sum in parts)."""
    return float(mix64(position) >> np.uint64(11)) * U53


@njit(cache=True, inline="always")
def counter_uniform(key, counter):
    """Counter-based uniform in [0, 1): splitmix64's output function of key + counter*golden."""
    return position_uniform(key + counter * GOLDEN)


@njit(cache=True)
def stream_start(seed, index):
    """Initial state of stream `index` under `seed` (both uint64), e.g. one per robot."""
    return mix64(seed ^ mix64((index + np.uint64(1)) * GOLDEN))


@njit(cache=True)
def stream_states(seed, count):
    """stream_start(seed, i) for i in 0..count-1: the start states of `count` streams (one per robot)."""
    states = np.empty(count, dtype=np.uint64)
    for i in range(count):
        states[i] = stream_start(seed, np.uint64(i))
    return states


@njit(cache=True, inline="always")
def next_bits(state):
    """(new state, 64 random bits) of a splitmix64 stream."""
    state = state + GOLDEN
    return state, mix64(state)


@njit(cache=True, inline="always")
def next_uniform(state):
    """(new state, uniform double in [0, 1)) of a splitmix64 stream."""
    state, bits = next_bits(state)
    return state, float(bits >> np.uint64(11)) * U53


@njit(cache=True, inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@njit(cache=True, inline="always")
def xoshiro_next(s0, s1, s2, s3):
    """xoshiro256+ step: returns the new state and a uniform double in [0, 1)."""
    result = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return s0, s1, s2, s3, float(result >> np.uint64(11)) * U53
