"""Running independent jobs on Dask distributed: a `LocalCluster` or a scheduler address.

This is the one place abrstack talks to Dask. Chunked encodes, per-title probes and
sweeps submit their independent jobs through :func:`run_jobs`; the cluster is opened by
:func:`open_client` from a ``--scheduler`` value (``local`` or ``tcp://HOST:8786``).

- Retries are Dask's own (``Client.map(..., retries=N)``): a task that raises, or whose
  worker dies, runs again on another worker.
- After the retries a job's failure becomes one :class:`ClusterError` sentence, and every
  other job of the batch is cancelled.
- Ctrl-C (``KeyboardInterrupt``) cancels the batch's futures before it propagates.
- Files are passed by path, so the folders a job reads and writes must be the same path
  on every worker (a shared file system); :func:`check_shared_path` fails clearly when a
  worker cannot see one.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from abrstack.errors import AbrError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_RETRIES = 2
ABORT_WAIT_S = 10.0
"""After a failure or Ctrl-C, how long running jobs get to see the abort flag and stop."""


class ClusterError(AbrError):
    """The cluster could not be reached, or a job failed after its retries."""


def check_scheduler(value: str) -> str:
    """Check a ``--scheduler`` value: ``local`` or ``tcp://HOST:PORT``."""
    if value == "local" or (value.startswith(("tcp://", "tls://")) and ":" in value[6:]):
        return value
    raise ClusterError(f"--scheduler {value!r} is neither 'local' nor an address like tcp://HOST:8786")


@contextmanager
def open_client(scheduler: str = "local", workers: int | None = None,
                processes: bool = True, threads_per_worker: int = 1,
                timeout_s: float = 10.0) -> Iterator[Any]:
    """A `distributed.Client` on a new `LocalCluster` (``local``) or on a scheduler address."""
    from distributed import Client, LocalCluster

    check_scheduler(scheduler)
    if scheduler == "local":
        n = workers if workers is not None else max(1, os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                               processes=processes, dashboard_address=None)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


def run_jobs(client: Any, fn: Callable[[T], R], items: Sequence[T], *,
             retries: int = DEFAULT_RETRIES, what: str = "job", abort: str | None = None,
             on_done: Callable[[int], None] | None = None) -> list[R]:
    """Run ``fn(item)`` for every item on the cluster; results in the items' order.

    `fn` must be importable by the workers (a module-level function). A job that still
    fails after `retries` retries raises :class:`ClusterError` naming the item and the
    cause; the other jobs are cancelled then, and on Ctrl-C. Dask cannot stop a job that
    is running, so jobs that start processes take an `abort` name: on failure or Ctrl-C
    the client raises that flag (a `distributed.Event`), running jobs that watch it with
    :func:`abort_flag` stop, and the client waits up to ABORT_WAIT_S for them.
    `on_done(i)` is called as job i finishes.
    """
    from distributed import Event, as_completed, wait

    if not items:
        return []
    futures = client.map(fn, list(items), retries=retries, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        for future in as_completed(futures):  # stop at the first failure, not the last job
            if on_done is not None and future.status == "finished":
                on_done(index[future.key])
            if future.status == "error":
                item = items[index[future.key]]
                raise ClusterError(f"{what} {item!r} failed after {retries} retries: "
                                   f"{_sentence(future.exception())}")
            if future.status == "cancelled":
                item = items[index[future.key]]
                raise ClusterError(f"{what} {item!r} was cancelled on the cluster")
        return [f.result() for f in futures]
    except BaseException:
        if abort is not None:
            with suppress(Exception):
                Event(abort, client=client).set()
                wait(futures, timeout=ABORT_WAIT_S)
        client.cancel(futures)
        raise
    finally:
        if abort is not None:
            with suppress(Exception):
                Event(abort, client=client).clear()


@contextmanager
def abort_flag(name: str, poll_s: float = 1.0) -> Iterator[threading.Event]:
    """In a job on a worker: a `threading.Event` that is set when the client raises the
    batch's abort flag `name` (see :func:`run_jobs`); watched while the block runs."""
    from distributed import Event, get_client

    flag, done = threading.Event(), threading.Event()
    # The worker's client, taken in the job's thread: an Event used from the watcher thread
    # without one is "not properly initialized" and never fires.
    event = Event(name, client=get_client())

    def watch() -> None:
        while not done.is_set():
            try:
                if event.wait(poll_s):
                    flag.set()
                    return
            except Exception:  # the client went away: the job ends with its batch
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield flag
    finally:
        done.set()


def _sentence(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sees(path: str, marker: str = "", token: str = "") -> bool:
    if not (os.path.isdir(path) and os.access(path, os.W_OK)):
        return False
    if not marker:
        return True
    try:
        with open(os.path.join(path, marker)) as f:
            return f.read() == token
    except OSError:
        return False


def _reads(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def check_shared_path(client: Any, path: Path) -> None:
    """Fail with one sentence unless every worker sees `path` as a writable folder, and
    the same folder: a marker file written here must be there, with its random content."""
    folder = path.resolve()
    marker, token = f".abr-shared-{secrets.token_hex(6)}", secrets.token_hex(16)
    try:
        (folder / marker).write_text(token)
    except OSError:
        marker = token = ""  # not writable here: the workers' answer decides alone
    try:
        seen = client.run(_sees, str(folder), marker, token)
    finally:
        if marker:
            with suppress(OSError):
                (folder / marker).unlink()
    blind = sorted(addr for addr, ok in seen.items() if not ok)
    if not seen:
        raise ClusterError("the Dask cluster has no workers")
    if blind:
        raise ClusterError(f"{folder} must be a shared folder every Dask worker can "
                           f"write, but {', '.join(blind)} cannot see it")


def check_shared_file(client: Any, path: Path) -> None:
    """Fail with one sentence unless every worker can read the file `path` (same path)."""
    seen = client.run(_reads, str(path.resolve()))
    blind = sorted(addr for addr, ok in seen.items() if not ok)
    if blind:
        raise ClusterError(f"{path.resolve()} must be on a shared path every Dask worker can "
                           f"read, but {', '.join(blind)} cannot read it")
