"""The job queries of the scheduler's domain: get, list, checkpoints, events, watch and the queue,
each only of what the caller may see (another user's job does not exist for them)."""

from __future__ import annotations

import asyncio
import builtins
import re
from collections.abc import AsyncIterator, Callable
from typing import ParamSpec, TypeVar

from ftlab.v1 import job_pb2, job_service_pb2
from services.common import validate
from services.common.auth import Caller
from services.common.errors import FieldViolation, InvalidArgument, NotFound
from services.scheduler import convert, queue_estimate, states
from services.scheduler.clock import utcnow
from services.scheduler.hub import EventHub
from services.scheduler.store.models import JobRow
from services.scheduler.store.repository import JobStore, decode_token, encode_token

MAX_PAGE = 1000
WATCH_BATCH = 500
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
P = ParamSpec("P")
R = TypeVar("R")


def parse_name(name: str, field: str = "name") -> str:
    job_id = name.removeprefix("jobs/")
    if not _JOB_ID.match(job_id):
        raise InvalidArgument(f"invalid job name {validate.short(name)}",
                              violations=[FieldViolation(field, "expected jobs/{id}, the id 16 hex digits")])
    return job_id


class Queries:
    """Reads of jobs, for JobManager (which gives it `store` and `hub`)."""

    store: JobStore
    hub: EventHub

    async def _db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def state_counts(self) -> dict[str, int]:
        """Jobs by state, every user's (the queue is shared)."""
        return await self._db(self.store.count_by_state)

    async def _row(self, who: Caller, name: str, field: str = "name") -> JobRow:
        job_id = parse_name(name, field)
        row = await self._db(self.store.get_job, job_id)
        if row is None or not who.sees(row.owner):  # another user's job does not exist for this caller
            raise NotFound(f"job {name!r} not found", reason="JOB_NOT_FOUND")
        return row

    async def get(self, who: Caller, name: str) -> job_pb2.Job:
        row = await self._row(who, name)
        return convert.to_job(row, await self._db(self.store.attempts, row.id))

    async def list(self, who: Caller, states_filter: list[job_pb2.JobState.ValueType], page_size: int,
                   page_token: str) -> tuple[list[job_pb2.Job], str]:
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", violations=[FieldViolation("page_size", "must be >= 0")])
        known = set(job_pb2.JobState.values()) - {job_pb2.JOB_STATE_UNSPECIFIED}
        unknown = [i for i, s in enumerate(states_filter) if s not in known]
        if unknown:
            raise InvalidArgument("unknown job state in states", violations=[
                FieldViolation(f"states[{i}]", f"not a job state (got {states_filter[i]})") for i in unknown[:10]])
        names = [job_pb2.JobState.Name(s) for s in states_filter]
        size = min(page_size or 50, MAX_PAGE)
        rows, token = await self._db(self.store.list_jobs, owner=None if who.admin else who.user,
                                     states=names, page_size=size, page_token=page_token)
        return [convert.to_job(r) for r in rows], token

    async def checkpoints(self, who: Caller, name: str) -> builtins.list[job_pb2.Checkpoint]:
        row = await self._row(who, name)
        return convert.to_checkpoints(await self._db(self.store.checkpoints, row.id))

    async def events(self, who: Caller, name: str, after: int, page_size: int,
                     page_token: str) -> tuple[builtins.list[job_pb2.JobEvent], str]:
        row = await self._row(who, name)
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", violations=[FieldViolation("page_size", "must be >= 0")])
        if after < 0:
            raise InvalidArgument("after_sequence must not be negative",
                                  violations=[FieldViolation("after_sequence", "must be >= 0")])
        if page_token:
            (after,) = decode_token(page_token, (int,))
        size = min(page_size or 100, MAX_PAGE)
        events = await self._db(self.store.events_after, row.id, after, size + 1)
        token = ""
        if len(events) > size:
            events, token = events[:size], encode_token([events[size - 1].sequence])
        return events, token

    async def watch(self, who: Caller, name: str, after: int, follow: bool,
                    poll_seconds: float = 1.0) -> AsyncIterator[tuple[job_pb2.JobEvent, job_pb2.JobState.ValueType]]:
        """Events after `after`, in order, each with the job state after it; with `follow`, live
        until the job reaches a final state."""
        row = await self._row(who, name)
        if after < 0:
            raise InvalidArgument("after_sequence must not be negative",
                                  violations=[FieldViolation("after_sequence", "must be >= 0")])
        cursor, state, from_memory = after, job_pb2.JOB_STATE_UNSPECIFIED, False
        if after > 0:
            previous = await self._db(self.store.events_after, row.id, 0, after)
            for e in previous:
                if e.HasField("state_changed"):
                    state = e.state_changed.to_state
        while True:
            batch = self.hub.since(row.id, cursor) if from_memory else None
            if batch is None:
                batch = await self._db(self.store.events_after, row.id, cursor, WATCH_BATCH)
            for event in batch:
                if event.HasField("state_changed"):
                    state = event.state_changed.to_state
                cursor = event.sequence
                yield event, state
            if len(batch) == WATCH_BATCH:
                continue
            if not follow:
                return
            if state and states.is_final(job_pb2.JobState.Name(state)):
                current = await self._db(self.store.get_job, row.id)
                assert current is not None  # jobs are never deleted
                if current.last_sequence <= cursor:
                    return
            from_memory = await self.hub.wait_beyond(row.id, cursor, poll_seconds)

    async def queue(self, who: Caller, free_slots: int) -> job_service_pb2.GetQueueResponse:
        """The queued jobs in start order, each with an estimate of when it starts: free slots go
        first, then running jobs' slots as their ETAs run out; a queued job is assumed to take the
        median duration of recent successful jobs. Other users' jobs are positions without a name
        or an owner (an admin sees them all)."""
        rows = await self._db(self.store.queued)
        active = await self._db(self.store.jobs_in_states, states.ACTIVE)
        durations = await self._db(self.store.recent_durations)
        return queue_estimate.estimate(rows, active, durations, free_slots, utcnow(), who.sees)

