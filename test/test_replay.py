"""Record and replay (nodes/recorder.py, commands/replay.py): an in-process graph (test_nodes' world, n = 50,
k = 5) recorded to MCAP, then every decision recomputed offline from the recorded samples."""
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
from _graph import Graph  # noqa: E402
from test_nodes import _sim_nodes  # noqa: E402

from altmarl_ros import cli  # noqa: E402

EPOCHS = 6


@pytest.fixture(scope="module")
def recording(world, tmp_path_factory):  # noqa: F811
    """A filter-observer run recorded with every robot's odometry: (path, messages written per topic)."""
    from rclpy.context import Context

    from altmarl_ros.nodes.recorder import RecorderNode

    path = tmp_path_factory.mktemp("replay") / "run.mcap"
    context = Context()
    rclpy.init(context=context)
    graph = Graph(context)
    try:
        recorder = graph.add(RecorderNode({"output": str(path), "record_odometry": True, "robots": 50,
                                           "use_sim_time": True}, context=graph.context))
        _, coordinator, _ = _sim_nodes(graph, world, world["filter"])
        assert graph.spin_until(lambda: coordinator.epoch >= EPOCHS and
                                recorder.messages["/altmarl/global_command"] >= EPOCHS, timeout=40.0)
        assert not path.exists()  # written atomically: the file appears only when the recorder finishes
    finally:
        graph.close()
        rclpy.try_shutdown(context=context)
    return path, recorder.messages


def test_leaving_robots_skipped_epochs_and_a_restart_replay_exactly(world, graph, tmp_path, capsys):  # noqa: F811
    """Hand-placed robots (test_nodes.FakeFleet): 6 of 10 leave (short samples, the filter's weight resized),
    the depot's pose goes silent for epochs without a decision, then a new coordinator session."""
    import time

    from test_nodes import FakeFleet, _coordinator, _every

    from altmarl_ros.commands.replay import read_commands
    from altmarl_ros.nodes.recorder import RecorderNode

    path = tmp_path / "faults.mcap"
    recorder = graph.add(RecorderNode({"output": str(path)}, context=graph.context))
    fleet = FakeFleet(graph, world["ring"], range(10))
    depot_on = [True]
    due = _every(0.05)

    def publish():
        if due():
            for rid in fleet.active:
                fleet.pubs[rid].publish(fleet.messages[rid])
            if depot_on[0]:
                fleet.depot_pub.publish(fleet.depot)

    def run_until(done):
        assert graph.spin_until(done, timeout=20.0, every=publish)

    def commands():
        return recorder.messages["/altmarl/global_command"]

    coordinator = _coordinator(graph, world, robots=10, policy=world["filter"])
    run_until(lambda: commands() >= 4)
    fleet.active = set(range(4))  # still usable for odom_timeout = 0.5 s (5 decisions), then short samples
    run_until(lambda: commands() >= 12)
    depot_on[0] = False
    silent = time.monotonic()
    run_until(lambda: time.monotonic() - silent > 1.0)
    depot_on[0] = True
    back = commands()
    run_until(lambda: commands() >= back + 3)
    graph.remove(coordinator)
    back = commands()
    _coordinator(graph, world, robots=10, policy=world["filter"])
    run_until(lambda: commands() >= back + 4)
    graph.remove(recorder)
    recorded = read_commands(path)
    assert len({msg.session for msg in recorded}) == 2
    assert max(msg.epochs_elapsed for msg in recorded) > 1
    assert {msg.usable_robots for msg in recorded} >= {4, 10}
    status, out = _replay(capsys, path, "--policy", world["filter"])
    assert f"{len(recorded)} of {len(recorded)} decisions match" in out.out and status == 0, out


def _policy_for_k(world, tmp_path, k):
    import numpy as np

    from altmarl_ros.core.counts import n_count_vectors
    from altmarl_ros.core.policy import build_policy, save_policy

    z = world["random_policy"].pi_g.shape[0]
    artifact = build_policy(np.zeros((z, n_count_vectors(k, z)), dtype=int), np.full((z, z, 3), 1.0 / 3), k, n_ag=z)
    return save_policy(artifact, tmp_path / f"k{k}.npz")


def _replay(capsys, *argv):
    status = cli.main(["replay", *map(str, argv)])
    return status, capsys.readouterr()


def test_a_recorded_run_replays_with_every_decision_matching(recording, world, capsys):
    path, messages = recording
    assert messages["/depot/odom"] > 0 and messages["/robot_49/odom"] > 0
    status, out = _replay(capsys, path, "--policy", world["filter"])
    decisions = messages["/altmarl/global_command"]
    assert f"{decisions} of {decisions} decisions match" in out.out and status == 0, out


def test_a_tampered_command_is_reported_with_its_epoch(recording, world, capsys, tmp_path):
    from mcap.reader import make_reader
    from mcap.writer import Writer
    from mcap_ros2.decoder import DecoderFactory

    from altmarl_ros.commands.replay import read_commands

    path, _ = recording
    target = read_commands(path)[3]
    tampered = tmp_path / "tampered.mcap"
    with path.open("rb") as source, tampered.open("wb") as out:
        reader = make_reader(source, decoder_factories=[DecoderFactory()])
        writer = Writer(out)
        writer.start(profile="ros2")
        summary = reader.get_summary()
        schemas = {sid: writer.register_schema(s.name, s.encoding, s.data) for sid, s in summary.schemas.items()}
        channels = {cid: writer.register_channel(c.topic, c.message_encoding, schemas[c.schema_id])
                    for cid, c in summary.channels.items()}
        for _schema, channel, message in reader.iter_messages():
            data = message.data
            if channel.topic == "/altmarl/global_command":
                from rclpy.serialization import deserialize_message, serialize_message
                from altmarl_msgs.msg import GlobalCommand
                msg = deserialize_message(data, GlobalCommand)
                if msg.epoch == target.epoch:
                    msg.global_action = (msg.global_action + 1) % len(msg.counts)
                    data = serialize_message(msg)
            writer.add_message(channels[channel.id], message.log_time, data, message.publish_time)
        writer.finish()
    status, out = _replay(capsys, tampered, "--policy", world["filter"])
    assert status == 1, out
    decisions = len(read_commands(path))
    assert f"{decisions - 1} of {decisions} decisions match" in out.out
    assert f"epoch {target.epoch}: global_action recorded" in out.out


def test_bad_inputs_are_one_line_errors(recording, world, capsys, tmp_path):
    path, _ = recording
    not_mcap = tmp_path / "notes.mcap"
    not_mcap.write_text("hello, not a recording\n")
    no_commands = tmp_path / "empty.mcap"
    from mcap.writer import Writer
    with no_commands.open("wb") as out:
        writer = Writer(out)
        writer.start()
        writer.finish()
    rows = [((tmp_path / "absent.mcap", "--policy", world["filter"]), "no such file"),
            ((not_mcap, "--policy", world["filter"]), "not a readable MCAP file"),
            ((no_commands, "--policy", world["filter"]), "no altmarl/global_command channel"),
            ((path, "--policy", _policy_for_k(world, tmp_path, 4)), "k = 5, the policy was trained for k = 4"),
            ((path, "--policy", tmp_path / "none.npz"), "none.npz")]
    for argv, expected in rows:
        status, out = _replay(capsys, *argv)
        lines = out.err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and expected in lines[0], (argv, out)


@pytest.mark.parametrize("argv, expected", [
    (["demo", "--record-odometry"], "--record-odometry records into the --record file"),
    (["demo", "--record", "{tmp}"], "--record {tmp} is a directory"),
    (["launch", "--dry-run", "--record", "{tmp}"], "--record {tmp} is a directory"),
])
def test_a_bad_record_path_is_refused_before_any_work(argv, expected, tmp_path, capsys):
    status = cli.main([word.format(tmp=tmp_path) for word in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and expected.format(tmp=tmp_path) in lines[0], lines
