"""Observers (core.observer) against independent computations: exact propagation by explicit
sums over actions, the paper's fresh sample, an n-agent simulation written out in numpy."""
import math
from fractions import Fraction

import numpy as np
import pytest

from _learn_reference import random_local_policy
from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.evaluate import rollout_welfare
from altmarl_ros.core.fused import fold_local_policy
from altmarl_ros.core.model import make_game
from altmarl_ros.core.observer import Observer, propagate, round_counts, scale_counts, still_model
from altmarl_ros.core.observers import ObserverError, ObserverSpec, equivalent_samples, fresh
from altmarl_ros.core.policy import PolicyError, build_policy


def _game(rng, n_sg=3, n_ag=2, n_sl=4, n_al=3):
    def rows(*shape):
        return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])

    return make_game(P_g=rows(n_sg, n_ag, n_sg), P_l=rows(n_sl, n_sg, n_al, n_sl),
                     r_g=rng.uniform(-1, 1, (n_sg, n_ag)), r_l=rng.uniform(0, 3, (n_sl, n_sg, n_al)),
                     gamma=0.9, mu0_g=rng.dirichlet(np.ones(n_sg)), mu0_l=rng.dirichlet(np.ones(n_sl)))


def _exact_step(game, pi_l, mu, s_g):
    """One step of the population distribution by explicit sums over states and actions."""
    out = np.zeros(game.n_sl)
    for s in range(game.n_sl):
        for a in range(game.n_al):
            for t in range(game.n_sl):
                out[t] += mu[s] * pi_l[s, s_g, a] * game.P_l[s, s_g, a, t]
    return out


@pytest.mark.kernels
def test_prediction_is_the_exact_propagation_of_a_known_distribution():
    rng = np.random.default_rng(1)
    game = _game(rng)
    pi_l = random_local_policy(game, rng)
    P_fused, _ = fold_local_policy(game, pi_l)
    mu = rng.dirichlet(np.ones(game.n_sl))
    expected = mu
    for _ in range(3):
        expected = _exact_step(game, pi_l, expected, 2)
    np.testing.assert_allclose(propagate(mu, P_fused, 2, epochs=3), expected, rtol=0, atol=1e-14)
    # the observer predicts under each epoch's own s_g, in order (the chains do not commute)
    observer = Observer(ObserverSpec("filter", 0.5, 20), P_fused, k=4)
    observer.decide(np.array([4, 0, 0, 0]))
    observer.elapsed(0)
    observer.elapsed(1)
    observer.weight = 1e300  # a correction that keeps the prediction: gain m / (w + m) ~ 0
    observer.decide(np.array([0, 0, 0, 4]))
    expected = _exact_step(game, pi_l, _exact_step(game, pi_l, np.array([1.0, 0, 0, 0]), 0), 1)
    np.testing.assert_allclose(observer.mu, expected, atol=1e-12)


@pytest.mark.kernels
def test_gain_one_filter_is_exactly_fresh():
    rng = np.random.default_rng(2)
    game = _game(rng)
    k = 5
    pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(k, game.n_sl))).astype(np.int32)
    pi_l = random_local_policy(game, rng)
    args = dict(n=40, horizon=30, seeds=2, rollouts=20, seed=3)
    paper = rollout_welfare(game, pi_g, pi_l, k, **args)
    unit_gain = rollout_welfare(game, pi_g, pi_l, k, observer=ObserverSpec("filter", 1.0, k), **args)
    np.testing.assert_array_equal(unit_gain.returns, paper.returns)
    assert unit_gain.estimation_error == pytest.approx(paper.estimation_error, abs=1e-12)
    # and the stateful observer the coordinator runs, on short samples too
    P_fused, _ = fold_local_policy(game, pi_l)
    filt, paper_obs = Observer(ObserverSpec("filter", 1.0, k), P_fused, k), Observer(fresh(k), P_fused, k)
    for _ in range(50):
        counts = rng.multinomial(int(rng.integers(1, k + 1)), np.full(game.n_sl, 1 / game.n_sl))
        filt.elapsed(int(rng.integers(game.n_sg)))
        np.testing.assert_array_equal(filt.decide(counts), paper_obs.decide(counts))


@pytest.mark.kernels
def test_fresh_reproduces_the_paper_deployment_when_no_observer_is_given():
    rng = np.random.default_rng(3)
    game = _game(rng)
    pi_g = rng.integers(0, game.n_ag, (game.n_sg, n_count_vectors(3, game.n_sl))).astype(np.int32)
    pi_l = random_local_policy(game, rng)
    args = dict(n=30, horizon=20, seeds=2, rollouts=10, seed=5)
    np.testing.assert_array_equal(rollout_welfare(game, pi_g, pi_l, 3, **args).returns,
                                  rollout_welfare(game, pi_g, pi_l, 3, observer=fresh(3), **args).returns)


def _numpy_fleet_errors(game, pi_l, spec, k, n, horizon, rng):
    """Mean TV error of `spec`'s estimate and of each decision's fresh sample, in a fleet simulated
    agent by agent with numpy (constant global state 0; the observer is the Python class)."""
    P_fused, _ = fold_local_policy(game, pi_l)
    observer = Observer(spec, P_fused, k, mu0=game.mu0_l)
    states = rng.choice(game.n_sl, size=n, p=game.mu0_l)
    filter_error = sample_error = 0.0
    for _ in range(horizon):
        truth = np.bincount(states, minlength=game.n_sl) / n
        sample = np.bincount(states[rng.choice(n, size=k, replace=False)], minlength=game.n_sl)
        observer.decide(sample)
        filter_error += 0.5 * np.abs(observer.mu - truth).sum()
        sample_error += 0.5 * np.abs(sample / k - truth).sum()
        actions = np.array([rng.choice(game.n_al, p=pi_l[s, 0]) for s in states])
        states = np.array([rng.choice(game.n_sl, p=game.P_l[s, 0, a]) for s, a in zip(states, actions)])
        observer.elapsed(0)
    return filter_error / horizon, sample_error / horizon


def test_filter_estimates_the_fleet_better_than_one_fresh_sample():
    rng = np.random.default_rng(4)
    game = _game(rng)
    pi_l = random_local_policy(game, rng)
    filter_error, sample_error = _numpy_fleet_errors(game, pi_l, ObserverSpec("filter", 0.1, 50), 5, 500, 60,
                                                     np.random.default_rng(5))
    assert filter_error < 0.5 * sample_error
    # the rollout kernel's own measure agrees
    k, K = 5, 20
    pi_g = np.zeros((game.n_sg, n_count_vectors(K, game.n_sl)), np.int32)
    args = dict(n=500, horizon=60, seeds=2, rollouts=10, seed=6)
    filtered = rollout_welfare(game, pi_g, pi_l, k, observer=ObserverSpec("filter", 0.1, K), **args)
    paper = rollout_welfare(game, np.zeros((game.n_sg, n_count_vectors(k, game.n_sl)), np.int32), pi_l, k,
                            **args)
    assert filtered.estimation_error < 0.5 * paper.estimation_error
    # with every robot sampled and gain 1 the estimate is the fleet
    exact = rollout_welfare(game, pi_g, pi_l, 500, observer=ObserverSpec("filter", 1.0, K), **args)
    assert exact.estimation_error < 1e-12


@pytest.mark.kernels
def test_short_empty_and_resized_samples():
    P = np.tile(np.eye(3), (2, 1, 1))  # nobody moves: only the corrections change mu
    observer = Observer(ObserverSpec("filter", 0.5, 10), P, k=4)
    assert observer.decide(np.zeros(3, int)) is None  # nothing seen yet
    np.testing.assert_array_equal(observer.decide(np.array([4, 0, 0])), [10, 0, 0])
    weight = observer.weight  # (1 - 0.5) * 4 = 2
    assert weight == pytest.approx(2.0)
    observer.elapsed(0)
    np.testing.assert_array_equal(observer.decide(np.zeros(3, int)), [10, 0, 0])  # prediction only
    observer.decide(np.array([0, 2, 0]))  # 2 samples against weight 2: gain 1/2
    np.testing.assert_allclose(observer.mu, [0.5, 0.5, 0.0])
    full = Observer(ObserverSpec("filter", 0.5, 10), P, k=4)
    full.decide(np.array([4, 0, 0]))
    full.decide(np.array([0, 4, 0]))  # 4 samples against weight 2: gain 2/3
    np.testing.assert_allclose(full.mu, [1 / 3, 2 / 3, 0.0])
    full.resized(100, 50)
    assert full.weight == pytest.approx(0.5 * 0.5 * (2 + 4))
    with pytest.raises(ObserverError, match="more than k"):
        full.decide(np.array([5, 0, 0]))


@pytest.mark.kernels
def test_rounding_and_scaling():
    np.testing.assert_array_equal(round_counts([0.5, 0.25, 0.25], 10), [5, 3, 2])  # tie to the lower index
    np.testing.assert_array_equal(scale_counts([1, 2, 0], 5), [2, 3, 0])  # 5/3, 10/3 -> 1+1, 3
    np.testing.assert_array_equal(scale_counts([3, 1, 1], 5), [3, 1, 1])
    rng = np.random.default_rng(7)
    for _ in range(200):
        mu = rng.dirichlet(np.ones(5))
        K = int(rng.integers(1, 60))
        out = round_counts(mu, K)
        assert out.sum() == K and np.abs(out - mu * K).max() < 1.0
    assert equivalent_samples(5, 1.0) == 5 and equivalent_samples(5, 0.2) == 45


def _largest_remainders(weights, K):
    """Hamilton's method in exact fractions, remainder ties to the lower index (the reference)."""
    total = sum(Fraction(w) for w in weights)
    quotas = [Fraction(w) * K / total for w in weights]
    out = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda j: (-(quotas[j] - out[j]), j))
    for j in by_remainder[:K - sum(out)]:
        out[j] += 1
    return out


@pytest.mark.kernels
def test_rounding_and_scaling_are_largest_remainders_with_ties_to_the_lower_index():
    rng = np.random.default_rng(11)
    for _ in range(300):
        n, K = int(rng.integers(2, 7)), int(rng.integers(1, 40))
        counts = rng.integers(0, 6, n)
        counts[rng.integers(n)] += 1  # m >= 1
        assert scale_counts(counts, K).tolist() == _largest_remainders(counts.tolist(), K), (counts, K)
        eighths = rng.multinomial(8, np.ones(n) / n)  # dyadic: mu K is exact, remainders tie often
        assert round_counts(eighths / 8, K).tolist() == _largest_remainders(eighths.tolist(), K), (eighths, K)
        # weights that do not sum to 1: the kernel divides by their total
        assert round_counts(eighths.astype(float), K).tolist() == _largest_remainders(eighths.tolist(), K)
        mu = rng.dirichlet(np.ones(n))
        assert round_counts(mu, K).tolist() == _largest_remainders(mu.tolist(), K), (mu, K)


@pytest.mark.kernels
def test_a_prior_starts_the_estimate_at_mu0_and_needs_it():
    P = np.tile(np.eye(3), (2, 1, 1))
    with pytest.raises(ObserverError) as raised:
        Observer(ObserverSpec("filter", 0.5, 10, prior=2.0), P, k=4)
    assert raised.value.field == "mu0"
    assert Observer(ObserverSpec("filter", 0.5, 10), P, k=4).mu is None  # no prior, no mu0 needed
    observer = Observer(ObserverSpec("filter", 0.5, 10, prior=2.0), P, k=4, mu0=[0.5, 0.5, 0.0])
    assert observer.weight == 2.0 and observer.mu.tolist() == [0.5, 0.5, 0.0]
    np.testing.assert_array_equal(observer.decide(np.zeros(3, int)), [5, 5, 0])  # the prior alone decides


@pytest.mark.kernels
def test_observer_belongs_to_the_policy_and_its_id():
    rng = np.random.default_rng(8)
    game = _game(rng)
    pi_l = random_local_policy(game, rng)
    pi_g = np.zeros((game.n_sg, n_count_vectors(12, game.n_sl)), np.int32)
    a = build_policy(pi_g, pi_l, 3, game=game, observer=ObserverSpec("filter", 0.3, 12))
    b = build_policy(pi_g, pi_l, 3, game=game, observer=ObserverSpec("filter", 0.25, 12))
    assert a.policy_id != b.policy_id and a.observer.gain == 0.3 and a.resolution == 12
    with pytest.raises(PolicyError, match="resolution K = 3"):
        build_policy(pi_g, pi_l, 3, game=game)  # a fresh policy reads k = 3 samples: wrong table
    with pytest.raises(ObserverError, match="observer.gain"):
        ObserverSpec("filter", 0.0, 12)
    meta = dict(a.meta, observer={"name": "fresh", "gain": 1.0, "resolution": 12, "prior": 0.0})
    with pytest.raises(PolicyError, match="resolution = k"):
        type(a)(pi_g=a.pi_g, pi_l=a.pi_l, meta=meta)


@pytest.mark.kernels
def test_filter_policy_file_carries_what_its_filter_predicts_with(tmp_path):
    from altmarl_ros.core.policy import load_policy, save_policy

    rng = np.random.default_rng(9)
    game = _game(rng)
    pi_l = random_local_policy(game, rng)
    pi_g = np.zeros((game.n_sg, n_count_vectors(12, game.n_sl)), np.int32)
    policy = build_policy(pi_g, pi_l, 3, game=game, observer=ObserverSpec("filter", 0.3, 12, 7.0))
    np.testing.assert_allclose(policy.observer_P, fold_local_policy(game, pi_l)[0], atol=1e-15)
    np.testing.assert_array_equal(policy.observer_mu0, game.mu0_l)
    loaded = load_policy(save_policy(policy, tmp_path / "p.npz"), game=game)
    assert loaded == policy and loaded.observer.prior == 7.0
    np.testing.assert_array_equal(loaded.observer_P, policy.observer_P)
    with pytest.raises(PolicyError, match="observer filter in the policy .*fresh requested"):
        load_policy(tmp_path / "p.npz", observer="fresh")
    with pytest.raises(PolicyError, match="needs observer_P"):
        type(policy)(pi_g=policy.pi_g, pi_l=policy.pi_l, meta=policy.meta)


@pytest.mark.kernels
def test_scale_counts_keeps_proportions():
    assert scale_counts(np.array([1, 2, 0, 2, 0]), 5).tolist() == [1, 2, 0, 2, 0]
    assert scale_counts(np.array([0, 1, 1, 1, 1]), 5).tolist() == [0, 2, 1, 1, 1]  # tie -> lower state
    assert scale_counts(np.array([3, 0, 0, 0, 1]), 10).tolist() == [8, 0, 0, 0, 2]  # 7.5/2.5 -> 8/2
    for m in range(1, 8):
        counts = np.random.default_rng(m).multinomial(m, [0.1, 0.2, 0.3, 0.4])
        scaled = scale_counts(counts, 9)
        assert scaled.sum() == 9 and np.all(np.abs(scaled - counts * 9 / m) < 1)


@pytest.mark.kernels
def test_an_observer_refuses_counts_and_prediction_models_that_do_not_fit_its_sizes():
    """Counts: one non-negative entry per local state, summing to at most k (k itself accepted); prediction:
    a pair (P_fused [S_g, S_l, S_l], mu0 [S_l] or None)."""
    from altmarl_ros.core.observer import deployed_observer

    fresh_one = deployed_observer(2, 3, 4)
    assert fresh_one.decide([2, 1, 1]).tolist() == [2, 1, 1]  # sum k: accepted
    for bad, detail in (([2, 1], "must be 3 non-negative counts"), ([2, 1, -1], "must be 3 non-negative counts"),
                        ([[1, 1, 1]], "must be 3 non-negative counts"), ([3, 1, 1], "more than k = 4")):
        with pytest.raises(ObserverError, match=detail):
            fresh_one.decide(bad)
    spec = ObserverSpec("filter", 0.5, 6)
    P = np.full((2, 3, 3), 1 / 3)
    assert deployed_observer(2, 3, 4, spec, (P, None)).decide([1, 1, 2]).sum() == 6
    assert deployed_observer(2, 3, 4, spec, [P, np.full(3, 1 / 3)]) is not None
    for prediction, detail in ((P, "must be a pair"), ((P, None, None), "must be a pair"),
                               ((P, np.full(2, 0.5)), r"mu0 has shape \(2,\); expected \(3,\)")):
        with pytest.raises(ObserverError, match=detail):
            deployed_observer(2, 3, 4, spec, prediction)


@pytest.mark.kernels
def test_a_resized_fleet_keeps_the_weight_of_the_robots_that_stayed():
    """weight * min / max of the fleet sizes, shrinking or growing, from one robot too; unchanged when
    the size is, and when there was no fleet before (nothing left it: a prior's weight stays)."""
    P = np.tile(np.eye(3), (2, 1, 1))
    for before, after, kept in ((100, 50, 0.5), (50, 100, 0.5), (1, 2, 0.5), (3, 1, 1 / 3), (7, 7, 1.0),
                                (0, 5, 1.0)):
        observer = Observer(ObserverSpec("filter", 0.5, 10, prior=6.0), P, k=4, mu0=[1.0, 0.0, 0.0])
        observer.resized(before, after)
        assert observer.weight == pytest.approx(6.0 * kept), (before, after)


@pytest.mark.kernels
def test_fresh_reads_its_sample_alone_and_decides_nothing_without_one():
    """The paper's observer: mu = F / m of this decision's sample, the query F scaled to k; an empty
    sample gives no query and leaves mu as the last sample made it."""
    observer = Observer(fresh(4), np.tile(np.eye(3), (2, 1, 1)), k=4)
    assert observer.decide([0, 0, 0]) is None and observer.mu is None
    assert observer.decide([1, 0, 2]).tolist() == [1, 0, 3]  # 4/3, 0, 8/3 -> 1 + 0, 0, 2 + 1
    np.testing.assert_array_equal(observer.mu, [1 / 3, 0, 2 / 3])
    observer.elapsed(1)
    assert observer.decide([0, 0, 0]) is None
    np.testing.assert_array_equal(observer.mu, [1 / 3, 0, 2 / 3])
    assert observer.decide([0, 4, 0]).tolist() == [0, 4, 0] and observer.mu.tolist() == [0, 1, 0]


def test_the_still_model_is_the_identity_at_every_global_state():
    np.testing.assert_array_equal(still_model(2, 3), [np.eye(3), np.eye(3)])
