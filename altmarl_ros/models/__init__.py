"""Builders of the shipped models in config/models/ (python -m altmarl_ros.models.<name>)."""
