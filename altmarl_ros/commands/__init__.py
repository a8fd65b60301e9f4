"""Subcommands of the `altmarl` console script, one module each.

A command module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`. Keep module import cheap: import numba/rclpy inside `run`.
"""
