"""open_world: the one place the commands tell a model file from a scenario (core.world, altmarl_sim.world)."""


def add_world_arguments(parser, model_help: str, scenario_help: str) -> None:
    """The required choice of --model FILE or --scenario NAME, with each command's own help."""
    from pathlib import Path

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, metavar="FILE", help=model_help)
    source.add_argument("--scenario", metavar="NAME", help=scenario_help)


def open_world(args, command: str):
    """The world of `--model FILE` or `--scenario NAME` (with --samples, --sampler, --seed and
    --dirichlet-alpha where the command has them), after refusing the flags that belong to the other kind."""
    from altmarl_ros.errors import UsageError

    if getattr(args, "scenario", None) is None and (getattr(args, "sampler", "model") != "model"
                                                    or getattr(args, "samples", None) is not None):
        raise UsageError(f"--sampler and --samples apply to --scenario {command} only")
    if getattr(args, "scenario", None) is not None and getattr(args, "dirichlet_alpha", None) is not None:
        raise UsageError(f"--dirichlet-alpha applies to --model {command}; a scenario starts its robots "
                         f"from fleet.start_zone_weights")
    if getattr(args, "scenario", None) is not None:
        from altmarl_sim.scenario import load_scenario
        from altmarl_sim.world import ScenarioWorld

        return ScenarioWorld(load_scenario(args.scenario), getattr(args, "samples", None),
                             getattr(args, "sampler", "model"), getattr(args, "seed", 0))
    from altmarl_ros.core.model import load_model
    from altmarl_ros.core.world import ModelWorld

    return ModelWorld(load_model(args.model), args.model, getattr(args, "dirichlet_alpha", None))


def print_baselines(policy_welfare: float, rows, note_header: str) -> None:
    """The baselines' table under a policy's report: (name, welfare, 95% CI, note) per row, and the policy's
    lead over each."""
    if not rows:
        return
    print()
    print(f"{'baseline':<22} {'welfare +- 95% CI':<18}  {'policy - baseline':>17}  {note_header}")
    for name, welfare, ci, note in rows:
        print(f"{name:<22} {welfare:>9.3f} +- {ci:<5.3f}  {policy_welfare - welfare:>+17.3f}  {note}")
