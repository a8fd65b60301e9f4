"""Step the PettingZoo environments (altmarl_ros.envs.pettingzoo) with a random policy, or a trained one.

    .venv/bin/python examples/pettingzoo_random.py                    # random actions: warehouse model and ring
    .venv/bin/python examples/pettingzoo_random.py --model config/models/warehouse.yaml --policy runs/wh/policy.npz
    .venv/bin/python examples/pettingzoo_random.py --scenario warehouse_ring --policy runs/warehouse_ring/policy.npz

Each episode prints the global agent's discounted return sum_t gamma^t r_t (the welfare) and the mean
local agent's. With --policy it also prints `altmarl evaluate`'s welfare of the policy on the same
streams (seed, one rollout per episode): the environment's episodes are those rollouts, so the two
agree to rounding whenever the locals' policy is deterministic (L-LEARN's is) or, in the simulator,
the locals draw from the environment's generator as the evaluator's rollouts do (policy_actions does).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from altmarl_ros.envs.pettingzoo import GLOBAL_AGENT, ModelEnv, SimEnv, policy_actions

WAREHOUSE = Path(__file__).resolve().parents[1] / "config" / "models" / "warehouse.yaml"


def random_actions(env, rng):
    """Every live agent's action uniformly at random (the coordinator's from A_g, each local's from A_l)."""
    actions = {GLOBAL_AGENT: int(rng.integers(env.sizes[1]))}
    actions.update(zip(env.agents[1:], rng.integers(0, env.sizes[3], len(env.agents) - 1).tolist()))
    return actions


def run_episodes(env, act, gamma, episodes, seed, out):
    """Discounted returns of the global agent, one per episode (reset(seed) first, then reset())."""
    returns = []
    for episode in range(episodes):
        observations, _ = env.reset(seed=seed if episode == 0 else None)
        welfare = local = 0.0
        discount = 1.0
        while env.agents:
            observations, rewards, _, _, _ = env.step(act(env, observations))
            welfare += discount * rewards[GLOBAL_AGENT]
            local += discount * (sum(rewards.values()) - rewards[GLOBAL_AGENT]) / env.n
            discount *= gamma
        print(f"  episode {episode}: welfare {welfare:9.3f}   mean local return {local:9.3f}", file=out)
        returns.append(welfare)
    print(f"  mean welfare over {episodes} episodes: {np.mean(returns):.3f}", file=out)
    return np.array(returns)


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="model file (.npz or .yaml)")
    source.add_argument("--scenario", help="scenario name or YAML file")
    parser.add_argument("--policy", help="policy file written by `altmarl train` (default: random actions)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--k", type=int, default=5, help="sampled locals per decision (random actions only)")
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from altmarl_ros.core.model import load_model
    from altmarl_sim.scenario import load_scenario

    if args.policy is None:
        sources = [(ModelEnv, load_model(args.model or WAREHOUSE))] if args.scenario is None \
            else []
        if args.model is None:
            sources.append((SimEnv, load_scenario(args.scenario or "warehouse_ring")))
        for Env, source in sources:
            env = Env(source, n=args.n, k=args.k, horizon=args.horizon)
            print(f"{env.metadata['name']}: {env.n} locals, k = {env.k}, uniformly random actions", file=out)
            rng = np.random.default_rng(args.seed)
            run_episodes(env, lambda env, seen, rng=rng: random_actions(env, rng), source.gamma, args.episodes,
                         args.seed, out)
        return 0
    from altmarl_ros.core.evaluate import policy_welfare
    from altmarl_ros.core.policy import load_policy
    from altmarl_sim.rollout import policy_sim_welfare

    rollouts = dict(n=args.n, horizon=args.horizon, seeds=1, rollouts=args.episodes, seed=args.seed)
    if args.scenario is not None:
        source = load_scenario(args.scenario)
        policy = load_policy(args.policy, scenario_hash=source.content_hash())
        env = SimEnv.for_policy(source, policy, n=args.n, horizon=args.horizon)
        evaluated = policy_sim_welfare(source, policy, **rollouts)
    else:
        source = load_model(args.model or WAREHOUSE)
        policy = load_policy(args.policy, game=source)
        env = ModelEnv.for_policy(source, policy, n=args.n, horizon=args.horizon)
        evaluated = policy_welfare(source, policy, **rollouts)
    print(f"{env.metadata['name']}: {env.n} locals, k = {env.k}, policy {args.policy} "
          f"({policy.observer.describe()})", file=out)
    rng = np.random.default_rng(args.seed)  # the simulator's locals draw from the env's generator instead

    def act(env, seen):
        return policy_actions(policy, seen, env.np_random if isinstance(env, SimEnv) else rng)
    run_episodes(env, act, source.gamma, args.episodes, args.seed, out)
    print(f"  altmarl evaluate, same streams: {evaluated.mean:.3f} +- {evaluated.ci95:.3f} "
          f"(episodes {np.array2string(evaluated.returns[0], precision=3)})", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
