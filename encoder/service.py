"""`abr encoder serve`: the encoding job service (aiohttp).

    POST   /jobs        {"source", "title", "ladder"?, "segment_s"?, "codec"?, "quality"?, "force"?,
                         "audio_lang"?}
                        -> 202 {"id", "state": "queued", ...}; 404 no such source, 400 not a
                        video, 409 the title exists (without "force": true)
    GET    /jobs        -> {"jobs": [...]}, oldest first; ?state=done keeps one state
    GET    /jobs/{id}   -> {"id", "state", "progress", "error", "restarts", ...}
    DELETE /jobs/{id}   -> cancels a queued or running job; removes a finished one (204)
    GET    /healthz
    POST   /keys/{title} a ClearKey licence for an encrypted title (with --key-token; keyserver.py)

Times are ISO 8601 UTC ("2026-01-02T03:04:05Z", like title.json). One JSON line per request
is logged on stderr (ts, method, path, status, duration_ms), like the edge.

Sources are taken only from the configured inputs folder. Jobs are kept as one JSON file
each in the state folder, written atomically, so a restart loses none: queued jobs stay
queued and a job that was running is run again (an encode publishes atomically, so a
killed one left nothing behind). Each encode runs as a child `abr encode` process, which
makes cancelling it (SIGTERM) clean and keeps the service responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from encoder.errors import EncoderError
from encoder.ladder import parse_ladder
from encoder.plan import CODECS, parse_codecs
from encoder.probe import probe
from encoder.publish import check_title_name
from encoder.tracks import parse_audio_langs

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
JOB_KEYS = {"source", "title", "ladder", "segment_s", "codec", "quality", "force", "audio_lang"}
RESTART_NOTE = "restarted from 0% after the service stopped"
"""An encode is one ffmpeg run: a job interrupted by a stop starts over."""
# `abr encode` flags in a child's error message -> the job field that sets them.
CLI_TO_FIELD = {"--force": '"force": true', "--segment-s": "'segment_s'", "--quality": "'quality'",
                "--ladder": "'ladder'", "--codec": "'codec'", "--audio-lang": "'audio_lang'"}
MAX_BODY_BYTES = 64 * 1024
"""A job request is a few hundred bytes; a ladder of MAX_RUNGS rungs well under 2 KiB."""


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8070
    """Port to listen on (0: any free port)."""
    inputs: Path = Path("media/sources")
    """The only folder sources are read from."""
    media: Path = Path("media")
    """Where titles are published."""
    state: Path = Path("media/.jobs")
    """Where jobs are persisted."""
    concurrency: int = 1
    """How many encodes run at once."""
    key_token: str | None = None
    """Serve `POST /keys/{title}` (ClearKey licences) to this bearer token; None: no key server."""
    redis: str | None = None
    """Keep jobs in Redis at this URL and leave the encodes to `abr encoder worker`s (jobqueue.py)."""
    scheduler: str | None = None
    """Without `redis`: fan every job's chunks out on this Dask cluster (`abr encode --chunks
    auto --scheduler ...`); None: one ffmpeg per job."""


class JobError(EncoderError):
    """A job request is invalid; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class JobStore:
    """Jobs persisted as <state>/<id>.json (atomic replace on every change)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, dict[str, Any]] = {}
        for path in sorted(folder.glob("*.json")):
            if path.name.endswith(".ladder.json"):
                continue
            try:
                job = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            for key in ("created", "started", "finished"):  # files of older versions: epoch
                if isinstance(job.get(key), int | float):
                    job[key] = iso_utc(job[key])
            if job.get("state") == "running":  # interrupted by a restart: run it again
                job.update(state="queued", progress=0.0, note=RESTART_NOTE)
                job["attempts"] = job.get("attempts", 0)
                job["restarts"] = job.get("restarts", 0) + 1
            self.jobs[job["id"]] = job
            self.save(job)

    def save(self, job: dict[str, Any]) -> None:
        tmp = self.folder / f".{job['id']}.json.tmp"
        tmp.write_text(json.dumps(job, indent=2))
        os.replace(tmp, self.folder / f"{job['id']}.json")

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.jobs.values(), key=lambda j: (j["created"], j["id"]))

    def remove(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        for path in (self.folder / f"{job_id}.json", self.folder / f"{job_id}.ladder.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def iso_utc(epoch_s: float | None = None) -> str:
    """An ISO 8601 UTC time to the second, as in title.json: 2026-01-02T03:04:05Z."""
    now = datetime.now(UTC) if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def api_message(message: str) -> str:
    """A child `abr encode` error, with its CLI flags named as the job's JSON fields."""
    for flag, field in CLI_TO_FIELD.items():
        message = message.replace(f"use {flag} to", f"use {field} to").replace(flag, field)
    return message


class JobService:
    """The job queue, its workers and the HTTP handlers."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.inputs = config.inputs.resolve()
        self.store = JobStore(config.state)
        self.wakeup = asyncio.Event()
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.cancelled: set[str] = set()
        self.workers: list[asyncio.Task[None]] = []

    # -- validation -----------------------------------------------------------------
    def validate(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise JobError(400, "the request body must be a JSON object")
        unknown = set(body) - JOB_KEYS
        if unknown:
            raise JobError(400, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(JOB_KEYS)}")
        source, title = body.get("source"), body.get("title")
        if not isinstance(source, str) or not source:
            raise JobError(400, "'source' must be a file name inside the inputs folder")
        if not isinstance(title, str):
            raise JobError(400, "'title' must be a string")
        try:
            check_title_name(title)
        except EncoderError as exc:
            raise JobError(400, str(exc)) from exc
        path = self.source_path(source)
        job: dict[str, Any] = {"source": source, "title": title}
        ladder = body.get("ladder", "default")
        if isinstance(ladder, str) and ladder != "default":
            raise JobError(400, "'ladder' must be \"default\", a list of rungs or {\"rungs\": [...]}")
        if not isinstance(ladder, str | list | dict):
            raise JobError(400, "'ladder' must be \"default\", a list of rungs or {\"rungs\": [...]}")
        if ladder != "default":
            try:
                parse_ladder(ladder, source="ladder")
            except EncoderError as exc:
                raise JobError(400, str(exc)) from exc
        job["ladder"] = ladder
        seg = body.get("segment_s", 4.0)
        if isinstance(seg, bool) or not isinstance(seg, int | float) or not 1 <= seg <= 30:
            raise JobError(400, "'segment_s' must be a number from 1 to 30")
        job["segment_s"] = float(seg)
        codec = body.get("codec", "h264")
        if not isinstance(codec, str):
            raise JobError(400, f"'codec' must be a string, one of {', '.join(CODECS)}")
        try:
            parse_codecs(codec)
        except EncoderError as exc:
            raise JobError(400, f"{exc} (in 'codec')") from exc
        job["codec"] = codec
        audio_lang = body.get("audio_lang")
        if audio_lang is not None:
            if not isinstance(audio_lang, str):
                raise JobError(400, "'audio_lang' must be a string such as \"en,fr\"")
            try:
                parse_audio_langs(audio_lang)
            except EncoderError as exc:
                raise JobError(400, str(exc).replace("--audio-lang", "'audio_lang'")) from exc
            job["audio_lang"] = audio_lang
        for flag in ("quality", "force"):
            value = body.get(flag, False)
            if not isinstance(value, bool):
                raise JobError(400, f"'{flag}' must be true or false")
            job[flag] = value
        if not job["force"] and (self.config.media / title).exists():
            raise JobError(409, f"title {title!r} already exists (send \"force\": true to replace it)")
        del path
        return job

    def source_path(self, source: str) -> Path:
        """The source's real path, which must be a file inside the inputs folder."""
        if "\x00" in source or os.path.isabs(source):
            raise JobError(400, "'source' must be a relative name inside the inputs folder")
        path = (self.inputs / source).resolve()
        if os.path.commonpath([path, self.inputs]) != str(self.inputs):
            raise JobError(400, "'source' is outside the inputs folder")
        if not path.is_file():
            raise JobError(404, f"source {source!r} is not in the inputs folder")
        return path

    # -- HTTP -----------------------------------------------------------------------
    async def post_job(self, request: web.Request) -> web.Response:
        job = await self.new_job(request)
        if isinstance(job, web.Response):
            return job
        self.store.jobs[job["id"]] = job
        self.store.save(job)
        self.wakeup.set()
        return web.json_response(job, status=202, headers={"Location": f"/jobs/{job['id']}"})

    async def new_job(self, request: web.Request) -> dict[str, Any] | web.Response:
        """A queued job from a POST /jobs request, or the error response to send."""
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body is not valid JSON")
        except RecursionError:
            return _error(400, "the request body is nested too deeply")
        try:
            spec = self.validate(body)
            path = self.source_path(spec["source"])
            await asyncio.to_thread(probe, path)
        except JobError as exc:
            return _error(exc.status, str(exc))
        except EncoderError as exc:  # SourceError: not a usable video
            return _error(400, str(exc).replace(str(path), repr(spec["source"])))
        job = {
            "id": uuid.uuid4().hex[:12],
            **spec,
            "state": "queued",
            "progress": 0.0,
            "error": None,
            "attempts": 0,
            "restarts": 0,
            "note": None,
            "created": iso_utc(),
            "started": None,
            "finished": None,
        }
        return job

    async def list_jobs(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state is not None and state not in STATES:
            return _error(400, f"unknown state {state!r} in 'state'; choose one of {', '.join(STATES)}")
        jobs = [j for j in self.store.ordered() if state is None or j["state"] == state]
        return web.json_response({"jobs": jobs})

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.store.jobs.get(request.match_info["id"])
        if job is None:
            return _error(404, "no such job")
        return web.json_response(job)

    async def delete_job(self, request: web.Request) -> web.Response:
        job = self.store.jobs.get(request.match_info["id"])
        if job is None:
            return _error(404, "no such job")
        if job["state"] in FINAL:  # a finished job: forget it (its title stays)
            self.store.remove(job["id"])
            self.cancelled.discard(job["id"])
            return web.Response(status=204)
        self.cancelled.add(job["id"])
        proc = self.procs.get(job["id"])
        if proc is not None and proc.returncode is None:
            proc.terminate()  # `abr encode` cleans up its temporary folder on SIGTERM
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
        self._finish(job, "cancelled", None)
        return web.json_response(job)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # -- workers --------------------------------------------------------------------
    def _next(self) -> dict[str, Any] | None:
        for job in self.store.ordered():
            if job["state"] == "queued" and job["id"] not in self.cancelled:
                return job
        return None

    async def worker(self) -> None:
        while True:
            job = self._next()
            if job is None:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            job.update(state="running", started=iso_utc(), progress=0.0)
            job["attempts"] = job.get("attempts", 0) + 1
            self.store.save(job)
            try:
                await self.run_job(job)
            except Exception as exc:  # a bug must not stop the worker
                self._finish(job, "failed", f"internal error: {exc}")

    def command(self, job: dict[str, Any]) -> list[str]:
        cmd = encode_command(job, self.source_path(job["source"]), self.config.media, self.config.state)
        if self.config.scheduler is not None:
            cmd += ["--chunks", "auto", "--scheduler", self.config.scheduler]
        return cmd

    def published_by(self, job: dict[str, Any]) -> bool:
        """Whether the title on disk was published by this very job (before a crash)."""
        return published_by(self.config.media, job)

    async def run_job(self, job: dict[str, Any]) -> None:
        if self.published_by(job):  # it finished publishing, then the service stopped
            job["progress"] = 1.0
            self._finish(job, "done", None)
            return
        try:
            cmd = self.command(job)
        except JobError as exc:
            self._finish(job, "failed", str(exc))
            return
        proc = await start_encode(cmd)
        self.procs[job["id"]] = proc

        async def on_progress(progress: float) -> None:
            job["progress"] = progress
            self.store.save(job)
        last_error = await read_progress(proc, on_progress)
        code = await proc.wait()
        self.procs.pop(job["id"], None)
        if job["id"] in self.cancelled or job["state"] == "cancelled":
            return
        if code == 0:
            job["progress"] = 1.0
            self._finish(job, "done", None)
        else:
            message = last_error.split(": error: ", 1)[-1] or f"abr encode exited with {code}"
            self._finish(job, "failed", api_message(message))

    def _finish(self, job: dict[str, Any], state: str, error: str | None) -> None:
        job.update(state=state, error=error, finished=iso_utc())
        self.store.save(job)

    async def start(self, app: web.Application) -> None:
        self.workers = [asyncio.create_task(self.worker()) for _ in range(self.config.concurrency)]

    async def stop(self, app: web.Application) -> None:
        for task in self.workers:
            task.cancel()
        for proc in list(self.procs.values()):
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
                    await asyncio.wait_for(proc.wait(), 30)
        # Jobs interrupted by this shutdown stay "running" on disk and rerun at start.


def encode_command(job: dict[str, Any], source: Path, media: Path, state: Path) -> list[str]:
    """The child `abr encode` argv of a job (its ladder, if any, written to `state`)."""
    cmd = [
        sys.executable, "-m", "abrstack", "encode", str(source),
        "--title", job["title"], "--media", str(media.resolve()),
        "--segment-s", str(job["segment_s"]), "--codec", job["codec"], "--progress", "json",
        "--job-id", job["id"],
    ]
    if job["ladder"] != "default":
        ladder_file = state / f"{job['id']}.ladder.json"
        ladder_file.write_text(json.dumps(job["ladder"]))
        cmd += ["--ladder", str(ladder_file.resolve())]
    if job.get("audio_lang"):
        cmd.append(f"--audio-lang={job['audio_lang']}")
    if job["quality"]:
        cmd.append("--quality")
    if job["force"]:
        cmd.append("--force")
    return cmd


def published_by(media: Path, job: dict[str, Any]) -> bool:
    """Whether the title on disk was published by this very job (before a crash)."""
    try:
        doc = json.loads((media / job["title"] / "title.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("job_id") == job["id"]


async def start_encode(cmd: list[str]) -> asyncio.subprocess.Process:
    """Start a child encode that gets SIGTERM when its parent dies (even by SIGKILL)."""
    return await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_parent,
    )


async def read_progress(proc: asyncio.subprocess.Process,
                        on_progress: Callable[[float], Awaitable[None]]) -> str:
    """Follow a child encode's `--progress json` lines until it closes stderr; returns its
    last other line (the error, if it fails)."""
    last_error = ""
    assert proc.stderr is not None
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError, ValueError):
                msg = json.loads(line)
                # encode stage is 90% of the job; quality measurement the rest
                share = 0.9 if msg["stage"].startswith("encode") else 0.1
                base = 0.0 if share == 0.9 else 0.9
                await on_progress(round(base + share * float(msg["progress"]), 3))
        elif line:
            last_error = line
    return last_error


@web.middleware
async def access_log(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """One JSON line per request on stderr (the edge's fields: ts, method, path, status, duration_ms)."""
    start = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        line = {"ts": round(time.time(), 3), "method": request.method, "path": request.path,
                "query": request.query_string, "status": status,
                "duration_ms": round((time.monotonic() - start) * 1000, 3)}
        print(json.dumps(line, separators=(",", ":")), file=sys.stderr, flush=True)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _die_with_parent() -> None:
    """Linux: the child encode gets SIGTERM if the service dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def make_app(config: ServiceConfig) -> web.Application:
    if config.concurrency < 1:
        raise EncoderError("--concurrency must be at least 1")
    if config.scheduler is not None and config.redis:
        raise EncoderError("with --redis the workers run the encodes: give --chunks/--scheduler to "
                           "`abr encoder worker`, not to `abr encoder serve`")
    if config.scheduler is not None:
        from abrstack.cluster import check_scheduler

        check_scheduler(config.scheduler)
    if not config.inputs.is_dir():
        raise EncoderError(f"the inputs folder {config.inputs} does not exist")
    if config.redis:
        from encoder.jobqueue import RedisJobService

        service: JobService = RedisJobService(config)
    else:
        service = JobService(config)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[access_log])
    app.add_routes(
        [
            web.post("/jobs", service.post_job),
            web.get("/jobs", service.list_jobs),
            web.get("/jobs/{id}", service.get_job),
            web.delete("/jobs/{id}", service.delete_job),
            web.get("/healthz", service.healthz),
        ]
    )
    if config.key_token is not None:
        from encoder.keyserver import add_routes

        add_routes(app, config.media, config.key_token)
    app.on_startup.append(service.start)
    app.on_shutdown.append(service.stop)
    return app


def run(config: ServiceConfig) -> None:
    app = make_app(config)
    print(f"encoder service on http://{config.host}:{config.port} "
          f"(inputs {config.inputs}, media {config.media})", flush=True)
    web.run_app(app, host=config.host, port=config.port, print=None)
