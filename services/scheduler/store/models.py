"""SQLAlchemy 2.0 typed models of the scheduler's state. Schema changes go through Alembic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):  # type: ignore[misc]  # SQLAlchemy is read as Any (pyproject's mypy overrides)
    pass


class JobRow(Base):
    """A job and its current state. Configs and details are stored as protobuf JSON."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "request_id", name="uq_jobs_owner_request_id"),
        Index("ix_jobs_state_priority_created", "state", "priority", "create_time"),
        Index("ix_jobs_owner_created", "owner", "create_time"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(256), default="")
    state: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(32), default="PHASE_UNSPECIFIED")
    template: Mapped[str] = mapped_column(String(64), default="")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    config_json: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    worker: Mapped[str] = mapped_column(String(128), default="")
    run_id: Mapped[str] = mapped_column(String(64), default="")
    run_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_json: Mapped[str] = mapped_column(Text, default="{}")
    error_json: Mapped[str] = mapped_column(Text, default="{}")
    analysis_json: Mapped[str] = mapped_column(Text, default="{}")
    retry_policy_json: Mapped[str] = mapped_column(Text, default="{}")
    watchdog_json: Mapped[str] = mapped_column(Text, default="{}")
    state_reason: Mapped[str] = mapped_column(Text, default="")
    resume_checkpoint: Mapped[str] = mapped_column(String(256), default="")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker_losses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    scheduler_id: Mapped[str] = mapped_column(String(128), default="", server_default="")
    failure_counts_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    preflight_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    changes_json: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    automatic: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    effective_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    tuning_json: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    kind: Mapped[str] = mapped_column(String(32), default="JOB_KIND_TRAINING", server_default="JOB_KIND_TRAINING")
    evaluation_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # EvaluationConfig
    results_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # EvaluationResults
    metadata_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # the creator's key-values


class JobEventRow(Base):
    """One event of a job; (job_id, sequence) is dense: 1, 2, 3..."""

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    payload_json: Mapped[str] = mapped_column(Text)


class CheckpointRow(Base):
    """A checkpoint a job's run saved."""

    __tablename__ = "checkpoints"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    eval_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttemptRow(Base):
    """One try at running a job."""

    __tablename__ = "attempts"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str] = mapped_column(String(128))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32), default="RUN_OUTCOME_UNSPECIFIED")
    reason: Mapped[str] = mapped_column(Text, default="")
