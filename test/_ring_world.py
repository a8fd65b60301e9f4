"""The noise-free ring world the ROS graph tests share (the `world` fixture in conftest.py builds it)."""
import numpy as np
import yaml

from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.observers import ObserverSpec
from altmarl_ros.core.policy import build_policy, save_policy
from altmarl_sim.scenario import load_scenario, parse_scenario

N, K = 50, 5
STAY, NEXT = 0, 1


def make_ring_world(root) -> dict:
    """A noise- and fault-free copy of warehouse_ring with N workers, and policies for it, under `root`."""
    data = load_scenario("warehouse_ring").to_dict()
    data["name"] = "test_ring"
    data["fleet"]["workers"] = N
    data["noise"] = {"speed_std": 0.0, "turn_rate_std": 0.0}
    data["faults"] = {"stall_probability": 0.0, "stall_duration_min": 0.0, "stall_duration_max": 0.0}
    scenario_file = root / "test_ring.yaml"
    scenario_file.write_text(yaml.safe_dump(data))
    scenario = parse_scenario(data)
    z = scenario.ring.n_zones
    rng = np.random.default_rng(7)

    def policy(name, pi_g, local_action=None, k=K):
        pi_l = np.full((z, z, 3), 1.0 / 3)
        if local_action is not None:
            pi_l = np.zeros((z, z, 3))
            pi_l[..., local_action] = 1.0
        artifact = build_policy(pi_g, pi_l, k, n_ag=z, scenario=(scenario.name, scenario.content_hash()))
        return str(save_policy(artifact, root / f"{name}.npz")), artifact

    random_file, random_policy = policy("random", rng.integers(0, z, size=(z, n_count_vectors(K, z))))
    next_file, _ = policy("next", np.zeros((z, n_count_vectors(K, z)), dtype=int), local_action=NEXT)
    stay_file, _ = policy("stay", np.zeros((z, n_count_vectors(K, z)), dtype=int), local_action=STAY)
    # a filter at resolution 20 predicting with a random (not the fleet's) model: the estimate is
    # checked against the recursion recomputed in the test, not against the fleet
    filtered = build_policy(rng.integers(0, z, size=(z, n_count_vectors(20, z))), np.full((z, z, 3), 1.0 / 3), K,
                            n_ag=z, scenario=(scenario.name, scenario.content_hash()),
                            observer=ObserverSpec("filter", 0.25, 20),
                            prediction=(rng.dirichlet(np.ones(z), size=(z, z)), np.full(z, 1.0 / z)))
    filter_file = str(save_policy(filtered, root / "filter.npz"))
    return {"scenario": str(scenario_file), "ring": scenario.ring, "random": random_file,
            "random_policy": random_policy, "next": next_file, "stay": stay_file, "filter": filter_file,
            "filter_policy": filtered}
