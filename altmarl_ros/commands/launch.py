"""`altmarl launch`: start the fleet's nodes from config/fleet.yaml without the ROS 2 launch packages."""
from altmarl_ros.commands._flags import real
from altmarl_ros.commands._record import add_record_arguments, check_record_output, recorder_nodes

from altmarl_ros.errors import UsageError

HELP = "start the fleet's ROS 2 nodes (sim or real) from the fleet description, in one process or several"


def add_arguments(parser):
    parser.add_argument("--fleet", metavar="FILE", help="fleet description (default: config/fleet.yaml)")
    parser.add_argument("--mode", choices=("sim", "real"), default="sim",
                        help="sim: fleet_sim + coordinator + local_agents + markers; real: coordinator + "
                             "one local agent per robot in its namespace + markers (default: sim)")
    parser.add_argument("--processes", action="store_true",
                        help="one process per node instead of all nodes in one process")
    parser.add_argument("--duration", type=real(0, 1e9, above=True), metavar="S",
                        help="stop after S wall-clock seconds (default: run until Ctrl-C / SIGTERM)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a fleet parameter, e.g. --set n_robots=50 --set k=5 (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything a launch checks (fleet file, scenario, policy, k), print the node "
                             "plan and exit")
    parser.add_argument("--print-commands", action="store_true",
                        help="print the `ros2 run` line of every planned node (one per host on a real fleet: "
                             "each robot's agent on its robot) and exit")
    add_record_arguments(parser)


def run(args) -> int:
    from altmarl_ros import fleet_plan, supervisor

    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration {args.duration}: must be > 0 seconds")
    fleet = fleet_plan.load_fleet(args.fleet, fleet_plan.parse_overrides(args.set))
    fleet_plan.check_start_time(fleet, args.duration)
    check_record_output(args, [args.fleet, fleet.common.get("policy"), fleet.common.get("scenario")])
    specs = fleet_plan.plan_nodes(fleet, args.mode)
    fleet_plan.check_fleet(fleet, args.mode)  # what the nodes check at start, so --dry-run refuses it too
    if args.print_commands:
        for spec in specs:
            print(spec.ros2_run(args.fleet or "fleet.yaml"))
        return 0
    if args.dry_run:
        for spec in specs:
            print(f"{spec.label:<28} {spec.executable:<22} {dict(spec.parameters)}")
        return 0
    how = f"{len(specs)} processes" if args.processes else "one process"
    print(f"altmarl launch: {len(specs)} nodes ({args.mode} fleet of {fleet.n_robots} robots, "
          f"k={fleet.common.get('k', 'the policy')}) in {how}; Ctrl-C stops", flush=True)
    return supervisor.run(specs, processes=args.processes, duration=args.duration,
                          local_nodes=lambda context: recorder_nodes(args, fleet.n_robots, args.mode == "sim",
                                                                     context))
