"""ScenarioWorld: a simulator scenario as a world (altmarl_ros.core.world's contract).

Its tabular model is the scenario's estimated model (altmarl_sim.estimate, cached under runs/<scenario>/),
estimated once when first asked for. Policies are scored in the continuous simulator (altmarl_sim.rollout),
where the filter observer predicts with that estimated model while the robots move by the simulator.
ALTERNATING-MARL learns from the estimated model, or with sampler "sim" from the simulator's own
generative sampler, pooled once into a model (core.sampler.as_game, with `seed`), which then stands for
the estimated one everywhere.
"""
from __future__ import annotations

from functools import cached_property

from altmarl_ros.core.baselines import BASELINES, scoring_runs
from altmarl_sim.estimate import DEFAULT_RUNS_DIR, DEFAULT_SAMPLES_PER_PAIR, estimate_model, run_dir
from altmarl_sim.scenario import Scenario

SAMPLERS = ("model", "sim")  # what ALTERNATING-MARL draws from: the estimated model, or the simulator


class ScenarioWorld:
    """A scenario (a Scenario from load_scenario); see the module docstring. `runs_dir=None` estimates the
    model without reading or writing the cache."""

    rollout_unit = "robot control steps"

    def __init__(self, scenario: Scenario, samples_per_pair: int | None = None, sampler: str = "model",
                 seed: int = 0, runs_dir=DEFAULT_RUNS_DIR):
        self.scenario = scenario
        self.samples_per_pair = DEFAULT_SAMPLES_PER_PAIR if samples_per_pair is None else samples_per_pair
        self.sampler = sampler
        self.seed = seed
        self.runs_dir = runs_dir
        self.label = f"scenario {scenario.name} ({'simulator sampler' if sampler == 'sim' else 'estimated model'})"
        self.evaluation_label = f"scenario {scenario.name} (continuous simulator; Nash gap on its estimated model)"
        self.config = {"scenario": scenario.name, "sampler": sampler, "samples_per_pair": self.samples_per_pair}
        self.steps_per_epoch = scenario.timing.steps_per_epoch
        self.inputs = [scenario.source]
        self.default_policy_path = run_dir(scenario) / "policy.npz"
        self.start = "the scenario's start zones"

    def of_policy(self, policy) -> "ScenarioWorld":
        """This scenario as `policy` was trained in it: its estimated model at the policy's samples per pair."""
        return ScenarioWorld(self.scenario, policy.meta["config"].get("samples_per_pair"), runs_dir=self.runs_dir)

    @property
    def sizes(self):
        return self.scenario.sizes

    @property
    def gamma(self):
        return self.scenario.gamma

    @cached_property
    def game(self):
        if self.sampler == "sim":
            from altmarl_ros.core.sampler import as_game
            from altmarl_sim.sampler import SimSampler

            return as_game(SimSampler(self.scenario, seed=self.seed), seed=self.seed)
        return estimate_model(self.scenario, samples_per_pair=self.samples_per_pair, runs_dir=self.runs_dir)[0]

    def policy_identity(self, game) -> dict:
        """The scenario; the model too when it is the estimated one (a pooled sampler's is not kept)."""
        scenario = {"scenario": (self.scenario.name, self.scenario.content_hash())}
        return {**scenario, "game": game} if self.sampler == "model" else {**scenario, "n_ag": self.sizes[1]}

    def preparation_work(self) -> dict:
        """The estimated model's simulator draws (checked for memory first), unless it is cached."""
        from altmarl_sim.sampler import check_tabulation

        check_tabulation(self.sizes, self.samples_per_pair)
        n_sg, n_ag, n_sl, n_al = self.sizes
        return {self.rollout_unit: float(self.samples_per_pair) * (n_sg * n_ag + n_sl * n_sg * n_al)
                * self.steps_per_epoch}

    def welfare(self, pi_g, pi_l, k, observer=None, *, seed, prediction=None, progress=None, reply_loss=0.0,
                **sizes):
        """One progress call per rollout. An observer that predicts (the filter) does so with `prediction`
        (a policy's own, core.policy), by default with the world's model under pi_l."""
        from altmarl_ros.core.fused import fold_local_policy
        from altmarl_sim.rollout import sim_rollout_welfare

        if prediction is None and pi_g is not None:
            prediction = (fold_local_policy(self.game, pi_l)[0], self.game.mu0_l)
        return sim_rollout_welfare(self.scenario, pi_g, pi_l, k, observer=observer, prediction=prediction,
                                   seed=seed, progress=progress, reply_loss=reply_loss, **sizes)

    def baselines(self, k, names=None, *, seed, progress=None, announce=None, **sizes) -> dict:
        """One progress call per rollout."""
        from altmarl_sim.rollout import sim_baselines

        return sim_baselines(self.scenario, self.game, k, names=names, seed=seed, progress=progress,
                             announce=announce, **sizes)

    def progress_total(self, k, names, *, seeds, rollouts, **sizes) -> int:
        runs = 1 + sum(scoring_runs(BASELINES[name].candidates(self.game, k)) for name in names)
        return runs * seeds * rollouts

    def load_policy(self, path):
        from altmarl_ros.core.policy import load_policy

        return load_policy(path, scenario_hash=self.scenario.content_hash())
