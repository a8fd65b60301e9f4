"""`altmarl replay FILE.mcap --policy P`: recompute every recorded decision offline and count the matches.

Each GlobalCommand of the recording (written by `altmarl demo --record` or the recorder node)
carries the sampled counts of its decision. Replay runs them through the policy's observer in
the coordinator's order of operations (nodes/coordinator.py, decide): per coordinator session
a new observer; before each decision `epochs_elapsed` epochs predicted under the previous
command's s_g, the fleet resized from the previous decision's `usable_robots`, then
decide(counts) -> query counts -> rank -> a_g = pi_g[s_g, rank]. A decision matches when its
global_action, query_counts, count_rank and estimate all equal the recomputed ones. A session of an
observer that keeps an estimate (a filter) with an epoch missing from the recording cannot be
recomputed after the gap: those decisions are reported as unreplayable. Exit 0: every decision matches; 1: some do not
(listed with their epochs); 2: bad input.
"""
from pathlib import Path

from altmarl_ros.errors import AltmarlError

HELP = "recompute every decision of an MCAP recording offline with a policy and report how many match"
COMMAND_TOPIC_SUFFIX = "altmarl/global_command"
COMMAND_SCHEMA = "altmarl_msgs/msg/GlobalCommand"
REPLAY_FIELDS = ("epochs_elapsed", "usable_robots")  # fields older recordings lack
ESTIMATE_TOLERANCE = 1e-12
SHOW_MISMATCHES = 20


class RecordingError(AltmarlError):
    """The recording cannot be replayed: missing, not MCAP, no GlobalCommand channel, or does not fit."""


def add_arguments(parser):
    parser.add_argument("recording", type=Path, metavar="FILE.mcap", help="an MCAP recording with GlobalCommands")
    parser.add_argument("--policy", type=Path, required=True, metavar="P",
                        help="policy file to recompute the decisions with (the recorded policy_id is compared)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results")


def read_commands(path: Path) -> list:
    """Every GlobalCommand of the recording, decoded with its recorded schema, in log-time order."""
    try:
        from mcap.exceptions import McapError
        from mcap.reader import make_reader
        from mcap_ros2.decoder import DecoderFactory
    except ImportError:
        raise RecordingError("replay needs the mcap libraries: pip install mcap==1.6.0 mcap-ros2-support==0.6.0 "
                             "(requirements.txt)") from None

    if not path.is_file():
        raise RecordingError(f"recording {path}: no such file; give the .mcap file `altmarl demo --record` wrote")
    try:
        with path.open("rb") as stream:
            reader = make_reader(stream, decoder_factories=[DecoderFactory()])
            channels = reader.get_summary().channels.values() if reader.get_summary() else None
            if channels is not None and not any(c.topic.endswith(COMMAND_TOPIC_SUFFIX) for c in channels):
                raise RecordingError(f"recording {path}: no {COMMAND_TOPIC_SUFFIX} channel (topics: "
                                     f"{sorted(c.topic for c in channels) or 'none'}); record with --record")
            commands = []
            for schema, channel, _, msg in reader.iter_decoded_messages(log_time_order=True):
                if channel.topic.endswith(COMMAND_TOPIC_SUFFIX) and schema.name == COMMAND_SCHEMA:
                    commands.append(msg)
    except RecordingError:
        raise  # our own finding, already named (AltmarlError is a ValueError too)
    except (McapError, ValueError, EOFError) as err:
        raise RecordingError(f"recording {path}: not a readable MCAP file ({type(err).__name__}: "
                             f"{str(err)[:120]})") from None
    if not commands:
        raise RecordingError(f"recording {path}: no GlobalCommand message on {COMMAND_TOPIC_SUFFIX}; the run "
                             f"made no decision while it was recorded")
    missing = [name for name in REPLAY_FIELDS if not hasattr(commands[0], name)]
    if missing:
        raise RecordingError(f"recording {path}: its GlobalCommands lack {', '.join(missing)} (recorded before "
                             f"replay existed); record again with this version")
    return commands


def _check_fits(policy, commands, path) -> None:
    n_sg, n_sl = policy.pi_g.shape[0], policy.pi_l.shape[0]
    for msg in commands:
        problem = None
        if len(msg.counts) != n_sl:
            problem = f"{len(msg.counts)} local states in its counts, the policy has {n_sl}"
        elif msg.global_state >= n_sg:
            problem = f"global state {msg.global_state}, the policy has {n_sg}"
        elif msg.k != policy.k:
            problem = f"k = {msg.k}, the policy was trained for k = {policy.k}"
        if problem is not None:
            raise RecordingError(f"--policy {path}: does not fit the recording (epoch {msg.epoch}: {problem}); "
                                 f"give the policy the run used")


def replay(policy, commands) -> dict:
    """Recompute each command's decision; {"decisions", "matching", "mismatches": [...], "unreplayable"}."""
    import numpy as np

    from altmarl_ros.core.counts import rank
    from altmarl_ros.core.observer import deployed_observer

    n_sg, n_sl = policy.pi_g.shape[0], policy.pi_l.shape[0]
    prediction = None if policy.observer_P is None else (policy.observer_P, policy.observer_mu0)
    session, observer, last, matching, mismatches, unreplayable = None, None, None, 0, [], []
    for msg in commands:
        if msg.session != session or observer is None:  # a new coordinator (or the first): a new observer
            session, last = msg.session, None
            observer = deployed_observer(n_sg, n_sl, policy.k, policy.observer, prediction)
        elif msg.epoch != last.epoch + 1 and policy.observer.kind.estimates:
            observer = None  # the estimate before this epoch is unknown: nothing more of this session replays
        if observer is None:
            unreplayable.append(int(msg.epoch))
            continue
        if last is not None:
            for _ in range(msg.epochs_elapsed):
                observer.elapsed(last.global_state)
            observer.resized(last.usable_robots, msg.usable_robots)
        query = observer.decide(np.asarray(msg.counts, dtype=np.int64))
        last = msg
        if query is None:
            mismatches.append({"epoch": int(msg.epoch), "session": int(session),
                               "differs": {"decision": "recorded, but the observer had nothing to decide on"}})
            continue
        count_rank = rank(query)
        expected = {"global_action": int(policy.pi_g[msg.global_state, count_rank]),
                    "query_counts": query.tolist(), "count_rank": int(count_rank)}
        recorded = {"global_action": int(msg.global_action), "query_counts": [int(c) for c in msg.query_counts],
                    "count_rank": int(msg.count_rank)}
        differs = {key: {"recorded": recorded[key], "replayed": expected[key]}
                   for key in expected if recorded[key] != expected[key]}
        estimate = np.asarray(msg.estimate, dtype=np.float64)
        if estimate.shape != observer.mu.shape or np.abs(estimate - observer.mu).max() > ESTIMATE_TOLERANCE:
            differs["estimate"] = {"recorded": estimate.round(6).tolist(), "replayed": observer.mu.round(6).tolist()}
        if differs:
            mismatches.append({"epoch": int(msg.epoch), "session": int(session), "differs": differs})
        else:
            matching += 1
    return {"decisions": len(commands), "matching": matching, "mismatches": mismatches,
            "unreplayable": unreplayable}


def run(args) -> int:
    from altmarl_ros.commands import print_json
    from altmarl_ros.core.policy import load_policy

    policy = load_policy(args.policy)
    commands = read_commands(args.recording)
    _check_fits(policy, commands, args.policy)
    result = replay(policy, commands)
    recorded_ids = sorted({msg.policy_id for msg in commands})
    result.update(policy_id=policy.policy_id, recorded_policy_ids=recorded_ids,
                  sessions=len({msg.session for msg in commands}))
    if args.json:
        print_json(result)
    else:
        if recorded_ids != [policy.policy_id]:
            print(f"note: the recording's decisions were made by policy {', '.join(recorded_ids)}; replaying "
                  f"with {policy.policy_id}")
        print(f"{result['matching']} of {result['decisions']} decisions match ({result['sessions']} coordinator "
              f"session(s), policy {policy.policy_id}, {policy.observer.describe()})")
        for item in result["mismatches"][:SHOW_MISMATCHES]:
            detail = "; ".join(f"{key} recorded {value['recorded']}, replayed {value['replayed']}"
                               if isinstance(value, dict) else f"{key} {value}"
                               for key, value in item["differs"].items())
            print(f"  epoch {item['epoch']}: {detail}")
        if len(result["mismatches"]) > SHOW_MISMATCHES:
            print(f"  ... and {len(result['mismatches']) - SHOW_MISMATCHES} more (--json lists all)")
        if result["unreplayable"]:
            print(f"  {len(result['unreplayable'])} decisions after a gap in the recording cannot be recomputed "
                  f"(the observer's estimate before them is unknown), epochs {result['unreplayable'][:10]}")
    return 0 if result["matching"] == result["decisions"] else 1
