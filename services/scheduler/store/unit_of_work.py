"""The unit of work the job domain changes a job through: the job's row (locked by the store) and
what hangs off it, its checkpoints and attempts, as small repositories; the domain never sees a
Session. The store commits it all, with the job's new events, in one transaction."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.scheduler.clock import utcnow
from services.scheduler.store.models import AttemptRow, CheckpointRow


class Checkpoints:
    def __init__(self, session: Session) -> None:
        self._s = session

    def saved(self, job_id: str, name: str, step: int, eval_loss: float | None, size_bytes: int) -> None:
        self._s.merge(CheckpointRow(job_id=job_id, name=name, step=step, eval_loss=eval_loss, size_bytes=size_bytes,
                                    create_time=utcnow()))

    def deleted(self, job_id: str, name: str) -> None:
        self._s.execute(delete(CheckpointRow).where(CheckpointRow.job_id == job_id, CheckpointRow.name == name))

    def latest(self, job_id: str) -> str:
        """The name of the job's checkpoint of the highest step, or ""."""
        row = self._s.scalars(select(CheckpointRow).where(CheckpointRow.job_id == job_id)
                              .order_by(CheckpointRow.step.desc()).limit(1)).first()
        return row.name if row is not None else ""


class Attempts:
    def __init__(self, session: Session) -> None:
        self._s = session

    def started(self, job_id: str, number: int, worker: str) -> None:
        self._s.add(AttemptRow(job_id=job_id, number=number, worker=worker, start_time=utcnow()))

    def ended(self, job_id: str, number: int, outcome: str, reason: str) -> None:
        """Close the attempt (once: a second end changes nothing)."""
        attempt = self._s.get(AttemptRow, (job_id, number))
        if attempt is not None and attempt.end_time is None:
            attempt.end_time, attempt.outcome, attempt.reason = utcnow(), outcome, reason

    def discarded(self, job_id: str, number: int) -> None:
        """Forget an attempt that never started (its run was refused or never reached)."""
        attempt = self._s.get(AttemptRow, (job_id, number))
        if attempt is not None:
            self._s.delete(attempt)


class Tx:
    """What a mutation of one job may touch besides the row: `tx.checkpoints`, `tx.attempts`."""

    def __init__(self, session: Session) -> None:
        self.checkpoints = Checkpoints(session)
        self.attempts = Attempts(session)
