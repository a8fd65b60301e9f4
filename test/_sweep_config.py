"""The shipped sweep config (config/sweep.yaml) as the sweep tests edit it: its models' paths made absolute, so an
edited copy written to tmp_path still finds them."""
from pathlib import Path

import yaml

SWEEP_CONFIG = Path(__file__).resolve().parents[1] / "config" / "sweep.yaml"


def shipped_sweep_config() -> dict:
    config = yaml.safe_load(SWEEP_CONFIG.read_text())
    for spec in config["models"].values():
        if "model" in spec:
            spec["model"] = str(SWEEP_CONFIG.parent / spec["model"])
    return config
