"""Stand-in nodes for test_launcher.py: exercise the launcher's mechanics without the fleet's nodes.

Each `Greeter` says its name on launch_test/hello and listens there. It writes
<name>.ready into $ALTMARL_TEST_MARKS once it has heard `peers` other nodes
(so the graph really connects), and <name>.stopped when it is destroyed
(so shutdown really ran). Its pid goes into <name>.pid.
"""
import os
from pathlib import Path

from std_msgs.msg import String

from altmarl_ros.node_parameters import INTEGER
from altmarl_ros.nodes._params import declare_int
from altmarl_ros.nodes._ros import AltmarlNode, run_node


class Greeter(AltmarlNode):
    DEFAULT_NAME = "greeter"
    PARAMETERS = {"peers": INTEGER}

    def setup(self):
        self.marks = Path(os.environ["ALTMARL_TEST_MARKS"])
        self.peers = declare_int(self, "peers", 1, "other nodes to hear from before marking ready", minimum=1)
        self.heard = set()
        self.publisher = self.create_publisher(String, "/launch_test/hello", 10)
        self.create_subscription(String, "/launch_test/hello", self.on_hello, 10)
        self.create_timer(0.1, lambda: self.publisher.publish(String(data=self.get_name())))
        self._mark("pid", str(os.getpid()))

    def on_hello(self, msg):
        if msg.data != self.get_name() and msg.data not in self.heard:
            self.heard.add(msg.data)
            if len(self.heard) == self.peers:
                self._mark("ready")

    def destroy_node(self):
        self._mark("stopped")
        return super().destroy_node()

    def _mark(self, what, text=""):
        (self.marks / f"{self.get_name()}.{what}").write_text(text)


def main(args=None):
    return run_node(Greeter, args)
