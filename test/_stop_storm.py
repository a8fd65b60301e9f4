"""Child process for test_command_safety: CLIENTS operators call altmarl/stop CALLS times each, all at once.

    python _stop_storm.py CLIENTS CALLS

Waits until the service is up, sends every call, then prints "<answered> <total> <ms from first call to
last answer>". Its own process and a SingleThreadedExecutor, as `ros2 service call` would be.
The clients keep every response (SERVICE_QOS): with FastDDS every client of a service receives every
client's responses into its own queue, so a default depth-10 client that is one of many callers loses its
own answers to the others' (measured: 20-62 of 200 answered although the service served all 200).
"""
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import Trigger

from altmarl_ros.names import STOP_SERVICE
from altmarl_ros.nodes._ros import SERVICE_QOS


def main(clients: int, calls: int) -> None:
    rclpy.init()
    node = rclpy.create_node("operators")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    operators = [node.create_client(Trigger, STOP_SERVICE, qos_profile=SERVICE_QOS) for _ in range(clients)]
    for client in operators:
        client.wait_for_service(timeout_sec=30.0)
    # wait_for_service sees the request topic matched; the response topic may match a moment later, and a
    # response sent before that is lost (a known DDS race of ROS 2 services, any server): let it settle.
    settle = time.monotonic() + 2.0
    while time.monotonic() < settle:
        executor.spin_once(timeout_sec=0.05)
    started = time.monotonic()
    futures = [client.call_async(Trigger.Request()) for client in operators for _ in range(calls)]
    while not all(f.done() for f in futures) and time.monotonic() - started < 10.0:
        executor.spin_once(timeout_sec=0.01)
    answered = sum(f.done() and f.result().success for f in futures)
    print(answered, len(futures), round(1000 * (time.monotonic() - started)), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
