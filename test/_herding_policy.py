"""Small hand-made policies for the warehouse ring, for tests that need a real policy file fast."""
import numpy as np

from altmarl_ros.core.counts import enumerate_count_vectors
from altmarl_ros.core.policy import build_policy


def _walk_to_depot(z):
    """pi_l: every worker steps towards the depot's zone by the shorter way round (stays once there)."""
    pi_l = np.zeros((z, z, 3))
    for s_l in range(z):
        for s_g in range(z):
            ahead = (s_g - s_l) % z
            pi_l[s_l, s_g, 0 if ahead == 0 else 1 if ahead <= z // 2 else 2] = 1.0
    return pi_l


def herding_policy(scenario, k):
    """Depot: go to the zone where most sampled robots are. Workers: step towards the depot's zone."""
    z = scenario.ring.n_zones
    counts = enumerate_count_vectors(k, z)
    pi_g = np.tile(np.argmax(counts, axis=1).astype(np.int32), (z, 1))
    return build_policy(pi_g, _walk_to_depot(z), k, n_ag=z, scenario=(scenario.name, scenario.content_hash()))


def parked_depot_policy(scenario, k):
    """Depot: stay in the zone it is in. Workers: step towards it.

    Unlike herding (where depot and workers can chase each other, so a short run's welfare is
    bimodal), every worker's path here is independent of the others given the depot: the welfare
    is a mean over the fleet with a small single-run spread."""
    z = scenario.ring.n_zones
    pi_g = np.tile(np.arange(z, dtype=np.int32)[:, None], (1, len(enumerate_count_vectors(k, z))))
    return build_policy(pi_g, _walk_to_depot(z), k, n_ag=z, scenario=(scenario.name, scenario.content_hash()))
