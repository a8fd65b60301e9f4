"""Sweep units on a Dask cluster: `altmarl sweep --cluster ADDRESS` (a running scheduler) or `local:N`.

The workers only compute: each task is one unit (sweep.compute_unit) and returns its record;
run_sweep, in the calling process, writes it exactly as a local run does (unit file,
results.csv/json), so fingerprints, the cache and resuming have one home and a cluster run's
files are a local run's. A worker lost mid-unit is the scheduler's to handle: its tasks go to
another worker (up to `distributed.scheduler.allowed-failures` deaths per task, 3 by default).
An exception raised by a unit is not retried: units are deterministic, it would fail again.
Every task first checks that its worker runs the same code, baselines and observers as this
process (`worker_identity`), since a fingerprint hashes the inputs, not the code.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import sys
import uuid
from pathlib import Path

from altmarl_ros.errors import UsageError

CONNECT_SECONDS = 10.0  # to reach the scheduler, and then to see its first worker
MAX_LOCAL_WORKERS = 64
FIX_ADDRESS = "give a running scheduler's address (tcp://HOST:8786, from `dask scheduler`) or local:N"


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError("--cluster", "needs dask.distributed, which is not installed here: pip install -r "
                         "requirements-cluster.txt (or ALTMARL_CLUSTER=1 scripts/bootstrap.sh)") from None
    return distributed


@contextlib.contextmanager
def connect(address: str):
    """A Client on `address`: `local:N` starts N single-threaded worker processes on this machine
    (stopped on exit), without work stealing, which would move a unit away from the worker that caches
    its group's alternations (compute_units); anything else is a scheduler's address, reached within
    CONNECT_SECONDS."""
    distributed = _distributed()
    local = re.fullmatch(r"local:(.*)", address.strip())
    if local:
        n = _local_workers(local.group(1))
        import dask

        with dask.config.set({"distributed.scheduler.work-stealing": False}), \
                distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=":0") as cluster, \
                distributed.Client(cluster, set_as_default=False) as client:
            yield client
        return
    try:
        client = distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except ValueError as err:  # no port, unknown scheme
        raise UsageError("--cluster", f"{address!r} is not a scheduler address ({err}): {FIX_ADDRESS}") from None
    except OSError:  # refused, unknown host, timed out
        raise UsageError("--cluster", f"no Dask scheduler answered at {address} within {CONNECT_SECONDS:g} s: "
                         f"{FIX_ADDRESS}") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise UsageError("--cluster", f"the scheduler at {address} has no workers (waited "
                             f"{CONNECT_SECONDS:g} s): start some with `dask worker {address} --nthreads 1`") from None
        yield client


def _local_workers(text):
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= MAX_LOCAL_WORKERS:
        raise UsageError("--cluster", f"local:{text}: N must be an integer in [1, {MAX_LOCAL_WORKERS}] "
                                      "(worker processes on this machine, at most one per core is useful)")
    return int(text)


@functools.cache
def _code_digest():
    """The sources of altmarl_ros and altmarl_sim, and the numeric versions: what a unit's rows
    depend on besides its inputs."""
    import altmarl_sim
    import numba
    import numpy

    import altmarl_ros

    digest = hashlib.sha256(f"{sys.version_info[:2]} numpy {numpy.__version__} numba {numba.__version__}".encode())
    for package in (altmarl_ros, altmarl_sim):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root)}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def worker_identity():
    """What decides a unit's rows besides its inputs: the code digest and the registered baselines
    and observers (a script may register its own). Equal identities compute equal units."""
    from altmarl_ros.core.baselines import BASELINES
    from altmarl_ros.core.observers import OBSERVERS

    return {"code": _code_digest(), "baselines": list(BASELINES), "observers": list(OBSERVERS)}


def _compute_on_worker(compute_unit, expected, spec, game, unit, grid):
    """The task: the unit's record (compute_unit: sweep's, sent by reference), or (on a worker that would
    compute something else) why not, as text for the client to raise: a worker-side exception would also be
    logged there as a failure."""
    found = worker_identity()
    where = f"worker {os.uname().nodename} (pid {os.getpid()})"
    if found["code"] != expected["code"]:
        return (f"{where} runs other altmarl_ros code or numpy/numba versions (digest {found['code']}, here "
                f"{expected['code']}): install this checkout on the workers")
    for registry in ("baselines", "observers"):
        if found[registry] != expected[registry]:
            return (f"{where} has the {registry} {found[registry]}, this process {expected[registry]}: import "
                    "the module that registers them on the workers (`dask worker --preload MODULE`)")
    return compute_unit(spec, game, unit, grid)


def compute_units(client, pending, grid, compute_unit, cache_group, progress=None):
    """Run `pending` ((index, spec, game, unit), in grid order) on the client's workers with the sweep's
    compute_unit; yield (index, record) as each finishes. The grid's order is the tasks' priority, so with
    one worker the units run in a local run's order. The units of one cache_group go to one worker, the
    groups dealt round the workers, loosely: if that worker dies, any other takes them."""
    distributed = _distributed()
    expected = worker_identity()
    run = uuid.uuid4().hex[:8]
    workers, homes, futures = sorted(client.nthreads()), {}, {}
    for position, (index, spec, game, unit) in enumerate(pending):
        group, place = cache_group(spec, unit), {}
        if group is not None:
            place = dict(workers=[homes.setdefault(group, workers[len(homes) % len(workers)])],
                         allow_other_workers=True)
        future = client.submit(_compute_on_worker, compute_unit, expected, spec, game, unit, grid, pure=False,
                               key=f"altmarl-{grid.name}-{spec.name}-{unit.id}-{run}", priority=-position, **place)
        futures[future] = index, f"{spec.name} {unit.id}"
    for future in distributed.as_completed(futures, loop=client.loop):
        index, name = futures[future]
        try:
            record = future.result()
        except distributed.KilledWorker:
            raise UsageError("--cluster", f"unit {name} was lost with each worker that ran it, more often than "
                             "distributed.scheduler.allowed-failures allows: it may need more memory than a worker "
                             "has (`dask worker --memory-limit`); or run it without --cluster") from None
        if isinstance(record, str):
            raise UsageError("--cluster", record)
        if progress is not None:
            progress.set_postfix_str(name)
        yield index, record
