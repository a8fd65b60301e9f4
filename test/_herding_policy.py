"""A small hand-made policy for the warehouse ring, for tests that need a real policy file fast."""
import numpy as np

from altmarl_ros.core.counts import enumerate_count_vectors
from altmarl_ros.core.policy import build_policy


def herding_policy(scenario, k):
    """Depot: go to the zone where most sampled robots are. Workers: step towards the depot's zone."""
    z = scenario.ring.n_zones
    counts = enumerate_count_vectors(k, z)
    pi_g = np.tile(np.argmax(counts, axis=1).astype(np.int32), (z, 1))
    pi_l = np.zeros((z, z, 3))
    for s_l in range(z):
        for s_g in range(z):
            ahead = (s_g - s_l) % z
            pi_l[s_l, s_g, 0 if ahead == 0 else 1 if ahead <= z // 2 else 2] = 1.0
    return build_policy(pi_g, pi_l, k, n_ag=z, scenario=(scenario.name, scenario.content_hash()))
