"""Where the package's shipped config files (scenarios, models, fleet.yaml, altmarl.rviz) are found.

Two places, in this order: the source checkout's config/ (a developer's tree, or
the editable install), then share/altmarl_ros/config/ of every prefix on
AMENT_PREFIX_PATH (a colcon install, with or without --symlink-install). No
rclpy import: the simulator and the CLI use this too.
"""
from pathlib import Path
from typing import List

PACKAGE = "altmarl_ros"
SOURCE_CONFIG = Path(__file__).resolve().parent.parent / "config"


def config_dirs(sub: str = "") -> List[Path]:
    """Existing directories config/<sub> in search order (see the module docstring)."""
    candidates = [SOURCE_CONFIG / sub]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / sub)
    except (ImportError, LookupError, OSError, ValueError):  # not installed, or AMENT_PREFIX_PATH unset
        pass
    unique = []
    for directory in candidates:
        if directory.is_dir() and directory.resolve() not in [d.resolve() for d in unique]:
            unique.append(directory)
    return unique


def find_config(relative: str) -> Path:
    """The first config/<relative> that exists, else the source checkout's path (for the error message)."""
    for directory in config_dirs():
        if (directory / relative).is_file():
            return directory / relative
    return SOURCE_CONFIG / relative
