"""The local agents' decision and stop paths the fleet tests leave unchecked (one in-process graph each, a
few seconds): what their stop is logged with at the edges, when a command counts as stale, the operator's
stop and resume, and the warning about a foreign policy."""
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from test_node_paths import Log, _command  # noqa: E402


def _agents(graph, world, **parameters):
    from altmarl_ros.nodes.local_agents import LocalAgentsNode

    return graph.add(LocalAgentsNode({"scenario": world["scenario"], "policy": world["random"], "robots": [0],
                                      **parameters}, context=graph.context))


@pytest.mark.parametrize("timeout, shown", [(3.783775003, "3.78378"), (3.783774997, "3.78377")])
def test_the_command_timeout_is_named_to_six_significant_digits(graph, world, timeout, shown):
    """Rounded at the seventh digit, a 5 followed by 003 (up) or a 4 followed by 997 (down)."""
    agents = _agents(graph, world, command_timeout=timeout)
    assert agents._staleness(-2_000_000_000) == ("the last GlobalCommand is 2.00 s in the future (sim time went "
                                                 f"back; command_timeout {shown} s)")


def test_ages_are_named_in_seconds_to_the_hundredth(graph, world):
    """Ages in ns, shown to two decimals by hand: 2.005000001 s (up), 1.004999999 s (down), 2.499999999 s
    and 1.005000001 s (up); an age of 0 is not from the future."""
    agents = _agents(graph, world, command_timeout=3.0)
    agents.last_command = _command(agents.policy, 1, 0, agents.policy.policy_id, agents.get_clock().now().nanoseconds)
    assert agents._staleness(-2_005_000_001).startswith("the last GlobalCommand is 2.01 s in the future ")
    assert agents._staleness(1_004_999_999) == "the last GlobalCommand is stale (arrived 1.00 s ago)"
    assert agents._staleness(2_499_999_999) == "the last GlobalCommand is stale (arrived 2.50 s ago)"
    assert agents._staleness(1_005_000_001) == "the last GlobalCommand is stale (arrived 1.01 s ago)"
    assert agents._staleness(0) == "the last GlobalCommand is stale (arrived 0.00 s ago)"


def test_an_accepted_command_grown_old_is_stale_not_a_replay(graph, world):
    """The command the agents acted on is the newest they accepted: asked why it stopped counting, they
    judge its stamp, not its epoch against itself."""
    agents = _agents(graph, world, command_timeout=3.0)
    agents.on_command(_command(agents.policy, 1, 0, agents.policy.policy_id, agents.get_clock().now().nanoseconds))
    assert agents.commands_received == 1
    assert agents._staleness(1_000_000_000) == "the last GlobalCommand is stale (arrived 1.00 s ago)"


@pytest.mark.parametrize("received_after_ns, stale", [(0, False), (1, True)])
def test_a_command_that_arrived_one_nanosecond_from_now_counts_as_stale(graph, world, received_after_ns, stale):
    """control() on a stubbed clock: a fresh command received now drives; one received 1 ns after now (sim
    time went back) stops the robots."""
    from types import SimpleNamespace

    agents = _agents(graph, world, command_timeout=3.0)
    now = agents.get_clock().now().nanoseconds
    agents.get_clock = lambda: SimpleNamespace(now=lambda: SimpleNamespace(nanoseconds=now))
    agents.last_command = _command(agents.policy, 1, 0, agents.policy.policy_id, now)
    agents.command_received_ns = now + received_after_ns
    agents.control()
    assert agents.stopped == stale


def test_the_operators_stop_and_resume_act_once_each(graph, world):
    """A latched altmarl/stopped may arrive again: the robots are stopped at once on the first true, and
    each change is logged once."""
    from std_msgs.msg import Bool

    agents = _agents(graph, world)
    log, stops = Log(), []
    agents.get_logger = lambda: log
    agents.stop_robots = lambda: stops.append(agents.halted)
    for data in (True, True, False, False):
        agents.on_stopped(Bool(data=data))
    assert stops == [True] and not agents.halted
    assert log.lines == [("warning", "fleet stopped by the operator"), ("warning", "fleet resumed by the operator")]


def test_a_foreign_policy_id_sorting_before_their_own_is_warned_about(graph, world):
    """test_node_paths tries foreign ids of a's and b's; one of 0's sorts before every other id."""
    agents = _agents(graph, world)
    log = Log()
    agents.get_logger = lambda: log
    agents.on_command(_command(agents.policy, 1, 0, "0" * 16, agents.get_clock().now().nanoseconds))
    assert agents.policy.policy_id > "0" * 16
    assert [m for _, m in log.lines if "the two halves of the equilibrium differ" in m]
