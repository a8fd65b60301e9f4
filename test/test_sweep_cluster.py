"""altmarl sweep --cluster: the tiny grid on a 2-worker Dask cluster against a serial run, a worker
killed mid-unit, and the one-line errors of a cluster that cannot do the work.

The runs here use `micro`, the tiny grid on the federated model without the G-LEARN cost probe (the
tiny grid's warehouse baselines alone cost ~11 CPU-s per run); the placement test reads the tiny grid
itself, for its two models. The quick grid takes ~40 min serially, too long for the suite:
bench/bench_cluster_sweep.py runs that comparison (docs/results.md, "On a cluster").
"""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from _sweep_config import shipped_sweep_config
from altmarl_ros.cli import main
from altmarl_ros.experiments import cluster
from altmarl_ros.experiments.sweep import count_units, load_grid, result_cells

REPO = Path(__file__).resolve().parents[1]
GRID = load_grid(REPO / "config" / "sweep.yaml", "tiny")
# One 2-worker cluster for the module, so every test here must run in one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("dask_cluster")


@pytest.fixture(scope="module")
def client():
    """`--cluster local:2`'s cluster (cluster.connect), reached by the tests through its address."""
    with cluster.connect("local:2") as local:
        yield local


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """--config and --grid of the micro grid, and the grid."""
    config = shipped_sweep_config()
    config["grids"] = {"micro": dict(config["grids"]["tiny"], models=["federated"], cost_k=[])}
    path = tmp_path_factory.mktemp("micro") / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return ("--config", str(path), "--grid", "micro"), load_grid(path, "micro")


def _sweep(capsys, micro, out, *flags):
    assert main(["sweep", *micro[0], "--out", str(out), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def _kill_a_busy_worker(client, pids, killed, ready=lambda: True):
    """Once `ready()`, SIGKILL a worker while it holds a unit (the scheduler's view); (pid, units) to `killed`."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not killed:
        if ready():
            for address, keys in client.processing().items():
                if keys and address in pids:
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append((pids[address], list(keys)))
                    break
        time.sleep(0.02)


def test_local_workers_are_single_threaded_processes(client):
    """And no work stealing, which would move a unit away from the worker caching its group's alternations."""
    assert not client.run_on_scheduler(lambda dask_scheduler: "stealing" in dask_scheduler.extensions)
    info = client.scheduler_info()["workers"]
    assert len(info) == 2 and {worker["nthreads"] for worker in info.values()} == {1}
    assert os.getpid() not in client.run(os.getpid).values()


def test_cluster_sweep_matches_the_serial_run_and_survives_a_killed_worker(tmp_path, capsys, client, micro):
    serial, distributed = tmp_path / "serial", tmp_path / "cluster"
    assert _sweep(capsys, micro, serial)["computed"] == count_units(micro[1])

    pids = client.run(os.getpid)
    killed = []
    killer = threading.Thread(target=_kill_a_busy_worker, args=(client, pids, killed),
                              kwargs=dict(ready=lambda: any((distributed / "points").rglob("*.json"))))
    killer.start()
    try:
        summary = _sweep(capsys, micro, distributed, "--cluster", client.scheduler.address)
    finally:
        killed.append(None)  # stops the killer if the sweep failed first
        killer.join()
    assert killed[0] is not None, "no worker was killed: the check below proves nothing"
    pid, keys = killed[0]
    assert pid not in client.run(os.getpid).values() and keys
    assert summary["computed"] == count_units(micro[1]) and summary["cluster"] == client.scheduler.address

    rows = {name: json.loads((out / "results.json").read_text())["rows"] for name, out in
            (("serial", serial), ("cluster", distributed))}
    assert result_cells(rows["cluster"]) == result_cells(rows["serial"])
    header = [(out / "results.csv").read_text().splitlines()[0] for out in (serial, distributed)]
    assert header[0] == header[1]
    for path in sorted((serial / "points").rglob("*.json")):  # the same unit files, fingerprints included
        local, remote = (json.loads(p.read_text()) for p in (path, distributed / path.relative_to(serial)))
        assert result_cells(remote.pop("rows")) == result_cells(local.pop("rows"))
        assert {key: remote[key] for key in ("fingerprint", "model", "unit", "model_hash")} == \
            {key: local[key] for key in ("fingerprint", "model", "unit", "model_hash")}

    # the cache is the local run's: resumed here or on the cluster, nothing is computed again
    assert _sweep(capsys, micro, distributed)["computed"] == 0
    assert _sweep(capsys, micro, serial, "--cluster", client.scheduler.address)["computed"] == 0


def test_a_models_observer_units_go_to_one_worker(client):
    """They share the alternations a process caches (sweep.cache_group): each model's go to one worker
    (loosely, so a lost worker's go elsewhere), the models dealt round both workers; the rest anywhere."""
    from altmarl_ros.experiments.sweep import _load_game, _units

    client.wait_for_workers(2, timeout=60)  # the nanny restarts a worker an earlier test killed
    games = {spec.name: _load_game(spec) for spec in GRID.models}
    pending = [(i, spec, games[spec.name], unit) for i, (spec, unit) in enumerate(_units(GRID))
               if unit.kind in ("filter", "baselines")]
    running = cluster.compute_units(client, pending, GRID)
    next(running)  # every task is submitted before the first result is yielded
    placed = client.run_on_scheduler(lambda dask_scheduler: {
        key: (sorted(ts.worker_restrictions or ()), ts.loose_restrictions)
        for key, ts in dask_scheduler.tasks.items() if key.startswith("altmarl-tiny-")})
    running.close()
    homes = {}
    for key, (workers, loose) in placed.items():
        model, unit = key.split("-")[2:4]
        if unit == "baselines":
            assert (workers, loose) == ([], False)
        else:
            assert len(workers) == 1 and loose
            homes.setdefault(model, set()).update(workers)
    assert sorted(homes) == ["federated", "warehouse"] and all(len(home) == 1 for home in homes.values())
    assert homes["federated"] != homes["warehouse"]


def _error(capsys, *argv):
    assert main(["sweep", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_worker_with_other_code_or_registries_is_refused(tmp_path, capsys, client, monkeypatch):
    """A fingerprint hashes the inputs, not the code: a worker that would compute other rows must not
    fill the cache. Here (patched) this process has a baseline or an observer the workers lack, or
    another code digest."""
    from altmarl_ros.core.baselines import BASELINES
    from altmarl_ros.core.observers import OBSERVERS

    out = tmp_path / "sweep"
    argv = ("--tiny", "--out", str(out), "--cluster", client.scheduler.address)
    for registry, name in ((BASELINES, "baselines"), (OBSERVERS, "observers")):
        with monkeypatch.context() as patch:
            patch.setitem(registry, "registered_here_only", next(iter(registry.values())))
            err = _error(capsys, *argv)
        assert "--cluster: worker " in err and f"has the {name} [" in err and "registered_here_only" in err
        assert "--preload" in err
    monkeypatch.setattr(cluster, "_code_digest", lambda: "0" * 16)
    err = _error(capsys, *argv)
    assert "runs other altmarl_ros code" in err and "here 0000000000000000" in err
    assert not list((out / "points").rglob("*.json"))


def test_a_unit_whose_workers_keep_dying_is_one_line(tmp_path, capsys, micro):
    """With no worker death allowed per task (allowed-failures 0), the unit of a killed worker is
    given up: one line naming the unit and the setting, not the scheduler's KilledWorker."""
    import dask
    import distributed

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as one, \
            distributed.Client(one, set_as_default=False) as client:
        killed = []
        killer = threading.Thread(target=_kill_a_busy_worker, args=(client, client.run(os.getpid), killed))
        killer.start()
        try:
            err = _error(capsys, *micro[0], "--quiet", "--out", str(tmp_path), "--cluster", one.scheduler_address)
        finally:
            killed.append(None)
            killer.join()
    assert killed[0] is not None
    assert "--cluster: unit " in err and "lost with each worker that ran it" in err and "allowed-failures" in err


@pytest.mark.parametrize("address, named", [
    ("nonsense", "--cluster: 'nonsense' is not a scheduler address (missing port number"),
    ("udp://host:1", "--cluster: 'udp://host:1' is not a scheduler address (unknown address scheme"),
    ("tcp://127.0.0.1:1", "--cluster: no Dask scheduler answered at tcp://127.0.0.1:1 within 1 s"),
    ("local:0", "--cluster: local:0: N must be an integer in [1, 64]"),
    ("local:two", "--cluster: local:two: N must be an integer"),
])
def test_a_bad_cluster_address_is_one_line_naming_the_flag(tmp_path, capsys, monkeypatch, address, named):
    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 1.0)
    started = time.monotonic()
    assert named in _error(capsys, "--tiny", "--out", str(tmp_path), "--cluster", address)
    assert time.monotonic() - started < 30  # refused or timed out, never hanging


def test_a_scheduler_without_workers_is_one_line(tmp_path, capsys, monkeypatch):
    import distributed

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 1.0)
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as empty:
        err = _error(capsys, "--tiny", "--out", str(tmp_path), "--cluster", empty.scheduler_address)
    assert f"the scheduler at {empty.scheduler_address} has no workers" in err and "dask worker" in err


def test_cluster_flag_needs_distributed_and_something_to_compute(tmp_path, capsys, monkeypatch):
    assert "--cluster: does not apply with --report-only" in _error(
        capsys, "--tiny", "--report-only", "--out", str(tmp_path), "--cluster", "local:1")
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import distributed fails
    assert "requirements-cluster.txt" in _error(capsys, "--tiny", "--out", str(tmp_path), "--cluster", "local:1")
