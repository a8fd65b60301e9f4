"""Scenario YAML: the shipped worlds load; every mistake names its key path."""
import copy
import dataclasses
import re

import pytest
import yaml

from altmarl_sim.scenario import (ScenarioError, available_scenarios, load_scenario,
                                  parse_scenario, scenario_path)


@pytest.fixture(scope="module")
def default_dict():
    return yaml.safe_load(scenario_path("warehouse_ring").read_text())


def test_shipped_scenarios_load_with_the_papers_sizes():
    assert {"warehouse_ring", "warehouse_ring_hard"} <= set(available_scenarios())
    default = load_scenario()
    assert default.name == "warehouse_ring"
    assert default.sizes == (5, 5, 5, 3)
    assert default.timing.steps_per_epoch == 20
    assert default.mu0_l.sum() == pytest.approx(1.0) and default.mu0_g.sum() == pytest.approx(1.0)
    hard = load_scenario("warehouse_ring_hard")
    assert hard.sizes == (8, 8, 8, 3)
    assert hard.depot_start_zone is None
    assert hard.content_hash() != default.content_hash()


def test_content_hash_is_stable_and_ignores_labels(default_dict, tmp_path):
    a = parse_scenario(default_dict)
    renamed = dict(default_dict, name="other", description="same world, other label")
    assert parse_scenario(renamed).content_hash() == a.content_hash()
    changed = copy.deepcopy(default_dict)
    changed["rewards"]["service"] = 9.0
    assert parse_scenario(changed).content_hash() != a.content_hash()
    # to_dict is a complete description: it parses back to an equal scenario
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(a.to_dict()))
    assert dataclasses.replace(load_scenario(path), source=None) == dataclasses.replace(a, source=None)
    assert len(a.content_hash()) == 16


def test_optional_sections_take_documented_defaults(default_dict):
    trimmed = {k: v for k, v in default_dict.items() if k not in ("controller", "noise", "faults")}
    scenario = parse_scenario(trimmed)
    assert scenario.noise.speed_std == 0.0 and scenario.faults.stall_probability == 0.0
    assert scenario.controller.lookahead == 1.0


def edit(data, path, value):
    data = copy.deepcopy(data)
    *parents, key = path.split(".")
    node = data
    for parent in parents:
        node = node[parent]
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return data


DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("robots.max_speed", -1, "robots.max_speed: must be > 0, got -1"),
    ("robots.max_sped", 1.0, "robots.max_sped: unknown key"),
    ("robot", {}, "robot: unknown key (allowed: name, description, gamma, zones"),
    ("zones.radius", DELETE, "zones.radius: missing (required)"),
    ("rewards", DELETE, "rewards: missing (required)"),
    ("zones.count", 5.0, "zones.count: must be an integer >= 2, got 5.0"),
    ("zones.width", 3.0, "zones.width: must be < 2 * radius"),
    ("gamma", 1.0, "gamma: must be in [0, 1), got 1"),
    ("timing.decision_epoch", 1.01, "timing.decision_epoch: must be an integer multiple"),
    ("timing.control_period", 0, "timing.control_period: must be > 0"),
    ("fleet.start_zone_weights", [1, 2], "fleet.start_zone_weights: must be 'uniform' or a list of 5"),
    ("fleet.start_zone_weights", [1, 1, -1, 1, 1], "fleet.start_zone_weights[2]: must be >= 0"),
    ("fleet.depot_start_zone", 7, "fleet.depot_start_zone: must be a zone in 0..4 or 'random', got 7"),
    ("fleet.depot_start_zone", "Random", "fleet.depot_start_zone: must be a zone in 0..4 or 'random'"),
    ("fleet.start_jitter", 0.6, "fleet.start_jitter: must be <"),
    ("fleet.workers", 0, "fleet.workers: must be an integer >= 1"),
    ("faults.stall_duration_max", 0.5, "faults.stall_duration_max: must be >= stall_duration_min"),
    ("faults.stall_probability", 2, "faults.stall_probability: must be in [0, 1]"),
    ("noise.speed_std", "high", "noise.speed_std: must be a number"),
    ("rewards.worker_energy", -0.5, "rewards.worker_energy: must be >= 0"),
    ("controller.speed_gain", True, "controller.speed_gain: must be a number"),
])
def test_bad_scenario_names_the_key(default_dict, path, value, message):
    with pytest.raises(ScenarioError) as err:
        parse_scenario(edit(default_dict, path, value))
    assert str(err.value).startswith(message)


def test_bad_files_and_names(tmp_path):
    with pytest.raises(ScenarioError, match="unknown scenario 'nope' .available: .*warehouse_ring"):
        load_scenario("nope")
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("zones: [1, 2\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml: not valid YAML \(while parsing a flow sequence, line 1"):
        load_scenario(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match=r"\(top level\): must be a mapping of name, description, gamma, zones"):
        load_scenario(listing)


def test_labels_are_text_and_start_weights_need_a_positive_sum(default_dict):
    """name and description must be strings; start_zone_weights all zero has no distribution to draw from,
    while a single positive weight (every worker starts in that zone) is one."""
    n_zones = default_dict["zones"]["count"]
    for key, value in (("name", 3), ("description", ["a"])):
        with pytest.raises(ScenarioError, match=re.escape(f"{key}: must be a string, got {value!r}")):
            parse_scenario({**copy.deepcopy(default_dict), key: value})
    zeros = copy.deepcopy(default_dict)
    zeros["fleet"]["start_zone_weights"] = [0.0] * n_zones
    with pytest.raises(ScenarioError, match="start_zone_weights: must have a positive sum"):
        parse_scenario(zeros)
    one = copy.deepcopy(default_dict)
    one["fleet"]["start_zone_weights"] = [0.0] * (n_zones - 1) + [5e-324]
    assert parse_scenario(one).start_zone_weights == tuple([0.0] * (n_zones - 1) + [1.0])
