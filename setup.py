"""ament_python package altmarl_ros (the ROS interfaces live in msg/, package altmarl_msgs)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "altmarl_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ALTERNATING-MARL (Anand & Karmarkar 2026) for ROS 2 robot fleets",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["altmarl_ros", "altmarl_ros.*"]) + ["altmarl_sim"],
    # sim/ is imported as altmarl_sim so it cannot collide with anyone's `sim` module.
    package_dir={"altmarl_sim": "sim"},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        ("bin", ["scripts/altmarl"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.npz")),
        (f"share/{PACKAGE}/config/scenarios", glob("config/scenarios/*.yaml")),
        (f"share/{PACKAGE}/config/models", glob("config/models/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "altmarl = altmarl_ros.cli:main",
            "altmarl_fleet_sim = altmarl_ros.nodes.fleet_sim:main",
            "altmarl_coordinator = altmarl_ros.nodes.coordinator:main",
            "altmarl_local_agents = altmarl_ros.nodes.local_agents:main",
            "altmarl_markers = altmarl_ros.nodes.markers:main",
            "altmarl_recorder = altmarl_ros.nodes.recorder:main",
        ],
    },
)
