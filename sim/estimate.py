"""The tabular mean-field game of a scenario, estimated from simulator draws, cached on disk.

`estimate_model(scenario)` asks the simulator sampler (sim/sampler.py) for
`samples_per_pair` one-epoch transitions of every worker triple (s_l, s_g, a_l) and
every depot pair (s_g, a_g), drawn from a running fleet, and returns the game of
the empirical frequencies and mean rewards together with the counts behind them:
    P_l[s_l, s_g, a_l, :] = counts / samples_per_pair,  r_l = mean sampled reward,
and likewise P_g, r_g; gamma and the initial distributions come from the scenario.

The result is written to runs/<scenario name>/model.npz (a model file every
`altmarl` command loads) and model_counts.npz (the counts and what produced
them). A later call with the same scenario content hash, samples, seed and
estimator version loads these files instead of simulating again.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from altmarl_ros.core._checks import integer
from altmarl_ros.core.atomic import atomic_writer
from altmarl_ros.core.budget import BudgetError
from altmarl_ros.core.model import ModelError, load_model, make_game, save_model
from altmarl_ros.core.safe_files import load_npz, parse_json
from altmarl_sim.sampler import (DEFAULT_MIXING_EPOCHS, DEFAULT_POOL_SIZE, SamplerError, SimSampler,
                                 Tabulation, tabulate)
from altmarl_sim.scenario import Scenario, ScenarioError

ESTIMATOR_VERSION = 1  # bump when the estimate of the same inputs changes
DEFAULT_SAMPLES_PER_PAIR = 2000
DEFAULT_RUNS_DIR = "runs"
MODEL_FILE = "model.npz"
COUNTS_FILE = "model_counts.npz"


def run_dir(scenario: Scenario, runs_dir=DEFAULT_RUNS_DIR) -> Path:
    """runs/<scenario name>/, the scenario's home for its model, policy and pictures."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario.name)
    if name.startswith("."):  # "..", ".", ".hidden": not a directory of runs_dir
        raise ScenarioError("name", f"{scenario.name!r} cannot name a directory under {runs_dir}/; "
                                    f"start it with a letter, digit or '_'")
    return Path(runs_dir) / name


def _provenance(scenario: Scenario, samples_per_pair: int, seed: int) -> dict:
    return {"scenario": scenario.name, "scenario_hash": scenario.content_hash(),
            "samples_per_pair": samples_per_pair, "seed": seed,
            "estimator_version": ESTIMATOR_VERSION, "pool_size": DEFAULT_POOL_SIZE,
            "mixing_epochs": DEFAULT_MIXING_EPOCHS}


def _load_cached(directory: Path, provenance: dict):
    """(game, counts) from `directory` if both files exist and were made from `provenance`."""
    counts_path, model_path = directory / COUNTS_FILE, directory / MODEL_FILE
    if not (counts_path.is_file() and model_path.is_file()):
        return None
    try:
        archive = load_npz(counts_path, "cached count file", ModelError)
        if parse_json(str(archive["provenance"]), str(counts_path), ModelError) != provenance:
            return None
        counts = Tabulation(*(archive[name] for name in Tabulation.__dataclass_fields__))
        game = load_model(model_path)
    except (KeyError, ModelError, BudgetError):
        return None  # unreadable or stale cache: estimate again
    if game.description != _description(provenance):
        return None  # model.npz was replaced by another estimate or by hand
    return game, counts


def _description(provenance: dict) -> str:
    return (f"estimated from scenario {provenance['scenario']} (hash {provenance['scenario_hash']}) "
            f"with {provenance['samples_per_pair']} simulator draws per pair, seed "
            f"{provenance['seed']}, estimator v{provenance['estimator_version']}")


def game_from_counts(scenario: Scenario, counts: Tabulation, description: str = ""):
    """The MeanFieldGame of empirical frequencies and mean rewards in `counts`."""
    local_n = counts.local_counts.sum(axis=-1)
    global_n = counts.global_counts.sum(axis=-1)
    for name, n in (("(s_l, s_g, a_l)", local_n), ("(s_g, a_g)", global_n)):
        empty = np.argwhere(n == 0)
        if empty.size:
            raise SamplerError("samples_per_pair", f"no simulator draws for {name} = "
                                                   f"{tuple(int(i) for i in empty[0])}")
    return make_game(
        P_g=counts.global_counts / global_n[..., None], P_l=counts.local_counts / local_n[..., None],
        r_g=counts.global_reward_sum / global_n, r_l=counts.local_reward_sum / local_n,
        gamma=scenario.gamma, mu0_g=scenario.mu0_g, mu0_l=scenario.mu0_l, name=scenario.name,
        description=description)


def estimate_model(scenario: Scenario, samples_per_pair: int = DEFAULT_SAMPLES_PER_PAIR,
                   seed: int = 0, progress=None, runs_dir=DEFAULT_RUNS_DIR):
    """(MeanFieldGame, Tabulation of counts) of `scenario`; see the module docstring.

    `progress(done, total)` is called as draws complete (not on a cache hit).
    `runs_dir=None` neither reads nor writes the cache.
    """
    if not isinstance(scenario, Scenario):
        raise SamplerError("scenario", f"must be a Scenario (load_scenario), got "
                                       f"{type(scenario).__name__}")
    samples_per_pair = integer(SamplerError, "samples_per_pair", samples_per_pair, 1)
    seed = integer(SamplerError, "seed", seed, 0)
    provenance = _provenance(scenario, samples_per_pair, seed)
    directory = None if runs_dir is None else run_dir(scenario, runs_dir)
    if directory is not None:
        cached = _load_cached(directory, provenance)
        if cached is not None:
            return cached
    counts = tabulate(SimSampler(scenario, seed=seed), samples_per_pair, progress)
    game = game_from_counts(scenario, counts, _description(provenance))
    if directory is not None:
        save_model(game, directory / MODEL_FILE)
        with atomic_writer(directory / COUNTS_FILE) as stream:
            np.savez(stream, provenance=np.str_(json.dumps(provenance, sort_keys=True)),
                     **{name: getattr(counts, name) for name in Tabulation.__dataclass_fields__})
    return game, counts
