"""`altmarl sweep`: the paper's k-sweep with baselines, resumable, and its report."""
import contextlib
import sys
import time
from pathlib import Path

from altmarl_ros.commands import print_json
from altmarl_ros.errors import UsageError

HELP = ("run ALTERNATING-MARL (under each observer of the grid) and baselines over a grid of k (resumable); "
        "--report regenerates docs/results.md and its figures")
REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_CANDIDATES = (
    REPO_ROOT / "config" / "sweep.yaml",  # source checkout
    Path(sys.prefix) / "share" / "altmarl_ros" / "config" / "sweep.yaml",  # installed data files
)


def _default_config():
    return str(next((path for path in CONFIG_CANDIDATES if path.exists()), CONFIG_CANDIDATES[0]))


class _LineProgress:
    """The progress calls run_sweep makes, printed as one stderr line per finished unit."""

    def __init__(self, desc, total):
        self.desc, self.total, self.done, self.unit = desc, total, 0, ""
        self.started = time.perf_counter()

    def set_postfix_str(self, text):
        self.unit = text

    def update(self, count):
        self.done += count
        print(f"{self.desc}: {self.done}/{self.total} {self.unit} "
              f"({time.perf_counter() - self.started:.0f} s)", file=sys.stderr, flush=True)


def _cluster(address):
    """A dask Client for --cluster (experiments/cluster.py), or None: the units run here."""
    if address is None:
        return contextlib.nullcontext()
    from altmarl_ros.experiments.cluster import connect

    return connect(address)


def add_arguments(parser):
    parser.add_argument("--config", default=_default_config(),
                        help="sweep config (default: config/sweep.yaml)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="grid", const="quick",
                      help="the quick grid, fresh and filter observers (about 40 min of units on 2 shared cores)")
    size.add_argument("--tiny", action="store_const", dest="grid", const="tiny",
                      help="the tiny grid the test suite runs")
    size.add_argument("--grid", dest="grid", help="any grid named in the config (default: full), or under its "
                                                  "continuous_grids (a continuous model: setup_b, setup_b_tiny)")
    parser.set_defaults(grid="full")
    parser.add_argument("--out", help="results directory (default: runs/sweep/<grid>)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="compute the units on a Dask cluster: a scheduler's address (tcp://HOST:8786) or "
                             "local:N (N worker processes here); same files as a local run (requirements-cluster.txt)")
    parser.add_argument("--report", action="store_true",
                        help="after the sweep, regenerate the grid's section of --doc and its figures")
    parser.add_argument("--report-only", action="store_true",
                        help="regenerate the report from existing results without computing anything")
    parser.add_argument("--doc", default=str(REPO_ROOT / "docs" / "results.md"),
                        help="Markdown file whose generated section is rewritten (default: docs/results.md)")
    parser.add_argument("--figures", help="PNG directory (default: figures/ next to --doc)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (points computed/skipped, seconds, files)")


def _check_outputs(args, out_dir: Path, grid, grid_name: str) -> Path:
    """Every file and directory the sweep and its report write, checked before any work
    (core.atomic): none may be an input of this run (the config, the models it names,
    the results the report reads), a directory where a file goes, or a special file."""
    from altmarl_ros.core.atomic import check_output, check_output_dir
    from altmarl_ros.experiments.report import FIGURE_NAMES, figure_path
    from altmarl_ros.experiments.sweep import RESULT_FILES

    models = [] if grid is None else [spec.path for spec in grid.models]
    results = [out_dir / name for name in RESULT_FILES]
    if not args.report_only:
        check_output_dir(out_dir, [args.config, *models], flag="--out")
        for path in results:
            check_output(path, [args.config, *models], flag="--out")
    figure_dir = Path(args.figures) if args.figures else Path(args.doc).parent / "figures"
    if args.report or args.report_only:
        inputs = [args.config, *models, *results]
        check_output(Path(args.doc), inputs, flag="--doc")
        check_output_dir(figure_dir, inputs + [args.doc], flag="--figures")
        for name in FIGURE_NAMES:
            check_output(figure_path(figure_dir, grid_name, name), inputs + [args.doc], flag="--figures")
    return figure_dir


def run(args):
    from altmarl_ros.experiments.continuous_sweep import continuous_grids, run as run_continuous

    if args.grid in continuous_grids(args.config):  # a built-in continuous model's grid (docs/continuous.md)
        return run_continuous(args, args.grid)
    from altmarl_ros.experiments.report import write_report
    from altmarl_ros.experiments.sweep import count_units, load_grid, load_results, run_sweep

    if args.cluster is not None and args.report_only:
        raise UsageError("--cluster", "does not apply with --report-only, which computes nothing: drop one")
    out_dir = Path(args.out or Path("runs") / "sweep" / args.grid)
    summary = {"grid": args.grid, "out": str(out_dir), "computed": 0, "skipped": 0, "seconds": 0.0,
               "cluster": args.cluster}
    grid = None if args.report_only else load_grid(args.config, args.grid)
    results = load_results(out_dir) if args.report_only else None
    figure_dir = _check_outputs(args, out_dir, grid, args.grid if results is None else results["grid"]["name"])
    if grid is not None:
        from altmarl_ros.core import work
        from altmarl_ros.experiments.sweep import grid_work

        work.require(f"the sweep of grid {grid.name} ({len(grid.models)} models x {len(grid.k)} k)", grid_work(grid),
                     "use a smaller grid")
        from tqdm import tqdm

        show = not (args.quiet or args.json)
        total = count_units(grid)
        with _cluster(args.cluster) as client:
            if show and not sys.stderr.isatty():  # a log file: one line per unit, not \r redraws
                result = run_sweep(grid, out_dir, progress=_LineProgress(f"sweep {grid.name}", total), client=client)
            else:
                with tqdm(total=total, desc=f"sweep {grid.name}", unit="point",
                          disable=not show, file=sys.stderr) as bar:
                    result = run_sweep(grid, out_dir, progress=bar, client=client)
        summary.update(computed=result.computed, skipped=result.skipped, seconds=result.seconds)
        if not args.json:
            where = f" on the cluster {args.cluster}" if args.cluster else ""
            print(f"sweep {grid.name}: {result.computed} points computed{where}, {result.skipped} reused "
                  f"in {result.seconds:.1f} s -> {out_dir / 'results.csv'}")
    return finish(args, summary, figure_dir,
                  lambda: write_report(load_results(out_dir) if results is None else results, args.doc, figure_dir))


def finish(args, summary: dict, figure_dir: Path, report) -> int:
    """A sweep's last step (tabular or continuous grid): with --report or --report-only, `report()` rewrites the
    doc's section and its figures ({name: path}); then the summary, one JSON object with --json."""
    if args.report or args.report_only:
        figures = report()
        summary.update(doc=str(args.doc), figures=[str(path) for path in figures.values()])
        if not args.json:
            print(f"report: {args.doc} and {len(figures)} figure(s) in {figure_dir}")
    if args.json:
        print_json(summary)
    return 0
