"""altmarl_ros: ALTERNATING-MARL for ROS 2 robot fleets.

`altmarl_ros.core` is the numeric core (numba, no ROS import); `altmarl_ros.nodes`
are the thin rclpy shells around it; `altmarl_sim` (sim/) is the kinematic fleet simulator.
"""

__version__ = "0.1.0"
