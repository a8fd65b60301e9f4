"""A network partition between the coordinator's host and the fleet's: robots stop, then resume.

Two hosts (test/_netns.py: network namespaces joined by a veth pair, DDS over UDP
as between machines). Host A runs the coordinator; host B runs fleet_sim,
local_agents and an observer (test/_partition_observer.py). The link goes down for
PARTITION_SEC and comes back. Checked: the local agents keep commanding motion
until the last GlobalCommand is command_timeout old in the fleet's sim time and then
command zero (not earlier: the stop comes from the timeout), the robots stand still, the first
GlobalCommand after the link returns starts them again, and no node process dies.
The measured stop and resume times are printed (docs/operations.md quotes them).
"""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import _netns

pytestmark = [pytest.mark.ros,
              pytest.mark.skipif(_netns.unavailable() is not None, reason=str(_netns.unavailable()))]

N_ROBOTS = 5
COMMAND_TIMEOUT = 3.0
MAX_CLOCK_SKEW = 0.5  # local_agents' default: a command stamped longer ago than timeout + skew is stale
DECISION_PERIOD = 1.0
PARTITION_SEC = 5.0
SLACK_SEC = 1.0  # a control tick, the observer's 50 ms, /rosout delivery, and a starved process's late
# /clock on a loaded 2-core CI machine (3.75 s seen once); a 30 s command_timeout still fails it
OBSERVER = Path(__file__).with_name("_partition_observer.py")


def _node(kind: str, **params) -> list:
    args = [sys.executable, "-c", f"from altmarl_ros.nodes.{kind} import main; main()", "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    return args


class Lines:
    """The observer's JSON lines, read on a thread as they come."""

    def __init__(self, stream):
        self.rows = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            if line.startswith("{"):
                self.rows.append(json.loads(line))

    def wait(self, done, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((row for row in list(self.rows) if done(row)), None)
            if found is not None:
                return found
            time.sleep(0.05)
        return None


def test_partition_stops_the_robots_within_command_timeout_and_they_resume(world):
    common = dict(scenario=world["scenario"], policy=world["next"], n_robots=N_ROBOTS, k=N_ROBOTS,
                  decision_period=DECISION_PERIOD)
    with _netns.two_hosts() as (coordinator_host, fleet_host):
        env_a, env_b = coordinator_host.ros_env(), fleet_host.ros_env()
        nodes = [
            fleet_host.popen(_node("fleet_sim", scenario=world["scenario"], n_robots=N_ROBOTS,
                                   real_time_factor=1.0), env=env_b),
            fleet_host.popen(_node("local_agents", use_sim_time="true", command_timeout=COMMAND_TIMEOUT,
                                   **common), env=env_b),
            coordinator_host.popen(_node("coordinator", use_sim_time="true", **common), env=env_a),
        ]
        observer = fleet_host.popen([sys.executable, str(OBSERVER), str(N_ROBOTS)], env=env_b,
                                    stdout=subprocess.PIPE, text=True)
        lines = Lines(observer.stdout)
        moving = lines.wait(lambda row: row["epoch"] >= 1 and row["cmd"] > 0, timeout=60.0)
        assert moving is not None, "the fleet never moved across the link"

        down_at = time.monotonic()
        coordinator_host.link_down()
        before = lines.rows[-1]
        last_epoch, stops = before["epoch"], before["stops"]
        stopped = lines.wait(lambda row: row["stops"] > stops, timeout=PARTITION_SEC + 5)
        still = lines.wait(lambda row: row["stops"] > stops and row["cmd"] == row["v"] == 0.0,
                           timeout=PARTITION_SEC + 5)
        time.sleep(max(0.0, down_at + PARTITION_SEC - time.monotonic()))
        during = [row for row in lines.rows if row["t"] > down_at]
        up_at = time.monotonic()
        coordinator_host.link_up()
        resumed = lines.wait(lambda row: row["t"] > up_at and row["epoch"] > last_epoch, timeout=30.0)
        moving_again = lines.wait(lambda row: row["goes"] > before["goes"] and row["cmd"] > 0, timeout=30.0)
        alive = [proc.poll() is None for proc in nodes]

    assert stopped is not None and still is not None, "the robots did not stop during the partition"
    stop_sec, still_sec = stopped["t"] - down_at, still["t"] - down_at
    # In the fleet's sim time (what command_timeout counts): the stop comes command_timeout after the
    # last command the local agents had (the age they log), and within command_timeout of the cut (both
    # up to SLACK_SEC). On the observer's own clock the silence may look a decision period shorter or
    # longer: the link can go down while one command is on its way, and the observer and the local
    # agents (two readers) may not both get it (seen in a clean-clone run: 4.3 s, the agents' own age
    # 3.05 s). The agents' own age, asserted just above, is the rule.
    cut_sim = next(row["sim"] for row in during)
    limit = COMMAND_TIMEOUT + (MAX_CLOCK_SKEW if stopped["stop_rule"] == "stamp" else 0.0)  # (local agents' rules)
    assert limit <= stopped["stop_age"] <= limit + SLACK_SEC, (stopped["stop_rule"], stopped["stop_age"])
    # Upper side, a period more: the decision after the cut may hear no reply in time (a clean-clone run: 5.35 s,
    # the agents' own age 3.05 s, "no sampled robot answered in time" logged after the stop).
    silence = stopped["sim"] - stopped["command_sim"]
    low, high = COMMAND_TIMEOUT - DECISION_PERIOD - SLACK_SEC, COMMAND_TIMEOUT + 2 * DECISION_PERIOD + SLACK_SEC
    assert low <= silence <= high, silence
    assert stopped["sim"] - cut_sim <= COMMAND_TIMEOUT + SLACK_SEC, stopped["sim"] - cut_sim
    assert max(row["epoch"] for row in during) <= last_epoch + 1, "commands crossed a downed link"
    assert resumed is not None and moving_again is not None, "the fleet did not resume after the link returned"
    assert alive == [True, True, True], "a node process died"
    print(f"\npartition: stop commanded {stop_sec:.2f} s wall / {stopped['sim'] - cut_sim:.2f} s sim after the "
          f"link went down ({silence:.2f} s sim after the last command the observer saw, {stopped['stop_age']:.2f} s "
          f"after the "
          f"local agents' last; command_timeout {COMMAND_TIMEOUT:g} s), "
          f"robots still {still_sec:.2f} s; first GlobalCommand {resumed['t'] - up_at:.2f} s "
          f"and motion {moving_again['t'] - up_at:.2f} s after it came back")
