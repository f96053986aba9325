"""The scheduler's repository: jobs, their numbered events, checkpoints and attempts.

Every method is one transaction. Events get dense per-job sequence numbers assigned under the job
row's lock (SELECT ... FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite), and the caller's
`mutate` runs in the same transaction, so a state change and its event are stored together or not
at all. Database errors surface as `StoreError`.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, ParamSpec, TypeVar

from google.protobuf import json_format
from sqlalchemy import Engine, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ftlab.v1 import job_pb2
from services.common.errors import FieldViolation, InvalidArgument, Unavailable
from services.scheduler.clock import aware, utcnow
from services.scheduler.store.models import AttemptRow, CheckpointRow, JobEventRow, JobRow
from services.scheduler.store.unit_of_work import Tx

Mutate = Callable[[JobRow, Tx], Iterable[job_pb2.JobEvent] | None]  # the row, its unit of work
P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)
_FULL = ("database or disk is full", "no space left on device", "disk full", "could not extend file")


class StoreError(Unavailable):
    """The database failed; the operation did not happen. The message says so plainly (the driver's
    text, which may quote SQL and server paths, goes to the log only); callers may try again."""


def _store_error(what: str, exc: Exception) -> StoreError:
    text = str(exc).lower()
    log.error("database error while trying to %s: %s", what, str(exc)[:2000])
    if any(marker in text for marker in _FULL):
        return StoreError(f"could not {what}: the scheduler's database has no space left; try again once an "
                          "administrator has freed space", reason="DATABASE_FULL")
    return StoreError(f"could not {what}: the scheduler's database is unavailable; try again shortly",
                      reason="DATABASE_UNAVAILABLE")


def _guarded(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Database errors of the decorated method become StoreError."""
    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except SQLAlchemyError as exc:
                raise _store_error(what, exc) from exc
        return call
    return wrap


__all__ = ["JobStore", "aware", "utcnow", "decode_token", "encode_token"]


def _event_to_row(job_id: str, event: job_pb2.JobEvent) -> JobEventRow:
    return JobEventRow(
        job_id=job_id,
        sequence=event.sequence,
        time=event.time.ToDatetime(tzinfo=timezone.utc),
        kind=event.WhichOneof("payload") or "",
        payload_json=json_format.MessageToJson(event, indent=None),
    )


def _row_to_event(row: JobEventRow) -> job_pb2.JobEvent:
    return json_format.Parse(row.payload_json, job_pb2.JobEvent())


def encode_token(values: Sequence[str | int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def decode_token(token: str, shape: tuple[type, ...], field: str = "page_token") -> list[Any]:
    """The values of a page token this server issued, each of the type `shape` gives."""
    try:
        values = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(values, list):
            raise ValueError("wrong shape")
        ok = len(values) == len(shape) and all(
            isinstance(v, t) and not isinstance(v, bool) for v, t in zip(values, shape, strict=True))
        if not ok or any(isinstance(v, int) and not 0 <= v < 1 << 63 for v in values):
            raise ValueError("wrong shape")
        return values
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidArgument("invalid page token", violations=[FieldViolation(field, "not a token this server issued")]) from exc


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self._sessions()

    # jobs
    def create_job(self, row: JobRow, first_events: list[job_pb2.JobEvent]) -> tuple[JobRow, bool]:
        """Insert a job with its first events; with a request_id already used by the owner, return
        the existing job and False."""
        try:
            with self._session() as s, s.begin():
                if row.request_id:
                    existing = s.scalar(select(JobRow).where(JobRow.owner == row.owner, JobRow.request_id == row.request_id))
                    if existing is not None:
                        return existing, False
                s.add(row)
                s.flush()
                for event in self._number(row, first_events):
                    s.add(_event_to_row(row.id, event))
                return row, True
        except IntegrityError as exc:
            if row.request_id:  # a concurrent request with the same key won the race
                with self._session() as s:
                    existing = s.scalar(select(JobRow).where(JobRow.owner == row.owner, JobRow.request_id == row.request_id))
                    if existing is not None:
                        return existing, False
            raise _store_error("create the job", exc) from exc
        except SQLAlchemyError as exc:
            raise _store_error("create the job", exc) from exc

    @staticmethod
    def _number(row: JobRow, events: Iterable[job_pb2.JobEvent]) -> list[job_pb2.JobEvent]:
        out = []
        for event in events:
            row.last_sequence += 1
            event.sequence = row.last_sequence
            if not event.HasField("time"):
                event.time.FromDatetime(utcnow())
            out.append(event)
        return out

    @_guarded("read a job")
    def get_job(self, job_id: str) -> JobRow | None:
        with self._session() as s:
            row: JobRow | None = s.get(JobRow, job_id)
            return row

    @_guarded("list jobs")
    def list_jobs(self, *, owner: str | None, states: list[str], page_size: int, page_token: str) -> tuple[list[JobRow], str]:
        q = select(JobRow)
        if owner is not None:
            q = q.where(JobRow.owner == owner)
        if states:
            q = q.where(JobRow.state.in_(states))
        if page_token:
            created, job_id = decode_token(page_token, (str, str))
            try:
                after = datetime.fromisoformat(created)
            except ValueError:
                raise InvalidArgument("invalid page token", violations=[
                    FieldViolation("page_token", "not a token this server issued")]) from None
            q = q.where(tuple_(JobRow.create_time, JobRow.id) < tuple_(after, job_id))
        q = q.order_by(JobRow.create_time.desc(), JobRow.id.desc()).limit(page_size + 1)
        with self._session() as s:
            rows = list(s.scalars(q))
        if len(rows) <= page_size:
            return rows, ""
        last = rows[page_size - 1]
        return rows[:page_size], encode_token([aware(last.create_time).isoformat(), last.id])

    def update(self, job_id: str, mutate: Mutate) -> tuple[JobRow, list[job_pb2.JobEvent]]:
        """Lock the job, let `mutate` change it and return events to append; commit both."""
        try:
            with self._session() as s, s.begin():
                row = s.scalar(select(JobRow).where(JobRow.id == job_id).with_for_update())
                if row is None:
                    raise KeyError(job_id)
                events = self._number(row, list(mutate(row, Tx(s)) or ()))
                for event in events:
                    s.add(_event_to_row(job_id, event))
                row.update_time = utcnow()
                return row, events
        except SQLAlchemyError as exc:
            raise _store_error(f"update job {job_id}", exc) from exc

    @_guarded("read job events")
    def events_after(self, job_id: str, after: int, limit: int) -> list[job_pb2.JobEvent]:
        q = (select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.sequence > after)
             .order_by(JobEventRow.sequence).limit(limit))
        with self._session() as s:
            return [_row_to_event(r) for r in s.scalars(q)]

    @_guarded("count jobs")
    def count_by_state(self) -> dict[str, int]:
        with self._session() as s:
            return dict(s.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all())

    @_guarded("read the queue")
    def queued(self) -> list[JobRow]:
        """Queued jobs in the order they start: priority (higher first), then age."""
        q = select(JobRow).where(JobRow.state == "JOB_STATE_QUEUED").order_by(
            JobRow.priority.desc(), JobRow.create_time, JobRow.id)
        with self._session() as s:
            return list(s.scalars(q))

    @_guarded("read jobs")
    def jobs_in_states(self, states: Iterable[str]) -> list[JobRow]:
        with self._session() as s:
            return list(s.scalars(select(JobRow).where(JobRow.state.in_(list(states)))))

    def claim_next(self, mutate: Mutate, *, active_states: Iterable[str] = (),
                   max_active_per_owner: int = 0) -> tuple[JobRow, list[job_pb2.JobEvent]] | None:
        """Lock the first queued job that may start now and that no other scheduler holds (SKIP
        LOCKED), skipping owners who already have `max_active_per_owner` jobs in `active_states`."""
        q = (select(JobRow).where(JobRow.state == "JOB_STATE_QUEUED",
                                  or_(JobRow.not_before.is_(None), JobRow.not_before <= utcnow()))
             .order_by(JobRow.priority.desc(), JobRow.create_time, JobRow.id)
             .limit(1).with_for_update(skip_locked=True))
        try:
            with self._session() as s, s.begin():
                if max_active_per_owner > 0:
                    full = (select(JobRow.owner).where(JobRow.state.in_(list(active_states)))
                            .group_by(JobRow.owner).having(func.count() >= max_active_per_owner))
                    q = q.where(JobRow.owner.not_in(full))
                row = s.scalar(q)
                if row is None:
                    return None
                events = self._number(row, list(mutate(row, Tx(s)) or ()))
                for event in events:
                    s.add(_event_to_row(row.id, event))
                row.update_time = utcnow()
                return row, events
        except SQLAlchemyError as exc:
            raise _store_error("claim a job", exc) from exc

    @_guarded("read job durations")
    def recent_durations(self, limit: int = 20) -> list[float]:
        """Seconds from start to end of the latest succeeded jobs."""
        q = (select(JobRow.start_time, JobRow.end_time).where(JobRow.state == "JOB_STATE_SUCCEEDED",
                                                             JobRow.start_time.is_not(None))
             .order_by(JobRow.end_time.desc()).limit(limit))
        with self._session() as s:
            return [(aware(end) - aware(start)).total_seconds() for start, end in s.execute(q)]

    # checkpoints and attempts
    @_guarded("read checkpoints")
    def checkpoints(self, job_id: str) -> list[CheckpointRow]:
        with self._session() as s:
            return list(s.scalars(select(CheckpointRow).where(CheckpointRow.job_id == job_id).order_by(CheckpointRow.step)))

    @_guarded("read attempts")
    def attempts(self, job_id: str) -> list[AttemptRow]:
        with self._session() as s:
            return list(s.scalars(select(AttemptRow).where(AttemptRow.job_id == job_id).order_by(AttemptRow.number)))
