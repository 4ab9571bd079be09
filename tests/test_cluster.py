"""Scale-out on loopback clusters: attach to Dask and Ray by address, rows equal a local run, lost workers.

Every cluster is started by the test on 127.0.0.1 with random free ports and its own temp dir, and torn
down by the pids (and process groups) the test started, never by process name.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from hbgym.leaderboards import cli
from hbgym.leaderboards.cluster import resolve_address
from hbgym.leaderboards.runner import execute, plan, run_cell
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import SUITES, Setting, Suite

ROOT = Path(__file__).resolve().parents[1]
SUITE = Suite(
    name="clustertest", version=1, kind="online", num_seeds=4, chunk=2, log_points=3, agents=("HierTS",),
    settings=(Setting("HierGaussian-v0", {"num_tasks": 5, "num_actions": 3}, 4, ("HG",)),
              Setting("MultiBandit-v0", {"num_tasks": 2, "num_actions": 3, "dim": 2}, 4, ("MB",),
                      oracle="optimal")),
)
VOLATILE = {"cell_wall_time", "seconds", "host", "pid"}


def _rows(store: ResultStore) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
                  for r in store.rows())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _marked_cell(marker_dir: str, cell):
    """``run_cell`` that first leaves its process id in ``marker_dir`` and takes a moment (to be killed)."""
    proc = Path("/proc/self")
    Path(marker_dir, str(os.getpid())).write_bytes((proc / "cmdline").read_bytes() + b"\n"
                                                   + (proc / "environ").read_bytes())
    time.sleep(0.5)
    return run_cell(cell)


class _Broken:
    """A third-party agent whose ``act`` raises: its cells must come back ``failed``, the run go on."""

    def reset(self, seed=None):
        pass

    def act(self, obs):
        raise RuntimeError("broken agent on purpose")

    def update(self, obs, action, reward):
        pass


def make_broken(env):
    return _Broken()


class _Crasher(_Broken):
    """An agent that takes its whole worker process down."""

    def act(self, obs):
        os._exit(3)


def make_crasher(env):
    return _Crasher()


@pytest.fixture(scope="module")
def cells():
    return plan(SUITE, ["HierTS"])[0]


@pytest.fixture(scope="module")
def local_rows(cells, tmp_path_factory):
    store = ResultStore(tmp_path_factory.mktemp("local"))
    store.open(SUITE)
    execute(cells, store, progress=False)
    return _rows(store)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


def _kill_tagged(tag: str) -> None:
    """SIGKILL every process of ours whose command line mentions ``tag`` (a temp dir only we use)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if tag.encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)


def _run_killing_one_worker(cells, root: Path, backend: str, address: str,
                           candidates: set[int] | None = None) -> tuple[ResultStore, int, Path]:
    """Run ``cells`` on the cluster, SIGKILL the first worker process that starts a cell (mid-cell: it
    sleeps first), and check that every cell is stored exactly once.

    Returns:
        the store, the killed pid and the folder where each worker process left its command line and
        environment.
    """
    store = ResultStore(root)
    store.open(SUITE)
    markers = tempfile.mkdtemp(dir=root.parent)
    killed: list[int] = []

    def kill_first_busy_worker():
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not killed:
            busy = [pid for pid in map(int, os.listdir(markers)) if candidates is None or pid in candidates]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_busy_worker)
    killer.start()
    new = execute(cells, store, backend=backend, address=address, progress=False,
                  worker=partial(_marked_cell, markers))
    killer.join()
    assert killed, "no worker was killed"
    ids = [json.loads(line)["id"] for line in store.index_path.read_text().splitlines()]
    assert sorted(ids) == sorted(c.id for c in cells) and len(new) == len(cells)  # each cell exactly once
    store.verify(SUITE.hash)
    return store, killed[0], Path(markers)


def test_resolve_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.2:8786")
    assert resolve_address("ray", None) is None
    assert resolve_address("ray", "10.0.0.1:6379") == "10.0.0.1:6379"
    assert resolve_address("dask", None) == "tcp://10.0.0.2:8786"
    assert resolve_address("dask", "tcp://h:1") == "tcp://h:1"
    with pytest.raises(ValueError, match="--address '1.2.3.4:1' needs --backend ray or --backend dask"):
        resolve_address("local", "1.2.3.4:1")
    with pytest.raises(ValueError, match="unknown backend 'spark'; use one of local, ray, dask"):
        resolve_address("spark", None)


# --------------------------------------------------------------------------- Dask


def test_unreachable_dask_scheduler_is_one_clear_error(cells, tmp_path):
    pytest.importorskip("distributed")
    import dask

    store = ResultStore(tmp_path / "none")
    store.open(SUITE)
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(ValueError, match=f"cannot reach the Dask scheduler at '{address}'"):
        execute(cells, store, backend="dask", address=address, progress=False)
    assert store.completed() == set()


@pytest.fixture(scope="module")
def dask_cluster():
    pytest.importorskip("distributed")
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], cwd=ROOT, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    workers: list[subprocess.Popen] = []
    try:
        for _ in range(2):  # no nanny: a killed worker stays dead
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"], cwd=ROOT, env=env,
                start_new_session=True, stderr=subprocess.DEVNULL))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        yield address, workers
    finally:
        _stop([*workers, scheduler])


def test_dask_address_from_the_environment_through_the_cli(dask_cluster, local_rows, tmp_path, monkeypatch):
    address, workers = dask_cluster
    monkeypatch.setitem(SUITES, SUITE.name, SUITE)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    out = tmp_path / "cli"
    argv = ["run", "--suite", SUITE.name, "--agent", "HierTS", "--backend", "dask", "--out", str(out),
            "--quiet", "--no-report"]
    assert cli.main(argv) == 0
    store = ResultStore(out)
    assert _rows(store) == local_rows
    assert {r["pid"] for r in store.rows()} <= {w.pid for w in workers}


def test_agent_failure_on_a_worker_stays_that_cells_failed_record(dask_cluster, tmp_path):
    address, workers = dask_cluster
    broken, _ = plan(SUITE, ["tests.test_cluster:make_broken"], with_references=False)
    store = ResultStore(tmp_path / "broken")
    store.open(SUITE)
    new = execute(broken, store, backend="dask", address=address, progress=False)
    assert len(new) == len(broken) and {r["status"] for r in new} == {"failed"}
    assert all("RuntimeError: broken agent on purpose" in r["reason"] for r in new)
    assert {r["pid"] for r in new} <= {w.pid for w in workers}
    store.verify(SUITE.hash)


def test_dask_attach_by_address_and_worker_loss(dask_cluster, cells, local_rows, tmp_path):
    address, workers = dask_cluster
    worker_pids = {w.pid for w in workers}
    store, killed, _ = _run_killing_one_worker(cells, tmp_path / "dask", "dask", address, worker_pids)
    assert _rows(store) == local_rows
    rows = store.rows()
    assert {r["host"] for r in rows} == {platform.node()}
    assert {r["pid"] for r in rows} <= worker_pids - {killed}  # ran on the surviving worker only
    assert os.getpid() not in {r["pid"] for r in rows}


# --------------------------------------------------------------------------- Ray


@pytest.fixture
def ray_cluster():
    pytest.importorskip("ray")
    tmp = tempfile.mkdtemp(prefix="hbr", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    # loopback only: no token (a shared ~/.ray/auth_token may be replaced by other Ray users meanwhile)
    env = {**os.environ, "RAY_TMPDIR": tmp, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    ray_cli = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())",
               "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    procs = [subprocess.Popen([*ray_cli, "--head", "--port", str(port), "--num-cpus", "0", "--temp-dir", tmp,
                               "--include-dashboard", "false"], cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not list(Path(tmp).glob("session_*/logs/gcs_server.out")) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        procs.append(subprocess.Popen([*ray_cli, "--address", address, "--num-cpus", "1"], cwd=ROOT, env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        yield address, tmp
    finally:
        _stop(procs[::-1])
        _kill_tagged(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def test_ray_attach_by_address_worker_loss_and_rows(ray_cluster, cells, local_rows, tmp_path, monkeypatch):
    import ray

    address, tmp = ray_cluster
    monkeypatch.setenv("RAY_TMPDIR", tmp)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(address=address, log_to_driver=False)  # wait until the worker node has joined
    try:
        deadline = time.monotonic() + 90
        while ray.cluster_resources().get("CPU", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ray.cluster_resources().get("CPU", 0) == 1  # the head has none: cells run on the worker
    finally:
        ray.shutdown()
    store, killed, markers = _run_killing_one_worker(cells, tmp_path / "ray", "ray", address)  # retried
    assert not ray.is_initialized()
    assert _rows(store) == local_rows
    pids = {r["pid"] for r in store.rows()}
    assert os.getpid() not in pids and killed not in pids
    for pid in pids:  # Ray worker processes (title ray::<task>) of the cluster this test started
        marker = (markers / str(pid)).read_bytes()
        assert marker.startswith(b"ray::") and f"RAY_TMPDIR={tmp}\0".encode() in marker


def test_local_ray_starts_its_own_cluster_despite_a_stale_one(cells, local_rows, tmp_path, monkeypatch):
    """Also: an agent that kills its worker process every time becomes that cell's failed record."""
    pytest.importorskip("ray")
    from hbgym.leaderboards import cluster

    tmp = tempfile.mkdtemp(prefix="hbs", dir="/tmp")
    try:
        (Path(tmp) / "ray").mkdir()
        (Path(tmp) / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")  # long gone
        monkeypatch.setenv("RAY_TMPDIR", tmp)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        monkeypatch.setattr(cluster, "WORKER_RETRIES", 1)
        crash = plan(SUITE, ["tests.test_cluster:make_crasher"], with_references=False)[0][:1]
        store = ResultStore(tmp_path / "ray-local")
        store.open(SUITE)
        execute([*cells[:3], *crash], store, jobs=1, backend="ray", progress=False)
        good = [r for r in store.rows() if r["agent"] != crash[0].agent_name]
        assert {json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
                for r in good} <= set(local_rows) and len(good) == 6
        lost = [r for r in store.rows() if r["agent"] == crash[0].agent_name]
        assert len(lost) == 2 and all(r["status"] == "failed" and r["pid"] is None for r in lost)
        assert "worker process died 2 times running this cell (WorkerCrashedError" in lost[0]["reason"]
        store.verify(SUITE.hash)
    finally:
        _kill_tagged(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def test_local_jobs_survive_an_agent_that_kills_its_worker(cells, local_rows, tmp_path, monkeypatch):
    """``--jobs 2`` locally: the crasher's cells become failed records, every other cell its normal row."""
    from hbgym.leaderboards import cluster

    monkeypatch.setattr(cluster, "WORKER_RETRIES", 1)
    crash = plan(SUITE, ["tests.test_cluster:make_crasher"], with_references=False)[0][:2]
    store = ResultStore(tmp_path / "local")
    store.open(SUITE)
    execute([cells[0], crash[0], *cells[1:4], crash[1]], store, jobs=2, progress=False)
    good = [r for r in store.rows() if r["agent"] != crash[0].agent_name]
    assert len(good) == 8 and {json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
                               for r in good} <= set(local_rows)
    lost = [r for r in store.rows() if r["agent"] == crash[0].agent_name]
    assert len(lost) == 4 and all(r["status"] == "failed" and r["pid"] is None for r in lost)
    assert "worker process died 2 times running this cell alone (TerminatedWorkerError" in lost[0]["reason"]
    store.verify(SUITE.hash)


def test_driver_killed_with_sigkill_resumes_every_cell_once(cells, local_rows, tmp_path):
    """A real ``run`` process killed with -9 mid-run, then the same command again: nothing lost or doubled."""
    out = tmp_path / "killed"
    script = ("import sys; from hbgym.leaderboards import cli; from hbgym.leaderboards.suites import SUITES; "
              "from tests.test_cluster import SUITE; SUITES[SUITE.name] = SUITE; "
              f"sys.exit(cli.main(['run', '--suite', SUITE.name, '--agent', 'HierTS', '--jobs', '2', "
              f"'--out', {str(out)!r}, '--quiet', '--no-report']))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, start_new_session=True,
                              stderr=subprocess.DEVNULL)
    index = out / "index.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if index.exists() and len(index.read_bytes().splitlines()) >= 2:
            break
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its loky workers
    driver.wait()
    done = len(index.read_bytes().splitlines())
    assert 2 <= done < len(cells), "the driver was not killed mid-run"
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, stderr=subprocess.DEVNULL,
                   timeout=300)
    store = ResultStore(out)
    ids = [json.loads(line)["id"] for line in index.read_text().splitlines()]
    assert sorted(ids) == sorted(c.id for c in cells)
    assert _rows(store) == local_rows
    store.verify(SUITE.hash)
