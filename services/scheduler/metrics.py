"""The scheduler's Prometheus metrics. Per-job series exist only while the job runs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from google.protobuf import json_format
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from ftlab.v1 import analyzer_pb2, job_pb2
from services.scheduler import states
from services.scheduler.store.models import JobRow
from services.scheduler.store.repository import aware, utcnow

log = logging.getLogger(__name__)
ALL_STATES = [n for n in job_pb2.JobState.keys() if n != "JOB_STATE_UNSPECIFIED"]


class _StateCollector:
    """Reads job counts by state from the database at scrape time, so they are right after restarts."""

    def __init__(self, count_by_state: Callable[[], dict[str, int]]) -> None:
        self._count = count_by_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = self._count()
        except Exception:  # a scrape must not fail because the database hiccuped
            log.exception("could not count jobs")
            return
        jobs = GaugeMetricFamily("ftlab_jobs", "Jobs by state.", labels=["state"])
        for state in ALL_STATES:
            jobs.add_metric([state.removeprefix("JOB_STATE_").lower()], counts.get(state, 0))
        yield jobs
        yield GaugeMetricFamily("ftlab_queue_depth", "Jobs waiting in the queue.", value=counts.get(states.QUEUED, 0))


class SchedulerMetrics:
    def __init__(self, count_by_state: Callable[[], dict[str, int]], registry: CollectorRegistry = REGISTRY) -> None:
        self._collector = _StateCollector(count_by_state)
        registry.register(self._collector)
        self._registry = registry
        self.tokens = _gauge("ftlab_job_tokens_per_second", "Non-padding input tokens per second of a running job.", registry)
        self.samples = _gauge("ftlab_job_samples_per_second", "Training samples per second of a running job.", registry)
        self.loss = _gauge("ftlab_job_loss", "Latest training loss of a running job.", registry)
        self.eval_loss = _gauge("ftlab_job_eval_loss", "Latest evaluation loss of a running job.", registry)
        self.step = _gauge("ftlab_job_step", "Optimizer step reached by a running job.", registry)
        self.gpu_peak = _gauge("ftlab_job_gpu_memory_peak_bytes", "Peak GPU memory of a running job.", registry)
        self.token_accuracy = _gauge("ftlab_job_token_accuracy", "Latest share of next tokens a running job's model "
                                     "predicted right (TRL's mean_token_accuracy).", registry)
        self.entropy = _gauge("ftlab_job_entropy", "Latest mean next-token entropy of a running job, in nats.", registry)
        self.rewards = {name: _gauge(f"ftlab_job_dpo_reward_{name}", doc, registry) for name, doc in (
            ("chosen", "Latest mean implicit reward of the chosen answers of a running DPO job."),
            ("rejected", "Latest mean implicit reward of the rejected answers of a running DPO job."),
            ("margin", "Latest mean reward margin, chosen minus rejected, of a running DPO job."),
            ("accuracy", "Latest share of pairs whose chosen answer a running DPO job rewards higher."))}
        self._per_job = (self.tokens, self.samples, self.loss, self.eval_loss, self.step, self.gpu_peak,
                         self.token_accuracy, self.entropy, *self.rewards.values())
        self.queue_wait = Histogram("ftlab_queue_wait_seconds", "Time from submission to a job's first start.",
                                    buckets=WAIT_BUCKETS, registry=registry)
        self.first_step = Histogram("ftlab_job_first_step_seconds",
                                    "Time from submission to a job's first training step.", buckets=WAIT_BUCKETS,
                                    registry=registry)
        self.failures = Counter("ftlab_job_failures", "Failed jobs, by the analyzer's failure category.",
                                ["category"], registry=registry)
        self.ended = Counter("ftlab_jobs_ended", "Jobs that reached a final state, by state.", ["state"],
                             registry=registry)
        for category in analyzer_pb2.FailureCategory.keys()[1:]:  # every series exists from the start, at 0
            self.failures.labels(category.removeprefix("FAILURE_CATEGORY_").lower())
        for state in (states.SUCCEEDED, states.FAILED, states.CANCELLED):
            self.ended.labels(_state_label(state))
        self._all = (*self._per_job, self.queue_wait, self.first_step, self.failures, self.ended)
        self._live: set[str] = set()
        self._stepped: set[str] = set()  # running jobs whose first step is counted

    def close(self) -> None:
        self._registry.unregister(self._collector)
        for m in self._all:
            self._registry.unregister(m)

    def job_started(self, row: JobRow) -> None:
        """A job left the queue for a worker: its first start counts toward the queue wait."""
        if row.attempt == 1:
            self.queue_wait.observe(max(0.0, (utcnow() - aware(row.create_time)).total_seconds()))

    def job_ended(self, state: str) -> None:
        self.ended.labels(_state_label(state)).inc()

    def job_failed(self, category: str) -> None:
        self.failures.labels(category.lower()).inc()

    def observe_job(self, row: JobRow | None) -> None:
        """Update a job's series from its row, or drop them once it no longer runs."""
        if row is None:
            return
        if row.state not in (states.RUNNING, states.PAUSING, states.CANCELLING):
            self._stepped.discard(row.id)
            if row.id in self._live:
                self._live.discard(row.id)
                for g in self._per_job:
                    try:
                        g.remove(row.id)
                    except KeyError:
                        pass
            return
        self._live.add(row.id)
        p = json_format.Parse(row.progress_json, job_pb2.Progress())
        if p.step >= 1 and row.attempt == 1 and row.id not in self._stepped:
            self._stepped.add(row.id)
            self.first_step.observe(max(0.0, (utcnow() - aware(row.create_time)).total_seconds()))
        self.tokens.labels(row.id).set(p.tokens_per_second)
        self.samples.labels(row.id).set(p.samples_per_second)
        self.step.labels(row.id).set(p.step)
        if p.HasField("loss"):
            self.loss.labels(row.id).set(p.loss)
        if p.HasField("eval_loss"):
            self.eval_loss.labels(row.id).set(p.eval_loss)
        if p.HasField("gpu_memory_peak_bytes"):
            self.gpu_peak.labels(row.id).set(p.gpu_memory_peak_bytes)
        if p.HasField("mean_token_accuracy"):
            self.token_accuracy.labels(row.id).set(p.mean_token_accuracy)
        if p.HasField("entropy"):
            self.entropy.labels(row.id).set(p.entropy)
        if p.HasField("rewards"):
            r = p.rewards
            for name, value in (("chosen", r.chosen), ("rejected", r.rejected), ("margin", r.margins),
                                ("accuracy", r.accuracies)):
                self.rewards[name].labels(row.id).set(value)


# waits run from tens of milliseconds (a free slot, a forked run) to hours (a busy queue)
WAIT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


def _gauge(name: str, doc: str, registry: CollectorRegistry) -> Gauge:
    # `job_id`, not `job`: Prometheus gives every series a `job` label of its own (the scrape job)
    return Gauge(name, doc, ["job_id"], registry=registry)


def _state_label(state: str) -> str:
    return state.removeprefix("JOB_STATE_").lower()
