"""Shared test set-up: isolate every ROS graph to this host and a random domain.

Set before any rclpy import so DDS discovery never reaches other machines or
another test run sharing the network.
"""
import os
import random

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))

import pytest  # noqa: E402


@pytest.fixture
def ros_context():
    """A private rclpy Context, shut down after the test (nodes must be destroyed by the test)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)
