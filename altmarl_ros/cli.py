"""The `altmarl` console script: one subcommand per module in altmarl_ros.commands."""
import argparse
import importlib
import os
import pkgutil
import sys

from altmarl_ros import __version__, commands
from altmarl_ros.commands._flags import memory_size, work_duration
from altmarl_ros.core import budget, work
from altmarl_ros.environment import check_environment, check_stdout
from altmarl_ros.errors import AltmarlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="altmarl",
        description="ALTERNATING-MARL for ROS 2 fleets: train, evaluate, sweep, render, demo.",
    )
    parser.add_argument("--version", action="version", version=f"altmarl_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        # argparse %-formats help strings ('95% CI' would raise at --help); descriptions are not.
        cmd = sub.add_parser(info.name, help=module.HELP.replace("%", "%%"), description=module.HELP)
        module.add_arguments(cmd)
        cmd.add_argument("--max-memory", type=memory_size, metavar="SIZE",
                         help="memory budget for input-sized arrays, e.g. 16G (default: half the RAM; "
                              "see docs/operations.md, Limits)")
        cmd.add_argument("--max-work", type=work_duration, metavar="DURATION",
                         help="ceiling on the work a command accepts, in estimated time, e.g. 48h "
                              "(default 6h; see docs/operations.md, Limits)")
        cmd.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `altmarl`: the list of commands, as a usage error
        parser.print_help(sys.stderr)
        return 2
    if args.max_memory is not None:
        budget.set_limit(args.max_memory)
        os.environ[budget.ENV_VAR] = str(args.max_memory)  # for node processes started from here
    if args.max_work is not None:
        work.set_limit(args.max_work)
        os.environ[work.ENV_VAR] = str(args.max_work)
    try:
        check_environment(args.command)
        check_stdout()
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not as a traceback at exit
        return status
    except AltmarlError as err:
        print(f"altmarl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        print(f"altmarl {args.command}: error: stdout: the reader closed the pipe before the output was "
              f"written", file=sys.stderr)
        return 2
    except OSError as err:
        if not _is_stdout_error(err):
            raise
        _silence_stdout()
        print(f"altmarl {args.command}: error: stdout: cannot write the output ({err.strerror}); "
              f"redirect it to a file with room", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"altmarl {args.command}: interrupted", file=sys.stderr)
        return 130


def _is_stdout_error(err: OSError) -> bool:
    """An error writing stdout (a full disk, /dev/full), not one of the command's own files."""
    import errno

    return err.errno in (errno.ENOSPC, errno.EPIPE, errno.EIO) and err.filename is None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
