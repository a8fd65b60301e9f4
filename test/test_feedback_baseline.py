"""The strongest population-blind baseline: a_g = f(s_g) with the locals' best response (core/baselines.py).

Checked against a closed form (a model where switching pays, so feedback beats every
constant), against the n-agent rollouts of core.evaluate (the exact mean-field value
of blind_welfare must sit in their CI), and the local search against the exhaustive one.
"""
import numpy as np
import pytest

from altmarl_ros.core import baselines
from altmarl_ros.core.baselines import BASELINES, blind_welfare, constant_global_candidates, feedback_global_candidates
from altmarl_ros.core.evaluate import rollout_welfare
from altmarl_ros.core.model import make_game

GAMMA = 0.9


def switching_game():
    """s_g' = a_g; r_g = 1 when a_g != s_g: only a rule that reads s_g earns every epoch (1 / (1 - gamma))."""
    P_g = np.zeros((2, 2, 2))
    P_g[:, 0, 0] = P_g[:, 1, 1] = 1.0
    r_g = 1.0 - np.eye(2)
    return make_game(P_g=P_g, P_l=np.ones((1, 2, 1, 1)), r_g=r_g, r_l=np.zeros((1, 2, 1)), gamma=GAMMA,
                     mu0_g=np.array([0.5, 0.5]))


def random_game(rng, n_sg=3, n_ag=3, n_sl=2, n_al=2):
    def rows(*shape):
        return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    return make_game(P_g=rows(n_sg, n_ag, n_sg), P_l=rows(n_sl, n_sg, n_al, n_sl), r_g=rng.uniform(0, 1, (n_sg, n_ag)),
                     r_l=rng.uniform(0, 2, (n_sl, n_sg, n_al)), gamma=GAMMA)


def test_feedback_beats_every_constant_where_switching_pays():
    game = switching_game()
    (best,) = feedback_global_candidates(game, 1)
    assert best.pi_g[:, 0].tolist() == [1, 0] and (best.pi_g == best.pi_g[:, :1]).all()
    assert blind_welfare(game, [1, 0], best.pi_l) == pytest.approx(1 / (1 - GAMMA))
    for constant in constant_global_candidates(game, 1):  # a constant earns once, from the other state
        assert blind_welfare(game, constant.pi_g[:, 0], constant.pi_l) == pytest.approx(0.5)
    assert blind_welfare(game, [1, 0], best.pi_l, horizon=3) == pytest.approx(1 + GAMMA + GAMMA ** 2)


def test_the_exact_value_is_what_the_rollouts_measure():
    rng = np.random.default_rng(5)
    game = random_game(rng)
    rule = [2, 0, 1]
    pi_l = rng.dirichlet(np.ones(2), size=(2, 3))
    table = np.repeat(np.array(rule, np.int32)[:, None], 3, axis=1)  # k = 2 over 2 local states: 3 columns
    measured = rollout_welfare(game, table, pi_l, 2, n=50, horizon=30, seeds=4, rollouts=100, seed=1)
    exact = blind_welfare(game, rule, pi_l, horizon=30)
    assert abs(measured.mean - exact) <= measured.ci95 + 1e-9, (measured.mean, measured.ci95, exact)
    assert abs(blind_welfare(game, [0, 0, 0], pi_l, horizon=30) - exact) > 3 * measured.ci95  # the rule matters


@pytest.mark.kernels
def test_the_local_search_finds_what_the_exhaustive_search_finds(monkeypatch):
    for seed in range(6):
        game = random_game(np.random.default_rng(seed))
        (exhaustive,) = feedback_global_candidates(game, 2)
        monkeypatch.setattr(baselines, "EXACT_FEEDBACK_RULES", 0)
        (searched,) = feedback_global_candidates(game, 2)
        monkeypatch.undo()
        assert "every rule" in exhaustive.detail and "local search" in searched.detail
        best = blind_welfare(game, exhaustive.pi_g[:, 0], exhaustive.pi_l)
        found = blind_welfare(game, searched.pi_g[:, 0], searched.pi_l)
        constants = [blind_welfare(game, c.pi_g[:, 0], c.pi_l) for c in constant_global_candidates(game, 2)]
        assert max(constants) - 1e-9 <= found <= best + 1e-9
        # (a local optimum need not be the global one; on these small models it is)
        assert found == pytest.approx(best)


@pytest.mark.kernels
def test_it_is_a_registered_blind_baseline_every_evaluator_reports():
    from altmarl_ros.core.evaluate import baselines as evaluate_baselines

    assert BASELINES["best_feedback_global"].blind
    game = switching_game()
    found = evaluate_baselines(game, 1, n=20, horizon=20, seeds=2, rollouts=20, seed=0)
    assert set(found) >= {"best_constant_global", "best_feedback_global"}
    assert found["best_feedback_global"].mean == pytest.approx((1 - GAMMA ** 20) / (1 - GAMMA))
    assert found["best_feedback_global"].mean > found["best_constant_global"].mean + 1.0
