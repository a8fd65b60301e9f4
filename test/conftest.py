"""Shared test set-up: isolate every ROS graph to this host and a random domain.

Set before any rclpy import so DDS discovery never reaches other machines or
another test run sharing the network.
"""
import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Every test process (each pytest-xdist worker too) holds a domain no other altmarl process on this host
# holds, the demo's mechanism: graphs of two workers, or of a worker and a demo it starts, never meet.
os.environ.pop("ROS_DOMAIN_ID", None)
from altmarl_ros.supervisor import claim_private_ros_domain  # noqa: E402

claim_private_ros_domain()

import pytest  # noqa: E402

# The longest compute-bound tests (minutes of wall on a loaded machine), started first so that under
# pytest-xdist neither starts last and runs alone at the end (the sweep's did); the rest keep their order.
# On a first run the continuous grid's JAX compiles make it one of them (82 s of one core; 12 s once build/jax-cache
# holds its steps).
LONGEST_FIRST = ("test/test_sweep.py::test_tiny_grid_end_to_end_then_resume_recomputes_nothing",
                 "test/test_sim_learning.py::test_train_and_evaluate_a_scenario_end_to_end",
                 "test/test_continuous_sweep.py::test_the_tiny_continuous_grid_runs_resumes_and_reports")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable


@pytest.fixture
def ros_context():
    """A private rclpy Context, shut down after the test (nodes must be destroyed by the test)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


@pytest.fixture
def toy_baseline():
    """A baseline registered by one call (global action 0 everywhere, uniform locals), removed after."""
    import numpy as np

    from altmarl_ros.core.baselines import BASELINES, Candidate, register_baseline
    from altmarl_ros.core.counts import n_count_vectors

    def candidates(game, k):
        pi_g = np.zeros((game.n_sg, n_count_vectors(k, game.n_sl)), np.int32)
        return [Candidate(pi_g, np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al), "a_g = 0")]

    baseline = register_baseline("toy_always_zero", "toy: a_g = 0, uniform locals", candidates)
    try:
        yield baseline
    finally:
        BASELINES.pop(baseline.name)


@pytest.fixture(scope="session")
def warehouse_game():
    """The shipped paper-size warehouse model (config/models/warehouse.yaml), loaded once."""
    from pathlib import Path

    from altmarl_ros.core.model import load_model

    return load_model(Path(__file__).resolve().parents[1] / "config" / "models" / "warehouse.yaml")


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory):
    """`altmarl train` run once on the tiny model: (model path, policy path, what it printed).

    Shared by every CLI test that only needs a trained policy; the policy is read-only for them.
    """
    import contextlib
    import io

    from _tiny_model import TRAIN_ARGS, save_tiny_model
    from altmarl_ros.cli import main

    root = tmp_path_factory.mktemp("tiny")
    model = save_tiny_model(root / "tiny.yaml")
    policy = root / "runs" / "tiny" / "policy.npz"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "--model", str(model), "--out", str(policy), *TRAIN_ARGS])
    assert code == 0, printed.getvalue()
    return model, policy, printed.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The noise-free ring world of the ROS graph tests (test/_ring_world.py)."""
    from _ring_world import make_ring_world

    return make_ring_world(tmp_path_factory.mktemp("nodes"))


@pytest.fixture
def graph(ros_context):
    """An in-process ROS graph on its own Context (test/_graph.py), closed after the test."""
    from _graph import Graph

    g = Graph(ros_context)
    yield g
    g.close()
