"""A hand-made FA policy on the continuous ring that acts as the tabular parked-depot policy (_herding_policy):
the depot stays in its zone, every worker steps towards the depot's zone. Shared by the continuous-ring tests."""
import numpy as np

from altmarl_ros.core.fa_policy import build_fa_policy, observation_sizes

MOVE = np.array([0, 2, 2, 1, 1])  # by zone relative to the depot's: 0 stay; 1, 2 previous; 3, 4 next


def parked_depot_fa(game, k):
    """(FA policy, its pi_l as a table [Z, Z, 3]): the global net reads the depot's zone one-hot (its first 5
    inputs) and returns it; the local net reads the zone relative to the depot's (inputs 10..14)."""
    z = game.n_zones
    W0_g = np.zeros((observation_sizes(game, k, "state+summary")["global"], z), np.float32)
    W0_g[:z] = 3 * np.eye(z)
    W0_l = np.zeros((observation_sizes(game, k, "state+summary")["local"], z), np.float32)
    W0_l[2 * z:3 * z] = 3 * np.eye(z)
    policy = build_fa_policy(game, k, [(W0_g, np.zeros(z, np.float32)), (np.eye(z, dtype=np.float32),
                                                                          np.zeros(z, np.float32))],
                             [(W0_l, np.zeros(z, np.float32)), (np.eye(3, dtype=np.float32)[MOVE],
                                                                np.zeros(3, np.float32))],
                             global_inputs="state+summary", hidden=[z])
    pi_l = np.zeros((z, z, 3))
    for s_l in range(z):
        for s_g in range(z):
            pi_l[s_l, s_g, MOVE[(s_l - s_g) % z]] = 1.0
    return policy, pi_l
