"""The federated-optimisation model: shipped file == builder, and its physics holds."""
from pathlib import Path

import numpy as np
import pytest

from altmarl_ros.models.federated import (
    AGG_LARGE, AGG_SMALL, BROADCAST, IDLE, OFFLINE, STALE, SYNCED, TRAIN, TRAINED, UPLOAD,
    federated_game,
)
from altmarl_ros.core.model import ModelError, load_model

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "models" / "federated.yaml"


def test_shipped_file_loads_and_equals_the_builder():
    shipped, built = load_model(SHIPPED), federated_game()
    for name in ("P_g", "P_l", "r_g", "r_l", "mu0_g", "mu0_l"):
        np.testing.assert_allclose(getattr(shipped, name), getattr(built, name), rtol=0, atol=1e-12,
                                   err_msg=name)
    assert shipped.gamma == built.gamma
    assert (shipped.n_sg, shipped.n_ag, shipped.n_sl, shipped.n_al) == (3, 3, 4, 3)


def test_progress_only_from_fresh_uploads_during_aggregation():
    game = federated_game()
    positive = {tuple(index) for index in np.argwhere(game.r_l > 0)}
    assert positive == {(TRAINED, AGG_SMALL, UPLOAD), (TRAINED, AGG_LARGE, UPLOAD)}
    assert game.r_l[TRAINED, AGG_LARGE, UPLOAD] > game.r_l[TRAINED, AGG_SMALL, UPLOAD]
    assert game.r_l[STALE, AGG_LARGE, UPLOAD] < game.r_l[STALE, AGG_SMALL, UPLOAD] < 0
    assert (game.r_g < 0).all()  # the server only pays


def test_only_broadcast_resynchronises_and_large_steps_age_clients_faster():
    P = federated_game().P_l
    assert (P[STALE, BROADCAST, :, SYNCED] > 0.5).all()
    assert (P[STALE, [AGG_SMALL, AGG_LARGE], :, SYNCED] == 0).all()
    drift = P[SYNCED, :, IDLE, STALE]
    assert drift[BROADCAST] == 0 < drift[AGG_SMALL] < drift[AGG_LARGE]
    assert P[SYNCED, AGG_SMALL, TRAIN, TRAINED] > P[SYNCED, AGG_SMALL, IDLE, TRAINED] == 0
    assert (P[OFFLINE, :, :, OFFLINE] == P[OFFLINE, 0, 0, OFFLINE]).all()  # actions do not matter offline


@pytest.mark.parametrize("kwargs, named", [
    ({"switch_prob": 1.5}, "switch_prob=1.5"),
    ({"drift_prob": (0.0, 0.1)}, "drift_prob"),
    ({"drift_prob": (0.0, 0.1, -0.2)}, "drift_prob"),
])
def test_bad_builder_parameters_are_named(kwargs, named):
    with pytest.raises(ModelError, match=named):
        federated_game(**kwargs)
