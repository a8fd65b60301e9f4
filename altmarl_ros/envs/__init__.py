"""Environments for third-party learners: PettingZoo wrappers of the models and the simulator (pettingzoo.py)."""
