"""--record / --record-odometry for the commands that run a fleet (demo, launch): a recorder node
(nodes/recorder.py) in the supervisor's process, its output path checked before any work."""


def add_record_arguments(parser) -> None:
    parser.add_argument("--record", metavar="FILE.mcap",
                        help="record the GlobalCommands and the depot's odometry to this MCAP file (Foxglove, "
                             "rosbag2 and `altmarl replay` read it; docs/operations.md, Recording and replay)")
    parser.add_argument("--record-odometry", action="store_true",
                        help="with --record: also record every robot's odometry (robot_<i>/odom)")


def check_record_output(args, inputs=()):
    """The --record path, checked like every output before any work (None without --record)."""
    from altmarl_ros.core.atomic import check_output
    from altmarl_ros.errors import UsageError

    if args.record is None:
        if args.record_odometry:
            raise UsageError("--record-odometry records into the --record file: give --record FILE.mcap too")
        return None
    return check_output(args.record, inputs, flag="--record")


def recorder_nodes(args, n_robots: int, use_sim_time: bool, context) -> list:
    """[the recorder node] for supervisor.run's local_nodes (none without --record)."""
    if args.record is None:
        return []
    from altmarl_ros.nodes.recorder import RecorderNode

    params = {"output": str(args.record), "record_odometry": bool(args.record_odometry),
              "robots": n_robots, "use_sim_time": use_sim_time}
    return [RecorderNode(params, context=context)]
