"""Real fleet on a ROS 2 install: coordinator + one local agent per robot (namespace robot_<i>) + markers.

    ros2 launch altmarl_ros real_fleet.launch.py n_robots:=20 k:=5 policy:=/path/policy.npz

The robots' drivers provide robot_<i>/odom and take robot_<i>/cmd_vel; the depot
robot provides depot/odom and takes depot/cmd_vel. Nodes and parameters come
from the fleet description through altmarl_ros.fleet_plan (as `altmarl launch
--mode real`). Arguments and multi-host use: docs/launch.md.
"""
from altmarl_ros.fleet_plan import ros2_launch_description


def generate_launch_description():
    return ros2_launch_description("real")
