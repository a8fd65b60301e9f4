"""The local agents' decision and stop paths the fleet tests leave unchecked (one in-process graph each, a
few seconds): what their stop is logged with at the edges, the operator's stop and resume."""
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


def test_a_command_that_arrived_this_nanosecond_is_not_from_the_future(graph, world):
    agents = _agents(graph, world, command_timeout=3.0)
    agents.last_command = _command(agents.policy, 1, 0, agents.policy.policy_id, agents.get_clock().now().nanoseconds)
    assert agents._staleness(0) == "the last GlobalCommand is stale (arrived 0.00 s ago)"


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
