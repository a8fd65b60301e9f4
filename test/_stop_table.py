"""Every stop cause on one real fleet per command type: how long until every robot is commanded to rest.

Shared by test/test_stops.py (the rules) and bench/bench_stop.py (the table in
docs/operations.md). fleet_sim runs in this process, so the command each robot
holds can be read directly; the coordinator and the local agents are their own
processes, so they can be frozen (SIGSTOP: a stale coordinator), killed
(SIGKILL) and interrupted (SIGINT) as on a real fleet. goal_pose robots are
driven by a stand-in navigator here (each robot's latest goal_pose, go-to-goal),
as Nav2 would drive them; navigate_to_pose robots by mock NavigateToPose servers
(_mock_navigators.py) and the same go-to-goal towards each robot's running goal,
zero velocity without one (Nav2's controller stops on a cancel).

Times: an e-stop and a SIGINT in wall seconds from the call or signal; a stale or killed coordinator in
sim seconds (the clock command_timeout counts in) from the last GlobalCommand's stamp, since the simulator's
clock may run slower than the wall on a loaded machine.

"At rest" means: with twist / twist_stamped every worker's latest cmd_vel is
zero; with goal_pose every worker's latest goal is a hold (a goal at its own
pose, not a zone centre); with navigate_to_pose no worker's navigator holds an
accepted goal whose cancel it has not received. Once at rest, a robot that is sent
a non-zero cmd_vel or a zone goal before the cause is undone is "commanded after
its stop"; with navigate_to_pose, one whose navigator still holds an uncancelled
goal at the end of the watch.
"""
from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

COMMAND_TYPES = ("twist", "twist_stamped", "goal_pose", "navigate_to_pose")
CAUSES = ("e-stop", "stale", "coordinator killed", "SIGINT")
N_ROBOTS = 6
COMMAND_TIMEOUT = 1.5  # s: local agents stop robots whose last GlobalCommand is older
HOLD_WATCH = 1.0  # s: after rest, how long nothing may command a robot to move


@dataclass
class Row:
    command_type: str
    cause: str
    seconds_to_rest: float  # from the cause (e-stop call, signal: wall s; last GlobalCommand: sim s, the clock
    # command_timeout counts in, from the command's stamp) to every robot at rest
    commanded_after_stop: int  # messages after rest that told a robot to move (must be 0)


def _node_process(kind: str, params: Dict[str, object]) -> subprocess.Popen:
    argv = [sys.executable, "-c", f"import sys; from altmarl_ros.nodes.{kind} import main; sys.exit(main())",
            "--ros-args", "--log-level", "warn"]
    for key, value in params.items():
        argv += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class StopTrial:
    """One fleet (fleet_sim here, agents and coordinator as processes) and the causes applied in turn."""

    def __init__(self, context, scenario_file: str, policy_file: str, command_type: str, n: int = N_ROBOTS):
        import rclpy
        from geometry_msgs.msg import PoseStamped

        from altmarl_ros.names import goal_topic
        from altmarl_ros.nodes._ros import GOAL_QOS, make_executor
        from altmarl_ros.nodes.fleet_sim import FleetSimNode

        self.command_type = command_type
        self.executor = make_executor(context)
        sim_type = "twist" if command_type in ("goal_pose", "navigate_to_pose") else command_type
        # cmd_vel_timeout 60 s: no robot stops because the simulator timed its command out
        self.sim = FleetSimNode({"scenario": scenario_file, "n_robots": n, "command_type": sim_type,
                                 "real_time_factor": 1.0, "cmd_vel_timeout": 60.0}, context=context)
        self.executor.add_node(self.sim)
        self.nodes = [self.sim]
        self.n = n
        self.params = {"scenario": scenario_file, "policy": policy_file, "n_robots": n,
                       "use_sim_time": True, "command_type": command_type, "command_timeout": COMMAND_TIMEOUT}
        self.goals: List[Optional[tuple]] = [None] * n  # goal_pose: each robot's latest (x, y)
        self.violations = 0
        self._watching = False
        if command_type == "goal_pose":
            spy = rclpy.create_node("navigators", context=context)
            self.executor.add_node(spy)
            self.nodes.append(spy)
            for i in range(n):
                spy.create_subscription(PoseStamped, goal_topic(i), lambda m, i=i: self._on_goal(i, m), GOAL_QOS)
            self.sim.add_step_listener(lambda fleet: self._navigate())
        if command_type == "navigate_to_pose":
            from _mock_navigators import MockNavigators

            self.navigators = MockNavigators(context, range(n))
            self.executor.add_node(self.navigators)
            self.nodes.append(self.navigators)
            self.sim.add_step_listener(lambda fleet: self._navigate_actions())
        self.centres = self.sim.scenario.ring.zone_centres()  # [zone, (x, y)]
        self.client_node = rclpy.create_node("operator", context=context)
        self.executor.add_node(self.client_node)
        self.nodes.append(self.client_node)
        from std_srvs.srv import Trigger

        from altmarl_ros.names import RESUME_SERVICE, STOP_SERVICE
        # Made now, not at the call: a new client's first call can lose its answer under load (the
        # server answers before it has matched the client's response reader).
        self.operator = {service: self.client_node.create_client(Trigger, service)
                         for service in (STOP_SERVICE, RESUME_SERVICE)}
        self.last_command_wall = None
        from altmarl_msgs.msg import GlobalCommand

        from altmarl_ros.names import GLOBAL_COMMAND_TOPIC
        from altmarl_ros.nodes._ros import GLOBAL_COMMAND_QOS
        self.client_node.create_subscription(GlobalCommand, GLOBAL_COMMAND_TOPIC, self._on_command,
                                             GLOBAL_COMMAND_QOS)
        self.agents = _node_process("local_agents", self.params)
        self.coordinator = _node_process("coordinator", self.params)

    # ------------------------------------------------------------ what the robots are told

    def _on_command(self, msg) -> None:
        self.last_command_wall = time.monotonic()
        self.last_command_sim = msg.header.stamp.sec + msg.header.stamp.nanosec / 1e9

    def _is_hold(self, goal) -> bool:
        return not np.any(np.all(np.isclose(self.centres, goal, rtol=0, atol=1e-9), axis=1))

    def _on_goal(self, robot: int, msg) -> None:
        goal = (msg.pose.position.x, msg.pose.position.y)
        if self._watching and not self._is_hold(goal):
            self.violations += 1
        self.goals[robot] = goal

    def _navigate(self) -> None:
        """The stand-in navigators: go-to-goal from each robot's true pose (Nav2 would plan)."""
        from altmarl_sim.ring import go_to_goal

        poses = self.sim.sim.poses
        for i, goal in enumerate(self.goals):
            if goal is not None:
                v, w = go_to_goal(poses[i, 0], poses[i, 1], poses[i, 2], goal[0], goal[1], self.sim.scenario.limits)
                self.sim.commands[i] = float(v), float(w)
                self.sim.command_time[i] = self.sim.sim.time

    def _uncancelled(self, robot):
        """The robot's goals its navigator runs and has received no cancel for."""
        return [goal for goal in self.navigators.running(robot) if not goal.cancel_requested]

    def _navigate_actions(self) -> None:
        """The stand-in Nav2 navigators: go-to-goal towards the running goal, zero without one."""
        for i in range(self.n):
            running = self._uncancelled(i)
            position = running[-1].pose.pose.position if running else None
            self.goals[i] = None if position is None else (position.x, position.y)
            if self.goals[i] is None:
                self.sim.commands[i] = 0.0, 0.0
                self.sim.command_time[i] = self.sim.sim.time
        self._navigate()


    def _sim_now(self) -> float:
        return self.sim.sim.time

    def moving(self) -> bool:
        return float(np.abs(self.sim.commands[:self.n, 0]).max()) > 0.05

    def at_rest(self) -> bool:
        if self.command_type == "navigate_to_pose":
            return not any(self._uncancelled(i) for i in range(self.n))
        if self.command_type == "goal_pose":
            return all(goal is None or self._is_hold(goal) for goal in self.goals)
        return float(np.abs(self.sim.commands[:self.n]).max()) == 0.0

    # ------------------------------------------------------------ running

    def spin_until(self, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            self.executor.spin_once(timeout_sec=0.005)
        return done()

    def _measure(self, cause: str, since, timeout: float, clock=time.monotonic) -> Row:
        """Wait for rest, then watch HOLD_WATCH s for any command to move; since() -> the cause's time on
        `clock` (wall by default)."""
        rested = self.spin_until(self.at_rest, timeout)
        rest_time = clock()
        self.violations = 0
        self._watching = True
        velocities = self.command_type in ("twist", "twist_stamped")
        if velocities:
            self.sim.add_step_listener(self._count_moves)
        self.spin_until(lambda: False, HOLD_WATCH)
        self._watching = False
        if velocities:
            self.sim._step_listeners.remove(self._count_moves)
        if self.command_type == "navigate_to_pose":  # goals left in flight (one already on its way at the
            # stop may be accepted after it; it is cancelled as soon as its answer reaches the agents)
            self.violations = sum(len(self._uncancelled(i)) for i in range(self.n))
        seconds = rest_time - since() if rested else math.inf
        return Row(self.command_type, cause, seconds, self.violations)

    def _count_moves(self, fleet) -> None:
        if self._watching and np.abs(self.sim.commands[:self.n]).max() > 0.0:
            self.violations += 1

    def _drive(self, timeout: float = 60.0) -> None:
        if not self.spin_until(lambda: self.moving() and self.last_command_wall is not None
                               and not self.at_rest(), timeout):
            raise AssertionError(f"{self.command_type}: the robots never drove")

    def _call(self, service: str) -> float:
        from std_srvs.srv import Trigger

        client = self.operator[service]
        assert client.wait_for_service(timeout_sec=10.0), service
        called = time.monotonic()
        future = client.call_async(Trigger.Request())
        assert self.spin_until(future.done, 10.0) and future.result().success, service
        return called

    def run(self) -> List[Row]:
        from altmarl_ros.names import RESUME_SERVICE, STOP_SERVICE

        rows = []
        self._drive()  # before each cause the robots drive
        called = self._call(STOP_SERVICE)
        rows.append(self._measure("e-stop", lambda: called, 2 * COMMAND_TIMEOUT))
        self._call(RESUME_SERVICE)
        self._drive()

        self.coordinator.send_signal(signal.SIGSTOP)  # frozen: alive on the graph, silent
        rows.append(self._measure("stale", lambda: self.last_command_sim, 3 * COMMAND_TIMEOUT, self._sim_now))
        self.coordinator.send_signal(signal.SIGCONT)
        self._drive()

        self.coordinator.send_signal(signal.SIGKILL)
        rows.append(self._measure("coordinator killed", lambda: self.last_command_sim, 3 * COMMAND_TIMEOUT,
                                  self._sim_now))
        self.coordinator.wait(10)
        self.coordinator = _node_process("coordinator", self.params)
        self._drive()

        signalled = time.monotonic()
        self.agents.send_signal(signal.SIGINT)
        rows.append(self._measure("SIGINT", lambda: signalled, 2 * COMMAND_TIMEOUT))
        return rows

    def close(self) -> None:
        for child in (self.agents, self.coordinator):
            if child.poll() is None:
                child.send_signal(signal.SIGCONT)
                child.kill()
            child.wait(10)
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
