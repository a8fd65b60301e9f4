"""Compile every numba kernel the suite uses once, in one process, before pytest-xdist starts.

numba writes a kernel's cache entry only after compiling it, so on an empty cache (a clean
clone, CI) every worker and every subprocess a test starts compiles the same kernels at the
same time. Run first (test.sh does), this compiles each once through the README's commands
on tiny inputs, and everything after loads the cache; on a warm cache it only loads (a few s).
Nothing here checks results: the tests do.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny_model import save_tiny_model  # noqa: E402
from altmarl_ros.supervisor import warm_up_kernels  # noqa: E402
from altmarl_ros.warm_up import run_quietly, scratch_directory, warm_up_training  # noqa: E402

SMALL_EVALUATION = ["--n", "10", "--horizon", "3", "--seeds", "1", "--rollouts", "2", "--quiet"]
SMALL_SELECTION = ["--select-n", "10", "--select-rollouts", "2"]


def warm_up():
    with scratch_directory() as root:
        model = str(save_tiny_model(root / "tiny.yaml"))
        run_quietly("train", "--model", model, "--out", "tiny.npz", "--k", "2", "--m", "5", "--rounds", "2",
                    *SMALL_SELECTION, "--quiet")
        run_quietly("evaluate", "--model", model, "--policy", "tiny.npz", "--m", "5", *SMALL_EVALUATION)
        policy = str(warm_up_training(root / "ring.npz"))  # what scripts/bootstrap.sh warms as well
        run_quietly("evaluate", "--scenario", "warehouse_ring", "--policy", policy, *SMALL_EVALUATION)
        run_quietly("render", "--scenario", "warehouse_ring", "--policy", policy, "--n", "5", "--epochs", "1",
                    "--out", "fleet.png")
        warm_up_kernels()  # what the ROS nodes call
    _warm_up_the_rest()


def _warm_up_the_rest():
    """Kernels the commands above do not reach: G-LEARN's recomputed draws, the fleet_sim node's
    control step and controller, count enumeration, the PettingZoo model environment's step."""
    import numpy as np

    from _tiny_model import tiny_arrays
    from altmarl_ros.core.counts import enumerate_count_vectors, rank
    from altmarl_ros.core.glearn import g_learn
    from altmarl_ros.core.model import make_game
    from altmarl_ros.core.policy import uniform_local_policy
    from altmarl_sim.fleet import FleetSim
    from altmarl_sim.ring import go_to_goal, zone_of_angle
    from altmarl_sim.scenario import load_scenario

    game = make_game(**tiny_arrays(np.random.default_rng(0)))
    g_learn(game, uniform_local_policy(game), 2, m=5, table_bytes=0)
    enumerate_count_vectors(2, 2)
    rank(np.zeros(2, np.int32))
    scenario = load_scenario("warehouse_ring")
    FleetSim(scenario, n=2, seed=0).step_control()
    from altmarl_ros.envs.pettingzoo import ModelEnv

    env = ModelEnv(game, n=3, k=2, horizon=1)
    env.reset(seed=0)
    env.step(dict.fromkeys(env.agents, 0))
    zone_of_angle(np.zeros(2), scenario.ring)
    go_to_goal(np.zeros(2), np.zeros(2), np.zeros(2), np.ones(2), np.ones(2), scenario.limits)


if __name__ == "__main__":
    warm_up()
