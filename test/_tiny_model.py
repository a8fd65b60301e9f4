"""The tiny model file the CLI tests train on (2 global and 2 local states, 2 actions each)."""
import numpy as np

from altmarl_ros.core.model import make_game, save_model

K = 2
TRAIN_ARGS = ["--k", str(K), "--m", "5", "--rounds", "3", "--quiet"]


def tiny_arrays(rng):
    def rows(*shape):
        return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])

    return dict(P_g=rows(2, 2, 2), P_l=rows(2, 2, 2, 2), r_g=rng.uniform(0, 1, (2, 2)),
                r_l=rng.uniform(0, 2, (2, 2, 2)), gamma=0.9)


def save_tiny_model(path):
    return save_model(make_game(**tiny_arrays(np.random.default_rng(0))), path)
