"""test/_netns.py itself: two namespaces that reach each other only over their veth pair.

Checked with plain UDP between the two hosts: a datagram crosses while the link
is up, none crosses while it is down, and crossing resumes after link_up().
"""
import subprocess
import sys

import pytest

import _netns

pytestmark = pytest.mark.skipif(_netns.unavailable() is not None, reason=str(_netns.unavailable()))

PORT = 47123
RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", %d)); s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
try:
    print(s.recv(64).decode(), flush=True)
except socket.timeout:
    print("timeout", flush=True)
""" % PORT
SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    try:
        s.sendto(b"hello", (sys.argv[1], %d))
    except OSError:
        pass
    time.sleep(0.1)
""" % PORT


def _exchange(sender, receiver, wait: float) -> str:
    listening = receiver.popen([sys.executable, "-c", RECEIVE, str(wait)], stdout=subprocess.PIPE, text=True)
    assert listening.stdout.readline().strip() == "ready"
    sender.run([sys.executable, "-c", SEND, receiver.address])
    out, _ = listening.communicate(timeout=wait + 10)
    return out.strip()


def test_two_hosts_talk_only_over_the_link():
    with _netns.two_hosts() as (a, b):
        assert a.address != b.address
        before = b.packets()["rx"]
        assert _exchange(a, b, wait=5.0) == "hello"
        assert b.packets()["rx"] > before
        a.link_down()
        assert _exchange(a, b, wait=1.0) == "timeout"
        a.link_up()
        assert _exchange(a, b, wait=5.0) == "hello"
        netns = (a.netns, b.netns)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in netns), "namespaces left behind"
