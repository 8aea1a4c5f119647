"""Sweeps: every algorithm over every trace, optionally on several processes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from player_sim.model import Model
from player_sim.qoe import SessionResult
from player_sim.sim import WARMUP_SESSIONS, run_sessions
from player_sim.traces import Trace
from player_sim.video import Video

Task = tuple[str, int, int]


def _blocks(n: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i] < edges[i + 1]]


_WORKER: dict[str, object] = {}


def _init(video: Video, traces: list[Trace], model: Model) -> None:
    _WORKER.update(video=video, traces=traces, model=model)


def _run_block(task: Task) -> tuple[Task, list[SessionResult]]:
    algorithm, lo, hi = task
    traces: list[Trace] = _WORKER["traces"]  # type: ignore[assignment]
    warmup = traces[max(0, lo - WARMUP_SESSIONS) : lo]
    return task, run_sessions(_WORKER["video"], traces[lo:hi], algorithm, _WORKER["model"], warmup)  # type: ignore[arg-type]


def run_sweep(video: Video, traces: list[Trace], algorithms: list[str], model: Model, jobs: int = 1,
              on_progress: Callable[[str, int], None] | None = None) -> dict[str, list[SessionResult]]:
    """Results per algorithm, one per trace in trace order.

    ``jobs=1`` is exactly a sequential sweep. With more jobs the traces are split into
    blocks; only an algorithm that carries state across sessions (robustMPC in the
    pensieve model) can then differ, in a few sessions at block boundaries.
    """
    out: dict[str, list[SessionResult]] = {}
    if jobs <= 1:
        # one sequential pass per algorithm: exactly the reference scripts' sweep
        for algorithm in algorithms:
            tick = (lambda _r, a=algorithm: on_progress(a, 1)) if on_progress else None
            out[algorithm] = run_sessions(video, traces, algorithm, model, on_each=tick)
        return out
    tasks: list[Task] = [(a, lo, hi) for a in algorithms for lo, hi in _blocks(len(traces), jobs * 4)]
    parts: dict[Task, list[SessionResult]] = {}
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init, initargs=(video, traces, model)) as pool:
        for task, results in pool.map(_run_block, tasks):
            parts[task] = results
            if on_progress:
                on_progress(task[0], task[2] - task[1])
    for algorithm in algorithms:
        out[algorithm] = [r for t in tasks if t[0] == algorithm for r in parts[t]]
    return out


class Progress:
    """A tqdm bar on a terminal; one plain line per algorithm otherwise (stderr)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.counts: dict[str, int] = {}
        self.per_algorithm = 0
        self.started = time.monotonic()
        if enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="session", file=sys.stderr, leave=False)

    def __call__(self, algorithm: str, n: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(algorithm)
            self.bar.update(n)
            return
        self.counts[algorithm] = self.counts.get(algorithm, 0) + n
        if self.counts[algorithm] == self.per_algorithm:
            print(f"{algorithm}: {self.counts[algorithm]} sessions, {time.monotonic() - self.started:.1f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


def _run_cluster_block(job: tuple[Task, Video, list[Trace], list[Trace], Model]) -> list[SessionResult]:
    (algorithm, _lo, _hi), video, warmup, block, model = job
    return run_sessions(video, block, algorithm, model, warmup)


def run_sweep_cluster(client: object, video: Video, traces: list[Trace], algorithms: list[str],
                      model: Model, on_progress: Callable[[str, int], None] | None = None
                      ) -> dict[str, list[SessionResult]]:
    """`run_sweep` with the blocks of sessions as jobs on a Dask cluster (`abrstack.cluster`).

    Each job carries only its own traces (and the warm-up traces before them), so the same
    block boundaries as ``--jobs N`` apply: results equal ``jobs=1`` except for the
    cross-session state documented in `run_sweep`.
    """
    from abrstack.cluster import run_jobs

    workers = max(1, len(client.scheduler_info().get("workers", {})))  # type: ignore[attr-defined]
    tasks: list[Task] = [(a, lo, hi) for a in algorithms for lo, hi in _blocks(len(traces), workers * 4)]
    jobs = [(t, video, traces[max(0, t[1] - WARMUP_SESSIONS) : t[1]], traces[t[1] : t[2]], model)
            for t in tasks]
    results = run_jobs(client, _run_cluster_block, jobs, what="sweep block")
    out: dict[str, list[SessionResult]] = {a: [] for a in algorithms}
    for task, part in zip(tasks, results, strict=True):
        out[task[0]].extend(part)
        if on_progress:
            on_progress(task[0], task[2] - task[1])
    return out
