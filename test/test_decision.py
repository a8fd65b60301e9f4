"""One decision path: the coordinator node and the simulator's rollout make the same decisions from the
same samples (core/decision.py).

One seeded sequence of (depot zone, sampled counts), with short samples and a
sample-less epoch among them, goes through CoordinatorNode.decide (its state
sampling and depot pose stubbed to read the sequence) and through
altmarl_sim.rollout.run_episode (a stub simulator and sampler reading the same
sequence). Both run the policy's filter observer, whose estimate depends on when
each path predicts and on the prior, so a change to either path's prediction
timing, prior or lookup shows as different estimates or actions. The local draw
is checked too: the local agents' and the rollout's a_i from the same uniforms.
"""
import numpy as np
import pytest

from altmarl_ros.core.counts import n_count_vectors
from altmarl_ros.core.observers import ObserverSpec
from altmarl_ros.core.policy import build_policy, save_policy
from altmarl_sim.ring import zone_centre
from altmarl_sim.scenario import load_scenario

K, RESOLUTION, EPOCHS, N = 5, 12, 40, 60


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    scenario = load_scenario("warehouse_ring")
    z = scenario.ring.n_zones
    rng = np.random.default_rng(11)
    policy = build_policy(rng.integers(0, z, size=(z, n_count_vectors(RESOLUTION, z))),
                          rng.dirichlet(np.ones(3), size=(z, z)), K, n_ag=z,
                          scenario=(scenario.name, scenario.content_hash()),
                          observer=ObserverSpec("filter", 0.3, RESOLUTION, 8.0),
                          prediction=(rng.dirichlet(np.ones(z), size=(z, z)), rng.dirichlet(np.ones(z))))
    path = save_policy(policy, tmp_path_factory.mktemp("decision") / "filter.npz")
    depot = rng.integers(0, z, size=EPOCHS)
    sizes = np.where(rng.random(EPOCHS) < 0.25, rng.integers(0, K, size=EPOCHS), K)  # short samples, one empty
    sizes[7] = 0
    samples = [rng.multinomial(m, rng.dirichlet(np.ones(z))) for m in sizes]
    return {"scenario": scenario, "policy": policy, "path": str(path), "depot": depot, "samples": samples}


def coordinator_decisions(ros_context, setting):
    """(actions, estimates) of CoordinatorNode.decide fed the sequence."""
    from altmarl_ros.nodes._sampling import Sample
    from altmarl_ros.nodes.coordinator import CoordinatorNode

    node = CoordinatorNode({"scenario": "warehouse_ring", "policy": setting["path"], "n_robots": N},
                           context=ros_context)
    epoch = [0]
    ring = setting["scenario"].ring

    class SequenceStates:
        def collect(self, _epoch, _now):
            counts = setting["samples"][epoch[0]]
            zones = np.repeat(np.arange(len(counts)), counts)
            return Sample(range(len(zones)), zones, np.zeros(len(zones)))

        def present(self, _now):
            return N

    node.states = SequenceStates()
    node._depot_pose = lambda _now: (*(float(c) for c in zone_centre(int(setting["depot"][epoch[0]]), ring)), 0.0)
    actions, estimates = [], []
    try:
        for t in range(EPOCHS):
            epoch[0] = t
            assert node.decide(10**9 * (t + 1))
            actions.append(node.last_command.global_action)
            estimates.append(np.array(node.last_command.estimate))
    finally:
        node.destroy_node()
    return actions, estimates


def rollout_decisions(setting, monkeypatch):
    """(actions, estimates) of run_episode fed the sequence through a stub simulator and sampler."""
    from altmarl_sim import rollout

    scenario, policy = setting["scenario"], setting["policy"]
    epoch = [0]

    def sample_workers(read, k, n_sl, rng, reply_loss=0.0):
        counts = setting["samples"][epoch[0]]
        return np.arange(counts.sum()), counts

    class SequenceSim:
        n, read_zones = N, np.zeros(N, dtype=np.int64)

        def __init__(self):
            self.scenario = scenario

        def zones(self):
            return np.zeros(N, dtype=np.int64)

        def depot_zone(self):
            return int(setting["depot"][0])

        def step_epoch(self, actions, a_g, lead=0):
            epoch[0] += 1
            return np.zeros(N, dtype=np.int64), int(setting["depot"][min(epoch[0], EPOCHS - 1)]), 0.0

    monkeypatch.setattr(rollout, "sample_workers", sample_workers)
    actions, estimates = [], []
    observer = rollout.running_observer(scenario, K, policy.observer, (policy.observer_P, policy.observer_mu0))

    def on_epoch(sim, ids, a_g):
        actions.append(a_g)
        estimates.append(observer.mu.copy())
    rollout.run_episode(SequenceSim(), policy.pi_g, policy.pi_l, K, EPOCHS, np.random.default_rng(0),
                        on_epoch=on_epoch, observer=observer)
    return actions, estimates


@pytest.mark.ros
def test_the_coordinator_and_the_rollout_decide_alike_from_the_same_samples(ros_context, setting, monkeypatch):
    ros_actions, ros_estimates = coordinator_decisions(ros_context, setting)
    sim_actions, sim_estimates = rollout_decisions(setting, monkeypatch)
    assert ros_actions == sim_actions
    for t, (a, b) in enumerate(zip(ros_estimates, sim_estimates)):
        assert np.array_equal(a, b), f"epoch {t}: {a} != {b}"
    assert len(set(ros_actions)) > 1  # the sequence exercises the table, not one column


@pytest.mark.kernels
def test_the_local_agents_and_the_rollout_draw_alike_from_the_same_uniforms(setting):
    from altmarl_ros.core.decision import Decider, local_actions
    from altmarl_ros.core.evaluate import cumulative

    policy = setting["policy"]
    rng = np.random.default_rng(3)
    zones, uniforms = rng.integers(0, 5, size=500), rng.random(500)
    uniforms[:3] = [0.0, np.nextafter(1.0, 0.0), 0.5]
    drawn = Decider.of_policy(policy).local_actions(zones, 2, uniforms)
    assert np.array_equal(drawn, local_actions(cumulative(policy.pi_l), zones, 2, uniforms))
    # Independent: the inverse-CDF draw by hand, with the largest uniform always the last action at most.
    expected = [int(np.searchsorted(np.cumsum(policy.pi_l[z, 2]), u, side="right")) for z, u in zip(zones, uniforms)]
    assert drawn.tolist() == np.minimum(expected, 2).tolist() and drawn.max() <= 2


def test_a_local_action_owns_the_half_open_interval_from_its_lower_cumulative_bound():
    """a_i = a where cum[a-1] <= u < cum[a]: a uniform exactly on a bound takes the next action, so an
    action of probability 0 is never drawn, even at u = 0 (values by hand, exact dyadic cumulatives)."""
    from altmarl_ros.core.decision import local_actions
    from altmarl_ros.core.evaluate import cumulative

    pi_l = np.array([[[0.0, 0.5, 0.5]], [[0.25, 0.25, 0.5]]])  # [s_l, s_g = 0, a_l]
    below = np.nextafter
    uniforms = np.array([0.0, below(0.5, 0), 0.5, below(1.0, 0), 0.0, below(0.25, 0), 0.25, 0.5])
    zones = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert local_actions(cumulative(pi_l), zones, 0, uniforms).tolist() == [1, 1, 2, 2, 0, 0, 1, 2]


def test_an_fa_decider_waits_for_its_first_sample_then_decides_on_it():
    """With no robot heard yet there is nothing to decide on (None, as the coordinator then holds its last
    command); the first sample that arrives is decided on, its zone counts the query a GlobalCommand reports."""
    from _fa_ring import parked_depot_fa
    from altmarl_sim.continuous_ring import ContinuousRing
    from altmarl_sim.fleet import FleetSim
    from altmarl_sim.rollout import decider_of, sample_workers
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario("warehouse_ring_continuous")
    fa, _ = parked_depot_fa(ContinuousRing(scenario), 5)
    decider, n_sl = decider_of(fa, scenario), scenario.sizes[2]
    sim = FleetSim(scenario, n=8, seed=3)
    poses = np.array(sim.poses)
    assert decider.global_action(sim.depot_zone(), np.zeros(n_sl, np.int64), poses[:0]) is None
    sampled, counts = sample_workers(sim.zones(), 5, n_sl, np.random.default_rng(0))
    decision = decider.global_action(sim.depot_zone(), counts, poses[sampled])
    assert decision is not None and list(decision.query) == list(counts)
