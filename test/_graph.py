"""An in-process ROS graph for tests: nodes on one EventsExecutor in the test's own Context."""
import time

from altmarl_ros.nodes._ros import make_executor


class Graph:
    """Nodes sharing one EventsExecutor; every node is destroyed by close()."""

    def __init__(self, context):
        self.context = context
        self.executor = make_executor(context)
        self.nodes = []

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def remove(self, node):
        self.executor.remove_node(node)
        self.nodes.remove(node)
        node.destroy_node()

    def spin_until(self, done, timeout, every=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if every is not None:
                every()
            if done():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return done()

    def close(self):
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
