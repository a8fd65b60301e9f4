"""Worlds: where a policy is learned and scored, behind one contract for every command.

A world is a tabular model (`ModelWorld`, here) or a simulator scenario (`altmarl_sim.world.ScenarioWorld`,
with the model estimated from it once). train, evaluate, demo and sweep ask it for the same few
things and never ask which kind it is:

- `game`: the tabular model ALTERNATING-MARL learns from, the filter observer predicts with and the
  baselines respond to;
- `policy_identity(game)`: what build_policy records of this world;
- `preparation_work()`: core.work amounts this world costs before training (estimating its model);
- `welfare(pi_g, pi_l, k, observer, seed=, **sizes)`: n-agent rollouts as deployed;
- `baselines(k, names, seed=, **sizes)`: the registered baselines (core.baselines) scored the same way;
- `progress_total(k, names, **sizes)`: how many `progress(done, total)` calls welfare plus baselines make;
- `load_policy(path)`, `of_policy(policy)`, `config`, `label`, `evaluation_label`, `start`: what ties a
  policy file to this world (the world as the policy was trained in it), and how reports name it;
- `inputs`, `default_policy_path`: the files it reads (never overwritten) and where its policy goes by default;
- `rollout_unit`, `steps_per_epoch`: how core.work prices its rollouts.
`sizes` are n, horizon, seeds and rollouts (core.evaluate's rollout arguments).
"""
from __future__ import annotations

from altmarl_ros.core.baselines import BASELINES


class ModelWorld:
    """A tabular model file: rollouts of the model itself (core.evaluate). `dirichlet_alpha`: each rollout
    starts its locals iid from p ~ Dirichlet(alpha) instead of mu0_l (the authors' evaluator)."""

    rollout_unit = "agent-steps"
    steps_per_epoch = 1

    def __init__(self, game, path, dirichlet_alpha=None):
        self.game = game
        self.label = self.evaluation_label = str(path)
        self.dirichlet_alpha = dirichlet_alpha
        self.config = {}
        self.inputs = [path]
        self.default_policy_path = None  # a policy trained on a model file is written where --out says
        self.start = "mu0" if dirichlet_alpha is None else f"Dirichlet({dirichlet_alpha:g}) locals"

    @property
    def sizes(self):
        return self.game.sizes

    @property
    def gamma(self):
        return self.game.gamma

    def policy_identity(self, game) -> dict:
        return {"game": game}

    def preparation_work(self) -> dict:
        return {}

    def welfare(self, pi_g, pi_l, k, observer=None, *, seed, prediction=None, progress=None, reply_loss=0.0,
                **sizes):
        """One progress call when done (the rollouts run in parallel kernels). A filter predicts with the model
        itself under pi_l, which is what a policy trained on this model records as its `prediction`."""
        from altmarl_ros.core.evaluate import rollout_welfare

        estimate = rollout_welfare(self.game, pi_g, pi_l, k, observer=observer, seed=seed, reply_loss=reply_loss,
                                   dirichlet_alpha=self.dirichlet_alpha, **sizes)
        if progress is not None:
            progress(1, 1)
        return estimate

    def baselines(self, k, names=None, *, seed, progress=None, announce=None, **sizes) -> dict:
        """One progress call per baseline."""
        from altmarl_ros.core.evaluate import baselines

        names = list(BASELINES) if names is None else names
        found = {}
        for name in names:
            if announce is not None:
                announce(name)
            found.update(baselines(self.game, k, seed=seed, dirichlet_alpha=self.dirichlet_alpha, names=(name,),
                                   **sizes))
            if progress is not None:
                progress(len(found), len(names))
        return found

    def progress_total(self, k, names, **sizes) -> int:
        return 1 + len(names)

    def load_policy(self, path):
        from altmarl_ros.core.policy import load_policy

        return load_policy(path, game=self.game)

    def of_policy(self, policy) -> "ModelWorld":
        return self


def comparison(learned, name, baseline) -> dict:
    """The learned pair next to the best blind baseline `name` (both WelfareEstimates), as JSON: below_baseline
    when it is lower beyond both 95% CIs."""
    return {"learned": {"welfare": learned.mean, "welfare_ci": learned.ci95},
            "best_blind_baseline": {"name": name, "detail": baseline.detail, "welfare": baseline.mean,
                                    "welfare_ci": baseline.ci95},
            "below_baseline": bool(learned.mean + learned.ci95 < baseline.mean - baseline.ci95)}


def policy_welfare(world, policy, **rollout_args):
    """world.welfare of a PolicyArtifact under the observer and the prediction it records."""
    return world.welfare(policy.pi_g, policy.pi_l, policy.k, policy.observer, prediction=policy.prediction,
                         **rollout_args)


def best_blind(found: dict):
    """(name, WelfareEstimate) of the best population-blind baseline among `found` (name -> estimate), or None."""
    blind = [(name, estimate) for name, estimate in found.items() if BASELINES[name].blind]
    return max(blind, key=lambda item: item[1].mean) if blind else None


def best_blind_baseline(world, k: int, *, seed: int, **sizes):
    """(name, WelfareEstimate) of the best population-blind baseline in `world` on the given streams."""
    names = [name for name, baseline in BASELINES.items() if baseline.blind]
    return best_blind(world.baselines(k, names, seed=seed, **sizes))
