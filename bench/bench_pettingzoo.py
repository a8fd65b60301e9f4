"""Throughput of the PettingZoo environments against the evaluators' rollouts: agent-steps per second.

An agent-step is one local agent for one decision epoch (the evaluators' unit; the global agent's
step is not counted). For each environment at n locals (default 1000):
  step                env.step alone, on action dicts built beforehand (uniformly random actions)
  random policy       building the random action dict from numpy draws, then env.step
  policy              policy_actions (the coordinator's pi_g, every local's draw from pi_l), then env.step
and, on the same model / scenario, n and k, `altmarl evaluate`'s rate (core.evaluate.rollout_welfare,
parallel over rollouts on every numba thread; altmarl_sim.rollout.sim_rollout_welfare, one process).
Also the peak Python memory of an environment per local agent (tracemalloc), which the environments'
memory check assumes. Target: >= 1e5 agent-steps/s at n = 1000.

    .venv/bin/python bench/bench_pettingzoo.py [--n 1000] [--k 10] [--steps 200] [--repeats 3]

Model: the paper-size warehouse model; policy: the depot heads for the most crowded sampled zone,
locals uniform (as bench_rollouts.py). Scenario: warehouse_ring with the herding policy (depot to
the most crowded sampled zone, workers towards the depot).
"""
import argparse
import time
import tracemalloc

import numba
import numpy as np

from altmarl_ros.core.counts import enumerate_count_vectors
from altmarl_ros.core.evaluate import rollout_welfare
from altmarl_ros.core.policy import build_policy
from altmarl_ros.envs.pettingzoo import GLOBAL_AGENT, ModelEnv, SimEnv, policy_actions
from altmarl_ros.models.warehouse import paper_warehouse_model
from altmarl_sim.rollout import sim_rollout_welfare
from altmarl_sim.scenario import load_scenario


def crowded_policy(sizes, k, pi_l=None, **build):
    """pi_g: the most crowded sampled state (as a zone index); pi_l uniform unless given."""
    n_sg, _, n_sl, n_al = sizes
    pi_g = np.tile(np.argmax(enumerate_count_vectors(k, n_sl), axis=1).astype(np.int32), (n_sg, 1))
    return build_policy(pi_g, np.full((n_sl, n_sg, n_al), 1.0 / n_al) if pi_l is None else pi_l, k, **build)


def towards_depot(z):
    """pi_l on a ring of z zones: step towards the depot's zone by the shorter way round, stay there."""
    ahead = (np.arange(z)[None, :] - np.arange(z)[:, None]) % z  # [s_l, s_g]
    return np.eye(3)[np.where(ahead == 0, 0, np.where(ahead <= z // 2, 1, 2))]


def rate(env, steps, repeats, act):
    """Best over `repeats` of (local agent-steps per second of env.step, of act + env.step)."""
    rng = np.random.default_rng(0)
    best_step = best_loop = 0.0
    for _ in range(repeats):
        observations, _ = env.reset(seed=1)
        in_step = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            actions = act(observations, rng)
            began = time.perf_counter()
            observations, *_ = env.step(actions)
            in_step += time.perf_counter() - began
            if not env.agents:
                observations, _ = env.reset()
        loop = time.perf_counter() - start
        best_step, best_loop = max(best_step, env.n * steps / in_step), max(best_loop, env.n * steps / loop)
    return best_step, best_loop


def random_actions(env):
    names = env.possible_agents[1:]
    n_ag, n_al = env.sizes[1], env.sizes[3]

    def act(observations, rng):
        actions = {GLOBAL_AGENT: int(rng.integers(n_ag))}
        actions.update(zip(names, rng.integers(0, n_al, len(names)).tolist()))
        return actions
    return act


def bytes_per_agent(make, n):
    tracemalloc.start()
    env = make(n)
    env.reset(seed=0)
    env.step(random_actions(env)(env.reset(seed=0)[0], np.random.default_rng(0)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200, help="env steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings; the best is reported")
    args = parser.parse_args()
    n, k = args.n, args.k
    game = paper_warehouse_model()
    scenario = load_scenario("warehouse_ring")
    z = scenario.ring.n_zones
    model_policy = crowded_policy(game.sizes, k, game=game)
    sim_policy = crowded_policy(scenario.sizes, k, pi_l=towards_depot(z), n_ag=z)
    print(f"n = {n} locals, k = {k}, {args.steps} steps x best of {args.repeats}, {numba.get_num_threads()} numba "
          f"threads; local agent-steps per second")
    print(f"{'environment':<34} {'step':>10} {'random policy':>14} {'policy':>10} {'evaluator':>10} {'B/agent':>8}")
    cases = (("model: paper warehouse", lambda size: ModelEnv(game, n=size, k=k, horizon=100), model_policy,
              lambda: rollout_welfare(game, model_policy.pi_g, model_policy.pi_l, k, n=n, horizon=100, seeds=1,
                                      rollouts=8)),
             ("simulator: warehouse_ring", lambda size: SimEnv(scenario, n=size, k=k, horizon=100), sim_policy,
              lambda: sim_rollout_welfare(scenario, sim_policy.pi_g, sim_policy.pi_l, k, n=n, horizon=50, seeds=1,
                                          rollouts=2)))
    for label, make, policy, evaluate in cases:
        env = make(n)
        rate(env, 2, 1, random_actions(env))  # compile
        step, random_loop = rate(env, args.steps, args.repeats, random_actions(env))
        _, policy_loop = rate(env, args.steps, args.repeats,
                              lambda seen, rng, policy=policy: policy_actions(policy, seen, rng))
        evaluate()  # compile
        evaluator = max(evaluate().agent_steps_per_second for _ in range(args.repeats))
        print(f"{label:<34} {step:>10.3g} {random_loop:>14.3g} {policy_loop:>10.3g} {evaluator:>10.3g} "
              f"{bytes_per_agent(make, n):>8.0f}")


if __name__ == "__main__":
    main()
