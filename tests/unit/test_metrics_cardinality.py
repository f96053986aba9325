"""Per-job and per-run series exist only while the job runs: the number of series after 1,000 jobs
is the number after 10, for the scheduler's metrics and the trainer's."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from google.protobuf import json_format
from prometheus_client import CollectorRegistry

from ftlab.v1 import events_pb2, job_pb2
from services.scheduler import states
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.store.repository import utcnow
from services.trainer.metrics import TrainerMetrics


def series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def scheduler_jobs(metrics: SchedulerMetrics, start: int, count: int) -> None:
    for i in range(start, start + count):
        progress = json_format.MessageToJson(job_pb2.Progress(step=3, loss=1.5, eval_loss=1.6, tokens_per_second=900.0,
                                                              samples_per_second=4.0, gpu_memory_peak_bytes=1 << 30))
        row = SimpleNamespace(id=f"{i:016x}", state=states.RUNNING, progress_json=progress, attempt=1,
                              create_time=utcnow() - timedelta(seconds=i % 300))
        metrics.job_started(row)
        metrics.observe_job(row)
        row.state = (states.SUCCEEDED, states.FAILED, states.CANCELLED)[i % 3]
        metrics.job_ended(row.state)
        if row.state == states.FAILED:
            metrics.job_failed(("CUDA_OOM", "DATASET_NOT_FOUND", "UNKNOWN")[i % 3])
        metrics.observe_job(row)


def test_scheduler_series_do_not_grow_with_jobs():
    registry = CollectorRegistry()
    metrics = SchedulerMetrics(lambda: {states.QUEUED: 2, states.RUNNING: 1}, registry=registry)
    scheduler_jobs(metrics, 0, 10)
    after_10 = series(registry)
    scheduler_jobs(metrics, 10, 990)
    assert series(registry) == after_10
    text = "\n".join(f"{s.name}{s.labels}" for fam in registry.collect() for s in fam.samples)
    assert "0000000000000005" not in text  # no ended job's series left
    assert metrics.first_step._sum.get() > 0 and metrics.queue_wait._sum.get() > 0


def trainer_runs(metrics: TrainerMetrics, start: int, count: int) -> None:
    for i in range(start, start + count):
        run = SimpleNamespace(run_id=f"{i:016x}-1", job_id=f"{i:016x}")
        events = [events_pb2.RunEvent(sequence=1, metrics=events_pb2.TrainingMetrics(
                      step=1, tokens_per_second=10.0, samples_per_second=1.0, gpu_memory_allocated_bytes=5,
                      gpu_memory_reserved_bytes=6, gpu_memory_peak_bytes=7)),
                  events_pb2.RunEvent(sequence=2, checkpoint_saved=events_pb2.CheckpointSaved(
                      name="checkpoint-1", step=1, save_seconds=0.5)),
                  events_pb2.RunEvent(sequence=3, finished=events_pb2.RunFinished(
                      outcome=events_pb2.RUN_OUTCOME_SUCCEEDED))]
        for e in events:
            metrics.on_event(run, e)


def test_trainer_series_do_not_grow_with_runs():
    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry=registry)
    trainer_runs(metrics, 0, 10)
    after_10 = series(registry)
    trainer_runs(metrics, 10, 990)
    assert series(registry) == after_10
    assert metrics.checkpoint_save._sum.get() == 500.0


def test_the_wait_buckets_resolve_the_waits_they_measure():
    """A job that starts at once waits tens of milliseconds; the p50 that Prometheus's
    histogram_quantile reads from the buckets must be near the true one, not half the lowest bucket."""
    import statistics

    from services.scheduler.metrics import WAIT_BUCKETS

    for waits in ([0.03, 0.06, 0.08, 0.12, 0.2], [0.4, 0.7, 1.1, 1.3, 1.8], [45.0, 80.0, 200.0, 700.0, 4000.0]):
        counts = [sum(w <= b for w in waits) for b in WAIT_BUCKETS]
        rank = 0.5 * len(waits)
        i = next(i for i, c in enumerate(counts) if c >= rank)
        lower, below = (WAIT_BUCKETS[i - 1], counts[i - 1]) if i else (0.0, 0)
        p50 = lower + (WAIT_BUCKETS[i] - lower) * (rank - below) / (counts[i] - below)  # as histogram_quantile does
        true = statistics.median(waits)
        assert true / 2.5 <= p50 <= true * 2.5, (waits, p50, true)
