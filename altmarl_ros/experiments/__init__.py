"""Experiments over the numeric core: the k-sweep (sweep.py) and its report (report.py)."""
