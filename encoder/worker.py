"""`abr encoder worker --redis URL`: takes encoding jobs from the `jobs` topic through the
`encoders` consumer group, runs each as a child `abr encode`, and reports in the job's hash.

Exactly once, complete:
- while it encodes, the worker renews its claim on the job's message every `visibility_s / 4`
  (a Lua script that re-claims the entry only while this worker still owns it); a worker that
  is killed stops renewing, so after `visibility_s` another worker's `XAUTOCLAIM` takes the job
  and runs it again from 0% (the killed worker's child encode got SIGTERM with it, and an encode
  publishes atomically, so nothing half-made was ever visible);
- a worker that finds its claim taken stops its encode and reports nothing;
- the end of a job (its state, the `titles` event and the `XACK`) is one Lua script, so a
  worker killed at any point leaves either a job to run again or a job done and announced once;
  a job whose title.json already carries its id (the worker died after the rename) is done
  without encoding again;
- after `max_attempts` deliveries the job fails and its message goes to `jobs.dead`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from abrstack.bus import Consumer, Delivery, Event, connect
from abrstack.cluster import ClusterError, check_scheduler
from abrstack.events import TITLES
from encoder.announce import title_event_for
from encoder.chunks import chunk_count
from encoder.errors import EncoderError
from encoder.jobqueue import GROUP, JOBS, RedisJobs, job_key
from encoder.service import (
    api_message,
    encode_command,
    iso_utc,
    published_by,
    read_progress,
    start_encode,
)

log = logging.getLogger(__name__)

WATCH_S = 0.5
"""How often a running job's cancel flag (and the worker's stop) is checked."""

# KEYS job hash. ARGV worker, started, replaces (JSON). -> {status, previous worker}
START_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', false} end
local st = redis.call('HGET', KEYS[1], 'state')
if st == '"done"' or st == '"failed"' or st == '"cancelled"' then return {'final', false} end
if redis.call('HGET', KEYS[1], 'cancel') == 'true' then
  redis.call('HSET', KEYS[1], 'state', '"cancelled"', 'finished', ARGV[2])
  return {'cancelled', false}
end
local prev = redis.call('HGET', KEYS[1], 'worker')
local n = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') + 1
redis.call('HSET', KEYS[1], 'state', '"running"', 'worker', ARGV[1], 'started', ARGV[2],
           'progress', '0.0', 'attempts', tostring(n), 'restarts', tostring(n - 1),
           'finished', 'null', 'error', 'null')
redis.call('HSETNX', KEYS[1], 'replaces', ARGV[3])
return {'running', prev}
"""

# KEYS stream, job hash. ARGV group, msg id, consumer. -> -1 lost, 1 cancel, 0 carry on
HEARTBEAT_LUA = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return -1 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
if redis.call('HGET', KEYS[2], 'cancel') == 'true' then return 1 end
return 0
"""

# KEYS job hash, titles, jobs. ARGV worker(JSON), state, error, finished, progress (JSON),
# titles event body or '', group, msg id. -> 0 when another worker owns the job now
FINISH_LUA = """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'error', ARGV[3], 'finished', ARGV[4],
           'progress', ARGV[5])
if ARGV[6] ~= '' and redis.call('HSETNX', KEYS[1], 'announced', 'true') == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'e', ARGV[6])
end
redis.call('XACK', KEYS[3], ARGV[7], ARGV[8])
return 1
"""

# KEYS job hash, jobs. ARGV worker(JSON), note(JSON), group, msg id, new event body
REQUEUE_LUA = """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', '"queued"', 'progress', '0.0', 'note', ARGV[2])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'e', ARGV[5])
return 1
"""


@dataclass(frozen=True)
class WorkerConfig:
    redis: str
    """The event bus (and job store) URL."""
    media: Path = Path("media")
    """Where titles are published (the storage every worker and the origin see)."""
    inputs: Path = Path("media/sources")
    """The only folder sources are read from."""
    max_attempts: int = 3
    """Deliveries of a job (workers dying under it) before it fails."""
    visibility_s: float = 30.0
    """A job whose worker renewed no claim for this long is taken by another worker."""
    name: str | None = None
    """This worker's name in the group and in job state (default HOST-PID)."""
    chunks: str | None = None
    """Passed to every encode as `--chunks` (Dask chunked encoding); None: one ffmpeg."""
    scheduler: str | None = None
    """Passed to every encode as `--scheduler` (the Dask cluster)."""


class Worker:
    """One member of the `encoders` group; runs one job at a time."""

    def __init__(self, config: WorkerConfig) -> None:
        if config.max_attempts < 1:
            raise EncoderError("--max-attempts must be at least 1")
        if not 1 <= config.visibility_s <= 3600:
            raise EncoderError("--visibility-s must be from 1 to 3600 seconds")
        if not config.inputs.is_dir():
            raise EncoderError(f"the inputs folder {config.inputs} does not exist")
        if config.chunks is not None:
            chunk_count(config.chunks, 60.0, 1)  # refuses a bad value in one sentence
        if config.scheduler is not None:
            try:
                check_scheduler(config.scheduler)
            except ClusterError as exc:
                raise EncoderError(str(exc)) from exc
        self.config = config
        self.name = config.name or f"{socket.gethostname()}-{os.getpid()}"
        self.inputs = config.inputs.resolve()
        self.client = connect(config.redis)
        self.jobs = RedisJobs(self.client)
        self.consumer = Consumer(self.client, JOBS, GROUP, self.name, visibility_s=config.visibility_s,
                                 max_deliveries=config.max_attempts + 1, batch=1, block_s=1.0)
        self._start = self.client.register_script(START_LUA)
        self._heartbeat = self.client.register_script(HEARTBEAT_LUA)
        self._finish = self.client.register_script(FINISH_LUA)
        self._requeue = self.client.register_script(REQUEUE_LUA)
        self.stop = asyncio.Event()
        self.handled = 0
        self._ladders = tempfile.TemporaryDirectory(prefix="abr-worker-")

    async def run(self) -> None:
        """Take and run jobs until `stop` is set."""
        ready = False
        try:
            while not self.stop.is_set():
                try:
                    if not ready:
                        await self.consumer.ensure_group("0")
                        ready = True
                    batch = await self.consumer.poll()
                except (RedisError, OSError) as e:
                    log.warning("worker %s: job queue unreachable (%s); retrying", self.name, e)
                    await asyncio.sleep(1.0)
                    continue
                for d in batch:
                    try:
                        await self.handle(d)
                    except (RedisError, OSError) as e:  # its message stays pending: reclaimed
                        log.warning("worker %s: job queue lost during %s (%s)", self.name, d.msg_id, e)
        finally:
            await self.client.aclose()
            self._ladders.cleanup()

    async def handle(self, d: Delivery) -> None:
        job_id = d.event.data.get("job")
        if not isinstance(job_id, str) or d.event.type != "job.queued":
            await self.consumer.dead_letter(d.msg_id, {"e": d.event.encode()}, "not a job.queued event",
                                            d.deliveries)
            return
        if d.deliveries > self.config.max_attempts:  # no worker runs it: every one died
            if await self.jobs.get(job_id) is not None:
                await self.jobs.update(job_id, state="failed", finished=iso_utc(), error=(
                    f"gave up after {self.config.max_attempts} attempts: the worker running it "
                    "stopped each time"))
            await self.consumer.dead_letter(d.msg_id, {"e": d.event.encode()},
                                            "job failed: too many attempts", d.deliveries)
            return
        job = await self.jobs.get(job_id)
        replaces = job is not None and not published_by(self.config.media, job) \
            and (self.config.media / str(job.get("title"))).exists()
        status, prev = await self._start(keys=[job_key(job_id)], args=[
            json.dumps(self.name), json.dumps(iso_utc()), json.dumps(replaces)])
        status = status.decode() if isinstance(status, bytes) else status
        if status != "running" or job is None:  # gone, finished or cancelled: nothing to run
            await self.consumer.ack(d)
            return
        job = await self.jobs.get(job_id) or job
        if d.deliveries > 1 and prev and json.loads(prev) not in (None, self.name):  # reclaimed
            await self.jobs.update(job_id, note=f"reclaimed from worker {json.loads(prev)}, which "
                                   "stopped answering; restarted from 0%")
        try:
            await self.run_job(job, d)
        except (RedisError, OSError):
            raise
        except Exception as exc:  # a bug must not stop the worker
            log.exception("worker %s: job %s", self.name, job_id)
            await self.finish(job_id, d, "failed", f"internal error: {exc}", None, 0.0)
        self.handled += 1

    def source_path(self, source: str) -> Path:
        path = (self.inputs / source).resolve()
        if "\x00" in source or os.path.isabs(source) \
                or os.path.commonpath([path, self.inputs]) != str(self.inputs) or not path.is_file():
            raise EncoderError(f"source {source!r} is not in this worker's inputs folder")
        return path

    async def run_job(self, job: dict[str, Any], d: Delivery) -> None:
        job_id = job["id"]
        if published_by(self.config.media, job):  # the last worker died after publishing
            await self.finish(job_id, d, "done", None, self.announcement(job), 1.0)
            return
        try:
            cmd = encode_command(job, self.source_path(job["source"]), self.config.media,
                                 Path(self._ladders.name))
            if self.config.chunks is not None:
                cmd += ["--chunks", self.config.chunks]
            if self.config.scheduler is not None:
                cmd += ["--scheduler", self.config.scheduler]
        except EncoderError as exc:
            await self.finish(job_id, d, "failed", str(exc), None, 0.0)
            return
        proc = await start_encode(cmd)
        seen = [0.0]

        async def on_progress(progress: float) -> None:
            seen[0] = progress
            with contextlib.suppress(RedisError, OSError):  # progress is best effort
                await self.jobs.update(job_id, progress=progress)
        reader = asyncio.create_task(read_progress(proc, on_progress))
        outcome = await self.watch(proc, reader, d, job_id)
        last_error = await reader
        code = await proc.wait()
        if outcome == "lost":
            log.warning("worker %s: job %s was taken by another worker; stopped", self.name, job_id)
        elif outcome == "stopping":
            body = Event("job.queued", {"job": job_id}).encode()
            await self._requeue(keys=[job_key(job_id), JOBS], args=[
                json.dumps(self.name), json.dumps(f"worker {self.name} stopped; queued again"),
                GROUP, d.msg_id, body])
        elif outcome == "cancel":
            await self.finish(job_id, d, "cancelled", None, None, seen[0])
        elif code == 0 or published_by(self.config.media, job):  # (a stalled twin published it)
            await self.finish(job_id, d, "done", None, self.announcement(job), 1.0)
        else:
            message = last_error.split(": error: ", 1)[-1] or f"abr encode exited with {code}"
            await self.finish(job_id, d, "failed", api_message(message), None, 0.0)

    async def watch(self, proc: asyncio.subprocess.Process, reader: asyncio.Task[str],
                    d: Delivery, job_id: str) -> str:
        """Renew the claim and check the cancel flag until the encode ends: "ended", "cancel",
        "lost" (another worker owns the job now) or "stopping" (this worker is asked to stop)."""
        renew_every = max(WATCH_S, self.config.visibility_s / 4)
        loop = asyncio.get_running_loop()
        last_renew = loop.time()
        outcome = "ended"
        while not reader.done():
            await asyncio.wait([reader], timeout=WATCH_S)
            if reader.done():
                break
            if self.stop.is_set():
                outcome = "stopping"
            else:
                try:
                    verdict = await self._heartbeat(keys=[JOBS, job_key(job_id)],
                                                    args=[GROUP, d.msg_id, self.name])
                    last_renew = loop.time()
                except (RedisError, OSError) as e:  # keep encoding; the claim is renewed later
                    if loop.time() - last_renew > renew_every:
                        log.warning("worker %s: cannot renew job %s (%s)", self.name, job_id, e)
                    continue
                outcome = {-1: "lost", 1: "cancel"}.get(int(verdict), "ended")
            if outcome != "ended":
                if proc.returncode is None:
                    proc.terminate()  # `abr encode` removes its temporary folder on SIGTERM
                break
        return outcome

    def announcement(self, job: dict[str, Any]) -> str:
        """The `titles` event of a job's title (id `job-<id>`, so a repeat is recognisably one)."""
        try:
            doc = json.loads((self.config.media / job["title"] / "title.json").read_text())
        except (OSError, ValueError):
            return ""
        event = title_event_for(doc, bool(job.get("replaces")))
        return dataclasses.replace(event, id=f"job-{job['id']}").encode().decode()

    async def finish(self, job_id: str, d: Delivery, state: str, error: str | None,
                     announcement: str | None, progress: float) -> None:
        """State, `titles` event and XACK in one script; retried while Redis is away."""
        args = [json.dumps(self.name), json.dumps(state), json.dumps(error), json.dumps(iso_utc()),
                json.dumps(progress), announcement or "", GROUP, d.msg_id]
        while True:
            try:
                if not await self._finish(keys=[job_key(job_id), TITLES, JOBS], args=args):
                    log.warning("worker %s: job %s is another worker's now", self.name, job_id)
                    with contextlib.suppress(RedisError, OSError):
                        await self.consumer.ack(d)
                return
            except (RedisError, OSError) as e:
                log.warning("worker %s: cannot report job %s (%s); retrying", self.name, job_id, e)
                await asyncio.sleep(1.0)


def run(config: WorkerConfig) -> None:
    """Run a worker until SIGINT or SIGTERM (a running job is stopped and queued again)."""
    async def main() -> None:
        worker = Worker(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop.set)
        print(f"encoder worker {worker.name} on {config.redis} (media {config.media}, inputs "
              f"{config.inputs})", flush=True)
        await worker.run()
    asyncio.run(main())
