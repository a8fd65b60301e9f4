"""altmarl_sim: Gazebo-free kinematic fleet simulator and scenario worlds."""
