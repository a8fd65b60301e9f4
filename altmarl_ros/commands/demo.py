"""`altmarl demo`: the README's main command. Train if needed, run the fleet under ROS 2, compare welfare.

1. Policy: reuse runs/<scenario>/policy.npz when it was trained on the current
   scenario; otherwise (or with --retrain) train it exactly as
   `altmarl train --scenario <scenario> --k K --out <policy>` does.
2. Start the simulated fleet from config/fleet.yaml (altmarl_ros.fleet_plan, run by
   altmarl_ros.supervisor: fleet_sim, coordinator, local_agents, markers) plus a welfare monitor that measures the
   reward of every decision epoch from the robots' odometry and the GlobalCommands
   (altmarl_ros.nodes.welfare_monitor), with a live one-line status.
3. After --duration simulated seconds, print the welfare achieved (discounted
   return over the epochs run) next to the offline evaluation of the same policy
   (under its own observer) in the continuous simulator (altmarl_sim.rollout) with
   the same n, k and horizon, from the same start state (the fleet's seed), and the
   best constant dispatcher's offline welfare on the same streams: what the learned
   coordinator must beat.
Each run draws a new fleet seed unless --seed is given (runs are independent draws),
and takes a ROS domain of its own (supervisor.claim_private_ros_domain), so two
demos on one host never hear each other.
"""
import math
import sys
import time

from altmarl_ros.commands import print_json
from altmarl_ros.node_parameters import STATE_SAMPLINGS
from altmarl_ros.commands._flags import count, real
from altmarl_ros.commands._record import add_record_arguments, check_record_output, recorder_nodes

HELP = ("train a policy if none exists, run the simulated fleet under ROS 2 with it, and print the welfare "
        "achieved next to the offline evaluation")
STATUS_EVERY_SEC = 0.5
PLAIN_STATUS_EVERY_SEC = 10.0
DEMO_SELECT_ROLLOUTS = 20  # per candidate observer when the demo trains (train's default: 50)
# pi_g at <= 11 robots for 8 zones (30 for 5): ~1.5 min of ALTERNATING-MARL on warehouse_ring_hard; train's
# default 400000 allows 17 robots, 11x the columns (docs/training.md, observers in the simulator)
DEMO_MAX_COLUMNS = 50_000
TRAIN_K = 5  # k the demo trains a policy for when neither --k nor the fleet file names one: small, where the
# filter observer matters (a fresh 5-sample of 8 zones is a noisy picture of the fleet)
# The depot's first local policy: on warehouse_ring_hard the default (the best constant's best response) is
# already an equilibrium that ties the constant dispatcher; from uniform the alternation reaches one that
# beats it (docs/sim-learning.md)
DEMO_START = "uniform"
MARGIN_SD = 3.0  # the run agrees with the offline evaluation if within this many single-run std devs
SEED_MAX = 2**31 - 1  # a ROS integer parameter and a numpy seed alike


def add_arguments(parser):
    parser.add_argument("--duration", type=real(0, 1e9, above=True), default=60.0, metavar="S",
                        help="simulated seconds to run the fleet (default 60 = 60 decision epochs)")
    parser.add_argument("--n", type=count(1), metavar="N", help="worker robots (default: n_robots in the fleet file)")
    parser.add_argument("--k", type=count(1), metavar="K",
                        help=f"robots the coordinator samples (default: the policy's k; a policy is trained for "
                             f"k = {TRAIN_K} unless the fleet file names k)")
    parser.add_argument("--scenario", metavar="NAME",
                        help="scenario (default: the fleet file's, warehouse_ring_hard); a continuous one "
                             "(warehouse_ring_continuous) runs an FA policy (docs/continuous.md); its policy "
                             "defaults to runs/NAME/policy.npz")
    parser.add_argument("--policy", metavar="P",
                        help="policy file (default: the fleet file's, runs/warehouse_ring_hard/policy.npz); "
                             "trained first if it does not exist")
    parser.add_argument("--retrain", action="store_true", help="train the policy even if the file exists")
    parser.add_argument("--processes", action="store_true",
                        help="one process per node instead of all nodes in one process")
    parser.add_argument("--state-sampling", choices=STATE_SAMPLINGS,
                        help="how the coordinator gets its k states (default: the fleet file's, else request): "
                             "request asks k robots per decision; subscribe_all hears every robot")
    parser.add_argument("--fleet", metavar="FILE", help="fleet description (default: config/fleet.yaml)")
    parser.add_argument("--rollouts", type=count(2), default=100, metavar="R",
                        help="offline evaluation: independent simulator rollouts (default 100; at least 2, for a "
                             "confidence interval)")
    parser.add_argument("--seed", type=count(0, SEED_MAX), metavar="S",
                        help="seed of the fleet (start poses, noise, subsets, local draws) and so of the start the "
                             "offline evaluation shares (default: a new one each run, printed)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results on stdout")
    add_record_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or status line")


def run(args) -> int:
    import os
    import secrets

    from altmarl_ros import fleet_plan, supervisor
    from altmarl_sim.scenario import load_scenario

    seed = args.seed if args.seed is not None else secrets.randbelow(SEED_MAX + 1)
    policy_path = args.policy
    if args.scenario is not None and policy_path is None:  # never the fleet file's policy of another scenario
        from altmarl_sim.estimate import run_dir

        policy_path = str(run_dir(load_scenario(args.scenario)) / "policy.npz")
    overrides = {key: value for key, value in (("n_robots", args.n), ("k", args.k), ("policy", policy_path),
                                               ("seed", seed), ("state_sampling", args.state_sampling),
                                               ("scenario", args.scenario))
                 if value is not None}
    fleet = fleet_plan.load_fleet(args.fleet, overrides)
    scenario = load_scenario(fleet.common["scenario"])
    check_record_output(args, [args.fleet, fleet.common["policy"], scenario.source])
    check_demo_work(args, fleet, scenario)
    policy = _ready_policy(args, fleet, scenario, fleet.common.get("k"))
    fleet_plan.check_policy_k(fleet, policy.k)
    n, k = fleet.n_robots, policy.k
    decision_period = float(fleet.common.get("decision_period", scenario.timing.decision_epoch))
    target_epochs = max(1, int(round(args.duration / decision_period)))
    show = not (args.quiet or args.json)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if not args.json else (lambda text: None)
    # The whole demo runs on this host: keep other machines' ROS 2 graphs out of it (and it out of theirs),
    # and other fleets on this host too (a domain of its own), before any node exists.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain = supervisor.claim_private_ros_domain()
    supervisor.refuse_foreign_publishers(fleet_plan.fleet_topics(fleet))
    say(f"altmarl demo: {n} robots, k = {k}, policy {policy.policy_id} ({fleet.common['policy']}), "
        f"{target_epochs} decision epochs of {decision_period:g} s, fleet seed {seed} (--seed {seed} repeats "
        f"it), ROS_DOMAIN_ID {domain}, {'one process per node' if args.processes else 'all nodes in one process'}")

    # The offline evaluation needs no ROS: it runs in a process of its own beside the real-time ROS run.
    offline_job = _start_offline(scenario, fleet.common["policy"], n, target_epochs, args.rollouts, seed)
    try:
        run_result = run_fleet(fleet, target_epochs, args.processes, show, record=args)
        monitor = run_result["monitor"]
        _warn_about_run(monitor, run_result, target_epochs, say)
        offline = _finish_offline(offline_job, monitor.epochs == target_epochs, say)
    finally:  # the evaluation is done or no longer wanted: end its process now (join: no leaked semaphores)
        offline_job[0].terminate()
        offline_job[0].join()
    if offline is None:  # a shorter run (or a failed job, whose error this repeats): evaluate here, as long as it ran
        offline = _offline_welfare(scenario, policy, n, monitor.epochs, args.rollouts, seed, show)
    report = _report(monitor, *offline, run_result, n, k, policy, args.processes, seed, domain)
    if args.json:
        print_json(report)
    else:
        _print_report(report, scenario.gamma)
    return 0


def _warn_about_run(monitor, run_result, target_epochs: int, say) -> None:
    """Refuse a run without a decision epoch; say how a shorter or late-joined run differs from the plan."""
    from altmarl_ros import fleet_plan

    if monitor.epochs == 0:
        raise fleet_plan.LaunchError("the fleet completed no decision epoch (no GlobalCommand reached the "
                                     "monitor): see the node errors above")
    if monitor.epochs < target_epochs:
        say(f"warning: only {monitor.epochs} of {target_epochs} epochs within the wall-clock limit "
            f"(real-time factor {run_result['real_time_factor']:.2f}); comparing over {monitor.epochs}")
    if monitor.first_epoch != 0:
        say(f"warning: the monitor's first GlobalCommand was the coordinator's epoch {monitor.first_epoch}: it "
            f"joined late (slow discovery), so the measured run does not start at the fleet's start state")
    if monitor.out_of_sequence:
        say(f"note: {monitor.out_of_sequence} GlobalCommand(s) were superseded before the monitor read them "
            f"(two decisions in one control step, or another coordinator on this ROS domain); each such "
            f"epoch is counted together with the next")


def check_demo_work(args, fleet, scenario) -> None:
    """Refuse, before training or the ROS run, an offline evaluation (--rollouts x n x epochs, for the
    policy and each constant dispatcher) beyond the work ceiling (core.work); load_fleet priced the start."""
    from altmarl_ros.core import work

    decision_period = float(fleet.common.get("decision_period", scenario.timing.decision_epoch))
    epochs = max(1, int(round(args.duration / decision_period)))
    steps = max(1, round(scenario.timing.decision_epoch / scenario.timing.control_period))
    runs = _offline_runs(scenario.sizes[1])
    work.require(f"the offline evaluation of {args.rollouts} rollouts of n = {fleet.n_robots} robots over {epochs} "
                 f"epochs", {"robot control steps": float(args.rollouts) * fleet.n_robots * epochs * steps * runs},
                 "use a smaller --rollouts, --n or --duration")


def _ready_policy(args, base, scenario, wanted_k):
    """The policy to deploy, trained first when missing, stale (scenario changed) or --retrain."""
    from pathlib import Path

    from altmarl_ros.core.atomic import check_output
    from altmarl_ros.core.policy import PolicyError
    from altmarl_sim.rollout import load_scenario_policy

    path = Path(base.common["policy"])
    if args.retrain and args.policy is not None and path.exists():
        raise PolicyError(f"--retrain --policy {args.policy}: that file exists and a policy file named with "
                          f"--policy is never overwritten; give a new --policy path (or delete the file)")
    reason = "--retrain" if args.retrain else None
    if reason is None and not path.exists():
        reason = f"no policy at {path}"
    if reason is None:
        try:
            policy = load_scenario_policy(path, scenario)
        except PolicyError as err:
            if args.policy is not None:
                raise  # a file the user named is never overwritten
            reason = f"{path} does not fit scenario {scenario.name!r} ({err})"
        else:
            if wanted_k is None or wanted_k == policy.k:
                return policy
            retrain = ("" if args.policy is not None
                       else f", or --retrain to train it for k = {wanted_k} (overwrites it)")
            raise PolicyError(f"k = {wanted_k} (--k or the fleet file): the policy {path} was trained for k = "
                              f"{policy.k}; use --k {policy.k}{retrain}, or --policy another file")
    k = wanted_k if wanted_k is not None else TRAIN_K
    if scenario.continuous is not None:  # FA training takes minutes of JAX: the user's command, not a side effect
        raise PolicyError(f"{reason}: train the FA policy first with `altmarl train --scenario {scenario.name} "
                          f"--k {k} --train-seeds 1 --out {path}` (docs/continuous.md)")
    check_output(path, flag="--policy")
    print(f"altmarl demo: training ({reason}): altmarl train --scenario {scenario.name} --k {k} --out {path} "
          f"--start {DEMO_START} --select-n {base.n_robots} --select-rollouts {DEMO_SELECT_ROLLOUTS} "
          f"--max-columns {DEMO_MAX_COLUMNS}", file=sys.stderr, flush=True)
    _train(scenario, k, path, base.n_robots, quiet=args.quiet or args.json)
    return load_scenario_policy(path, scenario)


def _train(scenario, k: int, path, n: int, quiet: bool) -> None:
    """train_policy on the scenario's estimated model with `altmarl train`'s defaults, started at DEMO_START,
    with the observer chosen for the demo's fleet of n robots (DEMO_SELECT_ROLLOUTS rollouts per candidate)
    and pi_g capped at DEMO_MAX_COLUMNS count vectors; its report goes to stderr (stdout is the result)."""
    import contextlib

    from altmarl_ros.commands.train import print_result, train_and_save
    from altmarl_ros.core.training import TrainOptions
    from altmarl_sim.world import ScenarioWorld

    options = TrainOptions(start=DEMO_START, select_n=n, select_rollouts=DEMO_SELECT_ROLLOUTS,
                           max_columns=DEMO_MAX_COLUMNS)
    artifact, report, curve = train_and_save(ScenarioWorld(scenario), k, options, path, quiet)
    with contextlib.redirect_stdout(sys.stderr):
        print_result(artifact, report, path, curve)


def run_fleet(fleet, target_epochs: int, processes: bool, show: bool, record=None) -> dict:
    """Run the node set plus a welfare monitor (and a recorder when record.record names a file) until
    `target_epochs` epochs are complete."""
    from altmarl_ros import fleet_plan, supervisor
    from altmarl_ros.nodes.welfare_monitor import WelfareMonitorNode

    monitors = []

    def make_monitor(context):
        params = {"scenario": fleet.common["scenario"], "n_robots": fleet.n_robots, "use_sim_time": True,
                  "log_every": 0}
        monitors.append(WelfareMonitorNode(params, context=context))
        return monitors + (recorder_nodes(record, fleet.n_robots, True, context) if record is not None else [])

    status = StatusLine(sys.stderr, enabled=show)
    started = time.monotonic()
    decision_period = float(fleet.common.get("decision_period", 1.0))
    # Wall-clock limit: 4x real time plus start-up, so a stalled fleet still ends with a result.
    limit = 60.0 + 4.0 * target_epochs * decision_period
    clock_seen = []  # (sim s, wall s) at the first and the latest tick with a running /clock

    def on_tick() -> bool:
        monitor = monitors[0]
        sim_now = monitor.get_clock().now().nanoseconds / 1e9
        if sim_now > 0:
            clock_seen[1:] = [(sim_now, time.monotonic())]
            if len(clock_seen) == 1:
                clock_seen.append(clock_seen[0])
        status.update(monitor, sim_now, target_epochs)
        return monitor.epochs >= target_epochs

    specs = fleet_plan.plan_nodes(fleet, "sim")
    supervisor.run(specs, processes=processes, duration=limit, local_nodes=make_monitor, on_tick=on_tick)
    status.finish()
    monitor = monitors[0]
    wall = time.monotonic() - started
    rtf = math.nan
    if len(clock_seen) == 2 and clock_seen[1][1] > clock_seen[0][1]:
        rtf = (clock_seen[1][0] - clock_seen[0][0]) / (clock_seen[1][1] - clock_seen[0][1])
    return {"monitor": monitor, "wall_seconds": wall, "real_time_factor": rtf,
            "odom_rate": status.mean_rate(),
            "late_command_fraction": float(monitor.simulator_status.get("late_command_fraction", "nan")),
            "coordinator": dict(monitor.coordinator_status)}


class StatusLine:
    """One live line (\\r-updated on a terminal, a plain line every 10 s otherwise)."""

    def __init__(self, stream, enabled: bool):
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and stream.isatty()
        self.started = time.monotonic()
        self.last_wall, self.last_printed = self.started, -math.inf
        self.last_messages, self.rate = 0, 0.0
        self.first_messages, self.first_wall = None, None
        self.width = 0

    def update(self, monitor, sim_now: float, target_epochs: int) -> None:
        now = time.monotonic()
        if now - self.last_wall >= 1.0:
            self.rate = (monitor.odom_messages - self.last_messages) / (now - self.last_wall)
            self.last_messages, self.last_wall = monitor.odom_messages, now
            if self.first_messages is None and monitor.odom_messages:
                self.first_messages, self.first_wall = monitor.odom_messages, now
        if not self.enabled or now - self.last_printed < (STATUS_EVERY_SEC if self.tty else PLAIN_STATUS_EVERY_SEC):
            return
        self.last_printed = now
        command = monitor.last_command
        sampled = f"{len(command.sampled_ids)}/{command.k}" if command is not None else "-"
        line = (f"sim {sim_now:7.1f} s | epoch {monitor.epochs:4d}/{target_epochs} | welfare so far "
                f"{monitor.welfare:9.3f} | k sampled {sampled} | odom {self.rate:7.0f} msg/s | "
                f"wall {now - self.started:6.1f} s")
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def mean_rate(self) -> float:
        if self.first_wall is None or self.last_wall <= self.first_wall:
            return math.nan
        return (self.last_messages - self.first_messages) / (self.last_wall - self.first_wall)

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _offline_runs(n_ag: int) -> int:
    """Rollout sets of the offline evaluation: the policy from the run's start, as its twin and from random
    starts, each constant a_g from random starts, and the chosen one from the run's start (what
    _offline_welfare runs, check_demo_work prices)."""
    return 3 + n_ag + 1


def _start_offline(scenario, policy_path, n: int, horizon: int, rollouts: int, seed: int):
    """(pool, pending result) of _offline_welfare for `horizon` epochs, already running in a spawned process
    (no ROS state is copied into it), so the offline evaluation costs no wall time beyond the ROS run's."""
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(1)
    return pool, pool.apply_async(_offline_job, (scenario.source or scenario.name, str(policy_path),
                                                 scenario.content_hash(), n, horizon, rollouts, seed))


def _offline_job(scenario_source, policy_path, scenario_hash, n, horizon, rollouts, seed):
    from altmarl_sim.rollout import load_scenario_policy
    from altmarl_sim.scenario import load_scenario

    scenario = load_scenario(scenario_source)
    if scenario.content_hash() != scenario_hash:
        raise RuntimeError("the scenario file changed during the demo")
    return _offline_welfare(scenario, load_scenario_policy(policy_path, scenario), n, horizon, rollouts, seed,
                            show=False)


def _finish_offline(job, wanted: bool, say):
    """The background evaluation's result when `wanted` (it ran the epochs the ROS run ran), else None; None
    too when it failed (the caller repeats it in this process, where its error is reported as usual)."""
    _, pending = job
    if not wanted:
        return None
    if not pending.ready():
        say("altmarl demo: waiting for the offline evaluation")
    try:
        return pending.get()
    except Exception:  # noqa: BLE001 - repeated in-process, which raises it with its one-line message
        return None


def _offline_welfare(scenario, policy, n: int, horizon: int, rollouts: int, seed: int, show: bool):
    """In the continuous simulator: (the policy under its observer and the best constant dispatcher, both
    from the ROS run's start state, FleetSim(seed)'s; the policy from random starts, what it earns on average;
    the policy in the ROS run's offline twin, FleetSim(seed) itself: its start, stalls and noise)."""
    from tqdm import tqdm

    from altmarl_sim.estimate import DEFAULT_RUNS_DIR, run_dir
    from altmarl_sim.rollout import best_blind_constant, policy_sim_welfare, same_noise_as, starting_like
    from altmarl_sim.world import ScenarioWorld

    # the estimated model for the constants' local best responses: the cache if training left one,
    # else computed without writing (a demo given a policy writes nothing under runs/)
    cached = run_dir(scenario, DEFAULT_RUNS_DIR).exists()
    game = ScenarioWorld(scenario, runs_dir=DEFAULT_RUNS_DIR if cached else None).of_policy(policy).game
    runs = _offline_runs(game.n_ag)
    with tqdm(total=runs * rollouts, desc="offline evaluation", unit="rollout", file=sys.stderr,
              disable=not (show and sys.stderr.isatty())) as bar:
        def advance(done, total):
            bar.update(1)

        args = dict(n=n, horizon=horizon, seeds=1, rollouts=rollouts, seed=seed, progress=advance)
        anywhere = policy_sim_welfare(scenario, policy, **args)
        _, constant = best_blind_constant(scenario, game, policy.k, seed, **args)
        learned = policy_sim_welfare(scenario, policy, fleet=starting_like(seed), **args)
        twin = policy_sim_welfare(scenario, policy, fleet=same_noise_as(seed), **args)
    return learned, constant, anywhere, twin


def _report(monitor, offline, constant, anywhere, twin, run_result, n, k, policy, processes, seed, domain) -> dict:
    import numpy as np

    returns = np.asarray(offline.returns, dtype=np.float64).ravel()
    spread = float(returns.std(ddof=1))
    deviation = monitor.welfare - offline.mean
    return {
        "welfare": monitor.welfare,
        "epochs": monitor.epochs,
        "rewards": monitor.rewards,
        "offline": {"mean": offline.mean, "ci95": offline.ci95, "sd": spread, "rollouts": int(returns.size),
                    "p2_5": float(np.percentile(returns, 2.5)), "p97_5": float(np.percentile(returns, 97.5))},
        "best_constant": {"mean": constant.mean, "ci95": constant.ci95, "detail": constant.detail},
        "offline_random_starts": {"mean": anywhere.mean, "ci95": anywhere.ci95},
        "offline_twin": {"mean": twin.mean, "ci95": twin.ci95},
        "seed": seed, "ros_domain_id": domain,
        "late_command_fraction": run_result["late_command_fraction"],
        "observer": policy.meta["observer"],
        "deviation_sd": deviation / spread if spread > 0 else math.copysign(math.inf, deviation),
        "within_margin": abs(deviation) <= MARGIN_SD * spread,
        "margin_sd": MARGIN_SD,
        "n": n, "k": k, "policy_id": policy.policy_id, "processes": processes,
        "wall_seconds": run_result["wall_seconds"], "real_time_factor": run_result["real_time_factor"],
        "odom_msgs_per_s": run_result["odom_rate"],
        "coordinator_heard": _coordinator_heard(run_result["coordinator"]),
        "robots_without_odometry": monitor.missing_at_epoch_start,
        "first_epoch": monitor.first_epoch, "out_of_sequence": monitor.out_of_sequence,
    }


def _coordinator_heard(status: dict) -> dict:
    """What the coordinator received to decide, from its last /diagnostics: robot-state messages per decision
    (request: replies and membership changes; subscribe_all: every pose message), replies missed, state ages."""
    try:
        decisions, received = int(status["decisions"]), int(status["state_messages_received"])
    except (KeyError, ValueError):
        return {}
    detail = ""
    if status.get("state_sampling") == "request":
        requested = max(1, int(status.get("replies_requested", 0)))
        detail = (f": {int(status.get('replies_used', 0)) / max(1, decisions):.1f} replies used per decision, "
                  f"{100 * int(status.get('replies_missed', 0)) / requested:.1f}% missed")
    if "state_age_p50_s" in status:
        detail += (f"; states {status['state_age_p50_s']} s old at the decision (p50), "
                   f"{status['state_age_p99_s']} s (p99)")
    return {"state_sampling": status.get("state_sampling", ""), "per_decision": received / max(1, decisions),
            "detail": detail}


def _print_report(report, gamma: float) -> None:
    off = report["offline"]
    best = report["best_constant"]
    observer = report["observer"]
    observed = (f"{observer['name']} observer, gain {observer['gain']:g}, pi_g at {observer['resolution']} robots"
                if "gain" in observer else f"{observer['name']} observer, FA networks on positions")
    print(f"\nwelfare = discounted return sum_t {gamma:g}^t r_t over {report['epochs']} decision epochs, "
          f"n = {report['n']}, k = {report['k']}, policy {report['policy_id']} ({observed})")
    print(f"  ROS 2 fleet (this run)        {report['welfare']:10.3f}   "
          f"(real-time factor {report['real_time_factor']:.2f}, {report['wall_seconds']:.0f} s wall, "
          f"{report['odom_msgs_per_s']:.0f} odom msg/s to the monitor, "
          f"{100 * report['late_command_fraction']:.1f}% of robot-steps on a late command)")
    heard = report["coordinator_heard"]
    if heard:
        print(f"  coordinator heard {heard['per_decision']:.1f} robot-state messages per decision "
              f"({heard['state_sampling']} sampling{heard['detail']})")
    print(f"  offline, same start           {off['mean']:10.3f} +- {off['ci95']:.3f} (fleet seed {report['seed']}'s "
          f"start; 95% CI of the mean, {off['rollouts']} rollouts; single runs: 95% within "
          f"[{off['p2_5']:.3f}, {off['p97_5']:.3f}])")
    twin = report["offline_twin"]
    print(f"  offline twin                  {twin['mean']:10.3f} +- {twin['ci95']:.3f} (the same start, stalls and "
          f"noise as this run; ROS - twin {report['welfare'] - twin['mean']:+.3f}: what deployment changed)")
    anywhere = report["offline_random_starts"]
    print(f"  offline, random starts        {anywhere['mean']:10.3f} +- {anywhere['ci95']:.3f} (what the policy "
          f"earns on average; this run's start is one draw)")
    print(f"  best constant dispatcher, offline {best['mean']:6.3f} +- {best['ci95']:.3f} ({best['detail']}, "
          f"chosen from random starts, scored from the same start; learned - constant: ROS run "
          f"{report['welfare'] - best['mean']:+.3f}, "
          f"offline {off['mean'] - best['mean']:+.3f})")
    verdict = "within" if report["within_margin"] else "OUTSIDE"
    print(f"  the run is {report['deviation_sd']:+.2f} single-run standard deviations from the offline mean: "
          f"{verdict} the +-{report['margin_sd']:g} sd margin")
