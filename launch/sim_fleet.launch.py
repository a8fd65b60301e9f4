"""Simulated fleet on a ROS 2 install: fleet_sim + coordinator + local_agents (all robots) + markers + RViz.

    ros2 launch altmarl_ros sim_fleet.launch.py n_robots:=200 k:=10 rviz:=false

Nodes and parameters come from the fleet description (config/fleet.yaml, or
fleet:=FILE) through altmarl_ros.fleet_plan, the same plan `altmarl launch` runs
where the launch packages are missing. Arguments: docs/launch.md.
"""
from altmarl_ros.fleet_plan import ros2_launch_description


def generate_launch_description():
    return ros2_launch_description("sim")
