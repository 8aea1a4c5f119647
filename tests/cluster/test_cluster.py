"""abrstack.cluster on a real LocalCluster with worker processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abrstack.cluster import ClusterError, check_scheduler, check_shared_path, open_client, run_jobs


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with open_client("local", workers=2, processes=True) as c:
        yield c


def square(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def flaky(marker: str) -> str:
    """Fails the first time it runs for a marker (the file records the attempt)."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise RuntimeError("first attempt fails")
    return "ok"


def die_once(marker: str) -> str:
    """Kills its worker process the first time: the worker dies mid-job."""
    path = Path(marker)
    if not path.exists():
        path.write_text("killed")
        os._exit(1)
    return "survived"


def always_fails(x: int) -> int:
    raise ValueError(f"bad input {x}")


def test_results_in_order_and_spread_over_processes(client: Any) -> None:
    out = run_jobs(client, square, list(range(20)))
    assert [v for v, _ in out] == [x * x for x in range(20)]
    assert os.getpid() not in {pid for _, pid in out}


def test_failed_job_is_retried(client: Any, tmp_path: Path) -> None:
    assert run_jobs(client, flaky, [str(tmp_path / "m")], retries=1) == ["ok"]


def test_worker_killed_mid_job_is_retried(client: Any, tmp_path: Path) -> None:
    assert run_jobs(client, die_once, [str(tmp_path / "k")]) == ["survived"]


def test_failure_after_retries_is_one_sentence(client: Any) -> None:
    with pytest.raises(ClusterError, match=r"^job 3 failed after 1 retries: bad input 3$"):
        run_jobs(client, always_fails, [3], retries=1)


def test_shared_path_checked(client: Any, tmp_path: Path) -> None:
    check_shared_path(client, tmp_path)
    with pytest.raises(ClusterError, match="must be a shared folder"):
        check_shared_path(client, tmp_path / "absent")


def test_bad_scheduler_value() -> None:
    with pytest.raises(ClusterError, match="neither 'local' nor an address"):
        check_scheduler("http://x")


def test_unreachable_scheduler() -> None:
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"), \
            open_client("tcp://127.0.0.1:1", timeout_s=1):
        pass
