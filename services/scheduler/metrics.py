"""The scheduler's Prometheus metrics. Per-job series exist only while the job runs."""

from __future__ import annotations

import logging
from typing import Callable

from google.protobuf import json_format
from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import GaugeMetricFamily

from ftlab.v1 import job_pb2
from services.scheduler import states

log = logging.getLogger(__name__)
ALL_STATES = [n for n in job_pb2.JobState.keys() if n != "JOB_STATE_UNSPECIFIED"]


class _StateCollector:
    """Reads job counts by state from the database at scrape time, so they are right after restarts."""

    def __init__(self, count_by_state: Callable[[], dict[str, int]]) -> None:
        self._count = count_by_state

    def collect(self):
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
    def __init__(self, count_by_state: Callable[[], dict[str, int]], registry=REGISTRY) -> None:
        self._collector = _StateCollector(count_by_state)
        registry.register(self._collector)
        self._registry = registry
        self.tokens = _gauge("ftlab_job_tokens_per_second", "Non-padding input tokens per second of a running job.", registry)
        self.samples = _gauge("ftlab_job_samples_per_second", "Training samples per second of a running job.", registry)
        self.loss = _gauge("ftlab_job_loss", "Latest training loss of a running job.", registry)
        self.eval_loss = _gauge("ftlab_job_eval_loss", "Latest evaluation loss of a running job.", registry)
        self.step = _gauge("ftlab_job_step", "Optimizer step reached by a running job.", registry)
        self.gpu_peak = _gauge("ftlab_job_gpu_memory_peak_bytes", "Peak GPU memory of a running job.", registry)
        self._per_job = (self.tokens, self.samples, self.loss, self.eval_loss, self.step, self.gpu_peak)
        self._live: set[str] = set()

    def close(self) -> None:
        self._registry.unregister(self._collector)
        for g in self._per_job:
            self._registry.unregister(g)

    def observe_job(self, row) -> None:
        """Update a job's series from its row, or drop them once it no longer runs."""
        if row is None:
            return
        if row.state not in (states.RUNNING, states.PAUSING, states.CANCELLING):
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
        self.tokens.labels(row.id).set(p.tokens_per_second)
        self.samples.labels(row.id).set(p.samples_per_second)
        self.step.labels(row.id).set(p.step)
        if p.HasField("loss"):
            self.loss.labels(row.id).set(p.loss)
        if p.HasField("eval_loss"):
            self.eval_loss.labels(row.id).set(p.eval_loss)
        if p.HasField("gpu_memory_peak_bytes"):
            self.gpu_peak.labels(row.id).set(p.gpu_memory_peak_bytes)


def _gauge(name: str, doc: str, registry) -> Gauge:
    return Gauge(name, doc, ["job"], registry=registry)
