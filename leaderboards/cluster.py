"""Where cells run: local processes (joblib loky), a Ray cluster or a Dask cluster.

:func:`run_cells` runs a worker function (``cell -> record``; the runner's ``run_cell`` or ``submit``'s
sandboxed one) over cells and yields each record as soon as its cell finishes, so the driver, the only
writer of the results store, appends it at once (a killed driver resumes where it stopped).

Backends (``backend=``):

* ``local`` - one process for ``jobs=1``, else ``jobs`` joblib ``loky`` worker processes (kept warm);
  the cells in flight when a worker dies are re-run one at a time to find the one that kills it.
* ``ray`` - one Ray task per cell on Ray's worker pool (workers stay warm between cells). With an
  address (``address=`` or ``RAY_ADDRESS``) the driver *attaches* to that cluster and passes no local
  resource arguments; without one it starts its **own fresh** local cluster
  (``ray.init(address="local", num_cpus=jobs)``, never a stale one found in the temp dir) and shuts it
  down afterwards. A ``ray.init`` made by the caller beforehand is used as it is.
* ``dask`` - ``client.submit`` per cell and ``as_completed``. With an address (``address=`` or
  ``DASK_SCHEDULER_ADDRESS``) the driver attaches to that scheduler; without one it uses the caller's
  default client if there is one, else a local in-process cluster of ``jobs`` threads.

Faults: a worker that dies mid-cell (killed, node lost) has its cell re-run elsewhere by the scheduler
(Ray task retries; Dask reschedules a lost worker's tasks; local: alone, one at a time), and the driver
keeps only the first record per cell id, so every cell is stored exactly once. An agent's exception
never reaches the scheduler: the worker function turns it into the cell's ``failed`` record; a cell
whose worker dies every time it runs it (an agent that crashes its process) becomes a ``failed``
record through ``lost``. Every record
and row carries the ``host`` and ``pid`` of the worker process that ran the cell.
"""

from __future__ import annotations

import contextlib
import os
import platform
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

__all__ = ["BACKENDS", "ENV_ADDRESS", "resolve_address", "run_cells", "tag_worker"]

BACKENDS = ("local", "ray", "dask")
#: the standard variables Ray and Dask read for a cluster address
ENV_ADDRESS = {"ray": "RAY_ADDRESS", "dask": "DASK_SCHEDULER_ADDRESS"}
#: how many times a cell lost with its worker (not an agent failure) is re-run elsewhere
WORKER_RETRIES = 3

Record = dict[str, Any]
Worker = Callable[[Any], Record]


def resolve_address(backend: str, address: str | None) -> str | None:
    """The cluster address to attach to: ``address``, else the backend's standard variable, else ``None``.

    Raises:
        ValueError: an unknown backend, or an address given for the ``local`` backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "local":
        if address:
            raise ValueError(f"--address {address!r} needs --backend ray or --backend dask, not local")
        return None
    return address or os.environ.get(ENV_ADDRESS[backend]) or None


def tag_worker(worker: Worker, cell: Any) -> Record:
    """Run ``worker(cell)`` and stamp the record and each of its rows with this process's host and pid."""
    record = worker(cell)
    host, pid = platform.node(), os.getpid()
    record["host"], record["pid"] = host, pid
    for row in record.get("rows", []):
        row["host"], row["pid"] = host, pid
    return record


def run_cells(cells: Sequence[Any], worker: Worker, jobs: int = 1, backend: str = "local",
              address: str | None = None,
              lost: Callable[[Any, str], Record] | None = None) -> Iterator[Record]:
    """Yield one record per cell, in completion order, each cell exactly once.

    Args:
        cells: objects with an ``id`` property (the runner's ``Cell``), picklable.
        worker: ``cell -> record``; picklable (a module-level function or a ``functools.partial`` of one)
            for every backend but local ``jobs=1``.
        jobs: local processes / local Ray CPUs / local Dask threads; ignored when attaching.
        backend: ``local``, ``ray`` or ``dask``.
        address: cluster to attach to (``ray``/``dask``); default ``RAY_ADDRESS`` /
            ``DASK_SCHEDULER_ADDRESS``.
        lost: ``(cell, reason) -> record`` for a cell whose worker died every time it ran it (Ray: after
            :data:`WORKER_RETRIES` retries; Dask: after the scheduler's ``allowed-failures``), e.g. an
            agent that crashes its process; without it the run stops with the scheduler's error.

    Raises:
        ValueError: bad ``jobs``/``backend``/``address``, or the backend's package is not installed.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    address = resolve_address(backend, address)
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate cells in the plan")
    if not cells:
        return
    task = partial(tag_worker, worker)
    stream = {"local": _local, "ray": _ray, "dask": _dask}[backend](list(cells), task, jobs, address, lost)
    seen: set[str] = set()
    for record in stream:
        cell_id = record["cell"]["id"]
        if cell_id in seen:  # a cell re-run after a worker loss that had in fact finished
            continue
        seen.add(cell_id)
        yield record


# --------------------------------------------------------------------------- local


def _local(cells: list[Any], task: Worker, jobs: int, address: str | None, lost: Any) -> Iterator[Record]:
    """``jobs=1``: in this process (an agent that kills its process stops the run; rerunning resumes).
    Else at most ``jobs`` cells in flight on loky workers. A dead worker breaks the pool and every cell
    in flight with it; those cells are then run one at a time, alone, so the one that kills its worker
    is found: after :data:`WORKER_RETRIES` + 1 deaths alone it becomes ``lost(cell, reason)``."""
    if jobs == 1:
        for cell in cells:
            yield task(cell)
        return
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, wait

    from joblib.externals.loky import get_reusable_executor

    pending, suspects = deque(cells), deque()
    deaths: dict[str, int] = {}
    while pending or suspects:
        alone = bool(suspects)
        executor = get_reusable_executor(max_workers=1 if alone else jobs)
        batch = [suspects.popleft()] if alone else [pending.popleft() for _ in range(min(jobs, len(pending)))]
        in_flight = {executor.submit(task, c): c for c in batch}
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                cell = in_flight.pop(future)
                error = future.exception()
                if error is None:
                    yield future.result()
                elif not isinstance(error, BrokenExecutor):
                    raise error
                elif not alone:
                    suspects.append(cell)
                else:
                    deaths[cell.id] = deaths.get(cell.id, 0) + 1
                    if deaths[cell.id] <= WORKER_RETRIES:
                        suspects.append(cell)
                    elif lost is None:
                        raise error
                    else:
                        yield lost(cell, f"worker process died {deaths[cell.id]} times running this cell "
                                         f"alone ({type(error).__name__}: {str(error)[:300]})")
            if not alone and not suspects:  # keep ``jobs`` cells in flight
                for cell in [pending.popleft() for _ in range(min(jobs - len(in_flight), len(pending)))]:
                    in_flight[executor.submit(task, cell)] = cell


# --------------------------------------------------------------------------- ray


def _ray(cells: list[Any], task: Worker, jobs: int, address: str | None, lost: Any) -> Iterator[Record]:
    try:
        import ray
    except ImportError as err:
        raise ValueError('backend "ray" needs ray: pip install -e ".[distributed]"') from err
    started = False
    if not ray.is_initialized():
        if address:  # attach: the cluster's own resources, nothing local
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, TimeoutError) as err:
                raise ValueError(f"cannot attach to the Ray cluster at {address!r}: {err}") from err
        else:  # a fresh cluster of our own, never a stale one from the temp dir
            ray.init(address="local", num_cpus=jobs, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=WORKER_RETRIES, retry_exceptions=False)(_call)
        errors = ray.exceptions
        died = (errors.WorkerCrashedError, errors.NodeDiedError, errors.OutOfMemoryError)
        cell_of = {remote.remote(task, c): c for c in cells}
        pending = list(cell_of)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield ray.get(ref)
                except died as err:
                    if lost is None:
                        raise
                    yield lost(cell_of[ref], f"worker process died {WORKER_RETRIES + 1} times running this "
                                             f"cell ({type(err).__name__}: {str(err)[:300]})")
    finally:
        if started:
            ray.shutdown()


def _call(task: Worker, cell: Any) -> Record:
    """``task(cell)``: a module-level function that Ray and Dask import on their workers."""
    return task(cell)


# --------------------------------------------------------------------------- dask


def _dask(cells: list[Any], task: Worker, jobs: int, address: str | None, lost: Any) -> Iterator[Record]:
    try:
        from distributed import Client, KilledWorker, LocalCluster, as_completed, default_client
    except ImportError as err:
        raise ValueError('backend "dask" needs dask.distributed: pip install -e ".[distributed]"') from err
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address))
            except (OSError, TimeoutError) as err:
                raise ValueError(f"cannot reach the Dask scheduler at {address!r}: {err}") from err
        else:
            try:
                client = default_client()
            except ValueError:
                cluster = stack.enter_context(LocalCluster(n_workers=jobs, threads_per_worker=1,
                                                           processes=False, dashboard_address=None))
                client = stack.enter_context(Client(cluster))
        run = uuid.uuid4().hex[:12]  # task keys unique to this run
        futures = [client.submit(_call, task, c, key=f"hbgym-{run}-{c.id}", pure=False) for c in cells]
        cell_of = dict(zip(futures, cells))
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except KilledWorker as err:
                    if lost is None:
                        raise
                    yield lost(cell_of[future], f"every worker that ran this cell died ({str(err)[:300]})")
        finally:
            for future in futures:
                future.cancel()
