"""Two test hosts on one machine: two network namespaces joined by a veth pair (needs root).

    with two_hosts() as (coordinator_host, fleet_host):
        proc = fleet_host.popen([sys.executable, "-c", "..."], env=fleet_host.ros_env())
        ...
        coordinator_host.link_down()   # a network partition; link_up() heals it

Each host has only `lo` and its end of the veth (addresses 10.231.0.1/24 and
10.231.0.2/24, private to the namespaces: no other machine or test run can see
them), plus a multicast route over the veth so DDS discovery (multicast, the
default ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET) crosses the link as it would
between two machines. Namespace and interface names carry the pid and a random
token, so concurrent test runs do not collide. On exit every process still
running in either namespace is killed and both namespaces are deleted (which
deletes the veth pair).

`unavailable()` says why the machine cannot do this (not root, no `ip`, no netns
support) so a test can skip with that reason; CI runs as root.
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence

SUBNET = "10.231.0"
PREFIX_LEN = 24
MULTICAST = "224.0.0.0/4"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=10)


def unavailable() -> Optional[str]:
    """None if two_hosts() can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"amprobe{os.getpid()}{secrets.token_hex(2)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Host:
    """One end of the link: a network namespace with its veth interface and address."""

    def __init__(self, netns: str, interface: str, address: str):
        self.netns, self.interface, self.address = netns, interface, address
        self.processes: List[subprocess.Popen] = []

    def popen(self, argv: Sequence[str], env: Optional[Dict[str, str]] = None, **kwargs) -> subprocess.Popen:
        """Start argv inside this host (`ip netns exec` execs it, so the Popen pid is the program's)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], env=env, **kwargs)
        self.processes.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float = 30.0, **kwargs) -> subprocess.CompletedProcess:
        """Run argv inside this host to completion (stdout/stderr captured as text)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    def ros_env(self, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """The environment of a ROS process on this host, as on a real one.

        DDS discovery uses its default range (SUBNET: multicast over the veth), not the
        LOCALHOST the rest of the suite uses. Fast DDS's shared-memory transport is
        switched off: two real hosts share no /dev/shm, and here they would, so data could
        bypass the link. ROS_DOMAIN_ID is kept (the suite's random one).
        """
        env = dict(os.environ if base is None else base)
        env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
        env.pop("ROS_LOCALHOST_ONLY", None)
        env.pop("ROS_STATIC_PEERS", None)
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
        return env

    def link_down(self) -> None:
        """Cut the link (both ends lose carrier): a network partition."""
        _ip("-n", self.netns, "link", "set", self.interface, "down")

    def link_up(self) -> None:
        _ip("-n", self.netns, "link", "set", self.interface, "up")
        # Bringing the interface down drops its routes; the connected one comes back by itself.
        _ip("-n", self.netns, "route", "replace", MULTICAST, "dev", self.interface)

    def packets(self) -> Dict[str, int]:
        """{'rx': ..., 'tx': ...} packets counted on this host's veth end (proof traffic crossed)."""
        return self._counted("packets")

    def link_bytes(self) -> Dict[str, int]:
        """{'rx': ..., 'tx': ...} bytes counted on this host's veth end (Ethernet frames: what crossed the link)."""
        return self._counted("bytes")

    def _counted(self, what: str) -> Dict[str, int]:
        shown = json.loads(_ip("-n", self.netns, "-s", "-j", "link", "show", "dev", self.interface).stdout)
        stats = shown[0]["stats64"]
        return {"rx": int(stats["rx"][what]), "tx": int(stats["tx"][what])}

    def kill_all(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL, every process in this namespace (only this test's: the namespace is private)."""
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            pids = [int(p) for p in _ip("netns", "pids", self.netns, check=False).stdout.split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _ip("netns", "pids", self.netns, check=False).stdout.strip():
                time.sleep(0.05)
        for proc in self.processes:
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass


@contextmanager
def two_hosts():
    """Yield (host_a, host_b) joined by a veth pair; tear everything down on exit."""
    token = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    hosts = [Host(f"altmarl-{token}-{side}", f"am{token}{side}", f"{SUBNET}.{index}")
             for index, side in ((1, "a"), (2, "b"))]
    created: List[str] = []
    try:
        for host in hosts:
            _ip("netns", "add", host.netns)
            created.append(host.netns)
        a, b = hosts
        _ip("link", "add", a.interface, "netns", a.netns, "type", "veth", "peer", "name", b.interface,
            "netns", b.netns)
        for host in hosts:
            _ip("-n", host.netns, "link", "set", "lo", "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/{PREFIX_LEN}", "dev", host.interface)
            _ip("-n", host.netns, "link", "set", host.interface, "up")
            _ip("-n", host.netns, "route", "add", MULTICAST, "dev", host.interface)
        yield a, b
    finally:
        for host in hosts:
            if host.netns in created:
                host.kill_all()
        for netns in created:
            _ip("netns", "del", netns, check=False)
