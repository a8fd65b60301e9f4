"""Numeric core: no rclpy import anywhere below this package."""
