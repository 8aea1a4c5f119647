"""Encoding jobs in Redis (`abr encoder serve --redis URL`): the `jobs` topic is the work queue
that any number of `abr encoder worker`s drain through one consumer group (worker.py).

- a job's state is one hash, `abr:job:<id>` (each field a JSON value), listed by the sorted set
  `abr:jobs` (by creation time); the job API reads and writes them;
- `POST /jobs` writes the hash and appends `job.queued` to `jobs` in one transaction;
- the transitions that race (a cancel against a worker taking the job, a worker finishing
  against another that reclaimed it) are Lua scripts, so each is atomic in Redis;
- `DELETE /jobs/<id>` of a queued job cancels it at once; of a running one it sets `cancel`,
  which the worker running it sees within half a second (it stops its encode, and reports).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from abrstack.bus import Event, connect
from encoder.service import FINAL, STATES, JobService, ServiceConfig, _error, iso_utc

JOBS = "jobs"
"""Topic: the encoding work queue (`job.queued` events name a job id)."""
GROUP = "encoders"
"""The workers' consumer group on `jobs`."""
INDEX = "abr:jobs"
MAX_LISTED = 10_000
"""GET /jobs lists at most this many jobs (the oldest first)."""
CANCEL_WAIT_S = 30.0
"""How long DELETE waits for the worker running a job to stop it."""
INTERNAL = ("cancel", "announced", "replaces")
"""Hash fields the API does not show as they are (`cancel` is shown as `cancel_requested`)."""


def job_key(job_id: str) -> str:
    return f"abr:job:{job_id}"


def _encode_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in fields.items()}


def _decode_fields(raw: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        try:
            out[key] = json.loads(v)
        except (ValueError, UnicodeDecodeError):
            out[key] = None
    return out


def public_view(job: dict[str, Any]) -> dict[str, Any]:
    """The job as the API shows it."""
    view = {k: v for k, v in job.items() if k not in INTERNAL}
    view["cancel_requested"] = bool(job.get("cancel"))
    return view


# KEYS[1] job hash; ARGV[1] the finished time. Returns the state before.
CANCEL_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancel', 'true')
local st = redis.call('HGET', KEYS[1], 'state')
if st == '"queued"' then
  redis.call('HSET', KEYS[1], 'state', '"cancelled"', 'finished', ARGV[1])
end
return st
"""


class RedisJobs:
    """The job hashes and the queue, for the service and the workers."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._cancel = client.register_script(CANCEL_LUA)

    async def create(self, job: dict[str, Any]) -> None:
        """Store a new job and queue it, in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(job_key(job["id"]), mapping=_encode_fields(job))
        pipe.zadd(INDEX, {job["id"]: time.time()})
        pipe.xadd(JOBS, {"e": Event("job.queued", {"job": job["id"]}).encode()},
                  maxlen=100_000, approximate=True)
        await pipe.execute()

    async def get(self, job_id: str) -> dict[str, Any] | None:
        raw = await self.client.hgetall(job_key(job_id))
        return _decode_fields(raw) if raw else None

    async def all(self) -> list[dict[str, Any]]:
        ids = await self.client.zrange(INDEX, 0, MAX_LISTED - 1)
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(job_key(job_id.decode() if isinstance(job_id, bytes) else job_id))
        return [_decode_fields(raw) for raw in await pipe.execute() if raw]

    async def update(self, job_id: str, **fields: Any) -> None:
        await self.client.hset(job_key(job_id), mapping=_encode_fields(fields))

    async def remove(self, job_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(job_key(job_id))
        pipe.zrem(INDEX, job_id)
        await pipe.execute()

    async def request_cancel(self, job_id: str) -> str | None:
        """Flag the job for cancelling; a queued one is cancelled at once. Returns the state it
        had (None: no such job)."""
        before = await self._cancel(keys=[job_key(job_id)], args=[json.dumps(iso_utc())])
        return json.loads(before) if before else None


class RedisJobService(JobService):
    """The job API over Redis; the encodes run in `abr encoder worker` processes."""

    def __init__(self, config: ServiceConfig) -> None:
        assert config.redis is not None
        self.config = config
        self.inputs = config.inputs.resolve()
        self.client = connect(config.redis)
        self.queue = RedisJobs(self.client)
        self.procs = {}
        self.cancelled = set()
        self.workers = []

    def _unreachable(self, exc: Exception) -> web.Response:
        return _error(503, f"the job queue at {self.config.redis} is unreachable ({exc}); try again")

    async def post_job(self, request: web.Request) -> web.Response:
        job = await self.new_job(request)
        if isinstance(job, web.Response):
            return job
        job["worker"] = None
        try:
            await self.queue.create(job)
        except (RedisError, OSError) as exc:
            return self._unreachable(exc)
        return web.json_response(public_view(job), status=202,
                                 headers={"Location": f"/jobs/{job['id']}"})

    async def list_jobs(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state is not None and state not in STATES:
            return _error(400, f"unknown state {state!r} in 'state'; choose one of {', '.join(STATES)}")
        try:
            jobs = await self.queue.all()
        except (RedisError, OSError) as exc:
            return self._unreachable(exc)
        return web.json_response({"jobs": [public_view(j) for j in jobs
                                           if state is None or j.get("state") == state]})

    async def get_job(self, request: web.Request) -> web.Response:
        try:
            job = await self.queue.get(request.match_info["id"])
        except (RedisError, OSError) as exc:
            return self._unreachable(exc)
        if job is None:
            return _error(404, "no such job")
        return web.json_response(public_view(job))

    async def delete_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        try:
            job = await self.queue.get(job_id)
            if job is None:
                return _error(404, "no such job")
            if job.get("state") in FINAL:  # a finished job: forget it (its title stays)
                await self.queue.remove(job_id)
                return web.Response(status=204)
            await self.queue.request_cancel(job_id)
            deadline = time.monotonic() + CANCEL_WAIT_S
            while True:  # the worker running it stops it and reports
                job = await self.queue.get(job_id)
                if job is None or job.get("state") in FINAL or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        except (RedisError, OSError) as exc:
            return self._unreachable(exc)
        if job is None:
            return _error(404, "no such job")
        # 202: no worker has stopped it yet (none runs?); it is cancelled when one takes it
        return web.json_response(public_view(job), status=200 if job.get("state") in FINAL else 202)

    async def start(self, app: web.Application) -> None:
        pass  # no encodes here

    async def stop(self, app: web.Application) -> None:
        await self.client.aclose()
