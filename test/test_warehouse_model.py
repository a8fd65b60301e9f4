"""The shipped paper-size warehouse model: equals its builder, loads, has the documented dynamics."""
import math
from pathlib import Path

import numpy as np

from altmarl_ros.core.model import load_model
from altmarl_ros.models.warehouse import paper_warehouse_model, warehouse_yaml_text

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "models" / "warehouse.yaml"
# Hash of the arrays, checked bit-for-bit against the authors' scripts/marl_example.py
# tables (emiletimothy/alternating-marl @ 1190c22) when the file was generated.
AUTHORS_TABLES_HASH = "e3066e8bf2e8a5f1"


def test_shipped_file_is_the_builders_output():
    assert SHIPPED.read_text() == warehouse_yaml_text()
    shipped, built = load_model(SHIPPED), paper_warehouse_model()
    assert shipped.content_hash() == built.content_hash() == AUTHORS_TABLES_HASH
    for key in ("P_g", "P_l", "r_g", "r_l", "mu0_g", "mu0_l"):
        assert np.array_equal(getattr(shipped, key), getattr(built, key))
    assert shipped.sizes == (5, 5, 5, 3) and shipped.gamma == 0.95 and shipped.name == "warehouse"


def test_dynamics_match_the_documented_closed_forms():
    game = paper_warehouse_model()
    e = math.exp
    # depot heading for another zone: target e^3, own zone e^0.5, three others e^0
    away = e(3) + e(0.5) + 3
    assert np.isclose(game.P_g[0, 3, 3], e(3) / away) and np.isclose(game.P_g[0, 3, 0], e(0.5) / away)
    assert np.isclose(game.P_g[2, 2, 2], e(3.5) / (e(3.5) + 4))
    # robot in zone 1, depot in zone 3, commanded +1: stay e^3.5, zone 2 e^1.5, zone 3 e^0.3
    z = e(3.5) + e(1.5) + e(0.3) + 2
    assert np.allclose(game.P_l[1, 3, 1], [1 / z, e(3.5) / z, e(1.5) / z, e(0.3) / z, 1 / z])
    # ring wrap-around: zone 0 commanded -1 goes to zone 4
    assert game.P_l[0, 2, 2, 4] > game.P_l[0, 2, 2, 1]
    # rewards: 10 co-located, 2/(1+d) otherwise, action terms 0 / +0.5 / -0.3; depot 1
    assert np.array_equal(game.r_g, np.ones((5, 5)))
    assert np.allclose(game.r_l[:, 0, 0], [10, 1, 2 / 3, 2 / 3, 1])
    assert np.allclose(game.r_l[3, 3] - game.r_l[3, 3, 0], [0, 0.5, -0.3])
    assert np.allclose(game.mu0_g, 0.2) and np.allclose(game.mu0_l, 0.2)
