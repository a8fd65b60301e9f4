"""Every planned node's parameter table (name -> accepted Python types), with no ROS or numeric import.

The launch files read these tables through altmarl_ros.fleet_plan under the plain
python of a ROS install, which has neither numba nor this package's venv: so the
tables live here, not in the node modules. Each node class takes its table from
NODE_PARAMETERS and declares nothing else (nodes/_params.py refuses an unlisted
parameter), so a fleet file and a node cannot drift apart.
"""
STRING, BOOL, INTEGER, NUMBER, ROBOT_IDS = (str,), (bool,), (int,), (int, float), (int, list)
SCENARIO, POLICY = {"scenario": STRING}, {"policy": STRING}
ROSTER = {"n_robots": INTEGER, "robot_names": (list, type(None)), "robot_template": STRING}  # declare_roster
ROBOTS = {**ROSTER, "robots": ROBOT_IDS}  # declare_robots
ROBOT_COUNT = {"n_robots": INTEGER, "robots": ROBOT_IDS}  # n_robots + declare_robot_ids
POSE_SOURCE = {"pose_source": STRING, "map_frame": STRING, "pose_topic": STRING}  # _poses.declare_pose_source
COMMAND_TYPE = {"command_type": STRING}
CONTROL_PERIOD = {"control_period": NUMBER}
# The string parameters with a fixed set of values (the nodes' declare_choice and the fleet file's checks).
POSE_SOURCES = ("odometry", "tf", "pose_topic")  # nodes/_poses.py: each PoseSource's KIND
ODOM_FRAME_MODES = ("map", "per_robot")  # fleet_sim
STATE_SAMPLINGS = ("request", "subscribe_all")  # coordinator: nodes/_sampling.py

NODE_PARAMETERS = {
    "fleet_sim": {**SCENARIO, **CONTROL_PERIOD, **ROSTER, **COMMAND_TYPE, "seed": INTEGER,
                  "real_time_factor": NUMBER, "cmd_vel_timeout": NUMBER, "max_command_wait": NUMBER,
                  "hold_until_decision": BOOL, "publish_tf": BOOL,
                  "odom_frames": STRING},
    "coordinator": {**SCENARIO, **POLICY, **ROBOTS, **CONTROL_PERIOD, **POSE_SOURCE, **COMMAND_TYPE, "k": INTEGER,
                    "decision_period": NUMBER, "odom_timeout": NUMBER, "seed": INTEGER, "state_sampling": STRING,
                    "request_lead": NUMBER},
    "local_agents": {**SCENARIO, **POLICY, **ROBOTS, **CONTROL_PERIOD, **POSE_SOURCE, **COMMAND_TYPE,
                     "command_timeout": NUMBER, "max_clock_skew": NUMBER, "odom_timeout": NUMBER, "seed": INTEGER},
    "markers": {**SCENARIO, **ROBOTS, **POSE_SOURCE, "marker_period": NUMBER, "odom_timeout": NUMBER},
}
