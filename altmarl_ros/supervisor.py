"""The process supervisor: run a fleet plan in one process or several, stop it cleanly.

One process: every node in one EventsExecutor with its own rclpy Context (the
cheapest way to run a simulated fleet on 2 cores). Several processes: one
child per node (`python -c "from altmarl_ros.nodes.X import main; main()"`,
the console script's body) with a generated parameter file; the coordinator
starts once the others are on the graph. Either way, SIGINT/SIGTERM stop every
node (children get SIGTERM, then SIGKILL after a grace period) and the run
returns 0; a child that dies on its own stops the rest and is reported;
children are killed with the supervisor (PR_SET_PDEATHSIG), so nothing is orphaned.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import yaml

from altmarl_ros import fleet_plan
from altmarl_ros.fleet_plan import ALL_NODES, LaunchError, NodeSpec
from altmarl_ros.nodes._kernels import warm_up_kernels  # noqa: F401 - the tests, benches and demo call it here

# Started once every other node is on the graph: its first decision starts the robots moving,
# so the first decision epoch finds the whole fleet listening (and the start state intact).
STARTS_LAST = ("coordinator",)
STARTUP_TIMEOUT_SEC = 120.0
GRAPH_SETTLE_SEC = 1.0


class FleetRun:
    """A started node set. Use as a context manager; `spin(seconds)` serves callbacks and watches children.

    `local_nodes(context)` builds extra nodes (e.g. the demo's welfare monitor) that always run
    in this process, in the same executor as the fleet (one process) or their own (several).
    A set `stop` event ends the start-up wait early (a signal while the children come up).
    """

    def __init__(self, specs: Sequence[NodeSpec], processes: bool = False,
                 local_nodes: Optional[Callable[[Any], Sequence[Any]]] = None,
                 stop: Optional[threading.Event] = None):
        self.specs = list(specs)
        self.processes = processes
        self._local_nodes_factory = local_nodes
        self._stop = stop or threading.Event()
        self.context = None
        self.executor = None
        self.nodes: List[Any] = []
        self.children: List[Tuple[NodeSpec, subprocess.Popen]] = []
        self._tmpdir = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _start(self):
        import rclpy
        from rclpy.context import Context
        from rclpy.node import Node
        from rclpy.signals import SignalHandlerOptions

        from altmarl_ros.nodes._ros import make_executor

        first = [spec for spec in self.specs if spec.kind not in STARTS_LAST]
        last = [spec for spec in self.specs if spec.kind in STARTS_LAST]
        if self.processes:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="altmarl-launch-")
            self.children = [(spec, self._spawn(spec)) for spec in first]
        self.context = Context()
        # The supervisor handles SIGINT/SIGTERM itself (see run()); rclpy must not shut down first.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        if self._local_nodes_factory is not None:
            self.nodes.extend(self._local_nodes_factory(self.context))
        if self.processes:
            # A node of our own to watch the graph while the children come up.
            self.nodes.append(Node(f"altmarl_launcher_{os.getpid()}", context=self.context))
        else:
            for spec in first + last:
                cls = fleet_plan.node_class(spec.kind)
                self.nodes.append(cls(params=dict(spec.parameters), context=self.context,
                                      cli_args=spec.ros_args()))
        self.executor = make_executor(self.context)
        for node in self.nodes:
            self.executor.add_node(node)
        if self.processes and last and self._wait_until_visible(first):
            self.children += [(spec, self._spawn(spec)) for spec in last]

    def _wait_until_visible(self, specs: Sequence[NodeSpec]) -> bool:
        """Serve callbacks until every node of `specs` is on the ROS graph and the graph's
        endpoints have stopped changing for GRAPH_SETTLE_SEC (its topics are discovered), or fail.
        False if `stop` was set meanwhile."""
        watcher = self.nodes[-1]
        wanted = {(spec.name, f"/{spec.namespace}") for spec in specs}
        deadline = time.monotonic() + STARTUP_TIMEOUT_SEC
        endpoints, stable_since = None, None
        while True:
            missing = wanted - set(watcher.get_node_names_and_namespaces())
            if not missing:
                now_endpoints = _endpoint_count(watcher)
                if now_endpoints != endpoints:
                    endpoints, stable_since = now_endpoints, time.monotonic()
                elif time.monotonic() - stable_since >= GRAPH_SETTLE_SEC:
                    return True
            if self._stop.is_set():
                return False
            failed = self.failed_child()
            if failed is not None:
                raise _exited(*failed)
            if time.monotonic() > deadline:
                if not missing:
                    return True  # every node is there; the graph is just busy
                names = ", ".join(sorted(f"{ns.rstrip('/')}/{name}" for name, ns in missing))
                raise LaunchError(f"nodes not on the ROS graph after {STARTUP_TIMEOUT_SEC:g} s: {names} "
                                  f"(check ROS_DOMAIN_ID / ROS_AUTOMATIC_DISCOVERY_RANGE)")
            self.executor.spin_once(timeout_sec=0.1)

    def _spawn(self, spec: NodeSpec) -> subprocess.Popen:
        params_file = Path(self._tmpdir.name) / f"{spec.label.strip('/').replace('/', '.')}.yaml"
        params_file.write_text(yaml.safe_dump({ALL_NODES: {"ros__parameters": dict(spec.parameters)}}))
        module = fleet_plan.NODE_CLASSES[spec.kind][0]
        boot = (f"from altmarl_ros.nodes._stop import catch_stop_signals, die_with_parent; "
                f"die_with_parent({os.getpid()}); catch_stop_signals(); "
                f"import sys; from {module} import main; sys.exit(main())")  # main warms the kernels up
        argv = [sys.executable, "-c", boot] + spec.ros_args() + ["--params-file", str(params_file)]
        # Own session: a terminal's Ctrl-C reaches only the supervisor, which stops the children itself.
        return subprocess.Popen(argv, start_new_session=True)

    def failed_child(self) -> Optional[Tuple[NodeSpec, int]]:
        """The first child that exited on its own, with its exit code."""
        for spec, child in self.children:
            code = child.poll()
            if code is not None:
                return spec, code
        return None

    def spin(self, seconds: float) -> None:
        """Serve callbacks of this process's nodes for about `seconds`."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=remaining)

    def close(self, grace: float = 10.0) -> None:
        """Stop children (SIGTERM, then SIGKILL after `grace` s) and destroy in-process nodes.

        SIGTERM, not SIGINT: rclpy turns it into a context shutdown that the node's spin loop
        sees between callbacks, where SIGINT would raise KeyboardInterrupt inside one.
        """
        import rclpy

        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            alive = [child for _, child in self.children if child.poll() is None]
            if not alive:
                break
            for child in alive:
                child.send_signal(signum)
            deadline = time.monotonic() + wait
            for child in alive:
                try:
                    child.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        if self.executor is not None:
            self.executor.shutdown()
            self.executor = None
        for node in self.nodes:
            node.destroy_node()
        self.nodes = []
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
            self.context = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def _endpoint_count(node) -> int:
    """Publishers + subscriptions on every topic of the graph, as `node` sees it."""
    return sum(node.count_publishers(name) + node.count_subscribers(name)
               for name, _ in node.get_topic_names_and_types())


def _exited(spec: NodeSpec, code: int) -> LaunchError:
    return LaunchError(f"node {spec.label} ({spec.executable}) exited with code {code} "
                       f"(its error is printed above); stopped the other nodes")


@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a set threading.Event for the duration (main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(specs: Sequence[NodeSpec], *, processes: bool = False, duration: Optional[float] = None,
        local_nodes=None, on_tick: Optional[Callable[[], bool]] = None, tick: float = 0.5) -> int:
    """Run the node set until `duration` wall seconds pass, `on_tick()` returns True, or a signal.

    Returns 0 on all three; raises LaunchError if a node process exits by itself.
    """
    with stop_on_signals() as stop, FleetRun(specs, processes, local_nodes, stop) as fleet:
        end = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            fleet.spin(tick if end is None else max(0.0, min(tick, end - time.monotonic())))
            failed = fleet.failed_child()
            if failed is not None:
                raise _exited(*failed)
            if on_tick is not None and on_tick():
                break
            if end is not None and time.monotonic() >= end:
                break
    return 0


# ROS 2 domains a demo may take for itself: FastDDS's ports fit 0..232; 1..100 leaves room for a
# site's own choices above, and tests (test/conftest.py) use the same range at random.
PRIVATE_DOMAINS = range(1, 101)
_held_domain = None  # the lock file that holds this process's domain (released at exit)


def claim_private_ros_domain() -> int:
    """Set ROS_DOMAIN_ID to a domain no other altmarl process on this host holds, and hold it.

    Two simulated fleets on one domain feed every node two clocks and two sets of robots
    (a demo scored 32.6 that way); LOCALHOST discovery does not separate processes of one host.
    Each domain is held by an flock on a file in the temp directory, released when the process
    exits, so concurrent demos get different domains. A ROS_DOMAIN_ID set by the user is kept.
    """
    import fcntl
    import random

    global _held_domain
    if os.environ.get("ROS_DOMAIN_ID"):
        return int(os.environ["ROS_DOMAIN_ID"])
    if _held_domain is not None:
        return _held_domain[0]
    candidates = list(PRIVATE_DOMAINS)
    random.SystemRandom().shuffle(candidates)
    for domain in candidates:
        handle = open(Path(tempfile.gettempdir()) / f"altmarl-ros-domain-{domain}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held_domain = (domain, handle)
        os.environ["ROS_DOMAIN_ID"] = str(domain)
        return domain
    raise LaunchError(f"every ROS domain {PRIVATE_DOMAINS.start}..{PRIVATE_DOMAINS.stop - 1} is held by another "
                      f"altmarl process on this host; set ROS_DOMAIN_ID yourself")


FOREIGN_CHECK_SEC = 1.0  # discovery on one host answers well within this


def refuse_foreign_publishers(topics: Sequence[str], wait: float = FOREIGN_CHECK_SEC) -> None:
    """Before a fleet starts: refuse when another node already publishes on one of its topics (a second
    fleet or a bag replay on this domain would mix into every decision and every measured reward)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    found: List[str] = []
    try:
        node = rclpy.create_node("altmarl_domain_probe", context=context)
        deadline = time.monotonic() + wait
        while not found and time.monotonic() < deadline:
            found = [topic for topic in topics if node.count_publishers(topic) > 0]
            time.sleep(0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    if found:
        raise LaunchError(f"ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')}: {found[0]} already has a "
                          f"publisher ({len(found)} of the fleet's topics do): another fleet or a replay runs on "
                          f"this domain; stop it, or unset ROS_DOMAIN_ID to let the demo take a free one")
