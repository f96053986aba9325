"""The trainer's Prometheus metrics, set from the events its runs send (never in the child)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from ftlab.v1 import events_pb2
from services.trainer import gpu

if TYPE_CHECKING:
    from services.trainer.runs import Run

_GPU_MEMORY: tuple[tuple[Literal["gpu_memory_allocated_bytes", "gpu_memory_reserved_bytes", "gpu_memory_peak_bytes"],
                         str], ...] = (
    ("gpu_memory_allocated_bytes", "allocated"), ("gpu_memory_reserved_bytes", "reserved"),
    ("gpu_memory_peak_bytes", "peak"))


class GpuCollector:
    """Memory and utilization of every GPU of this machine, read through NVML at scrape time.
    Labelled with `gpu` (index) and `UUID` as NVIDIA's DCGM exporter does, so the series join."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readings = gpu.read_gpus()
        if not readings:
            return
        families: dict[Literal["total", "used", "utilization"], GaugeMetricFamily] = {
            "total": GaugeMetricFamily("ftlab_gpu_memory_total_bytes", "GPU memory in all.", labels=["gpu", "UUID"]),
            "used": GaugeMetricFamily("ftlab_gpu_memory_used_bytes", "GPU memory in use (all processes).",
                                      labels=["gpu", "UUID"]),
            "utilization": GaugeMetricFamily("ftlab_gpu_utilization_ratio", "GPU busy fraction over the last sample.",
                                             labels=["gpu", "UUID"]),
        }
        for r in readings:
            labels = [str(r["index"]), r["uuid"]]
            for key, family in families.items():
                family.add_metric(labels, r[key])
        yield from families.values()


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._registry = registry
        self.active = Gauge("ftlab_trainer_active_runs", "Training runs this trainer is running.", registry=registry)
        self.started = Counter("ftlab_trainer_runs_started", "Training runs started.", registry=registry)
        self.ended = Counter("ftlab_trainer_runs_ended", "Training runs ended, by outcome.", ["outcome"], registry=registry)
        self.gpu_memory = Gauge("ftlab_run_gpu_memory_bytes",
                                "GPU memory of a running run: allocated, reserved or peak (CUDA only).",
                                ["run", "job_id", "kind"], registry=registry)
        self.stuck = Counter("ftlab_stuck_job_timeouts", "Runs killed by the watchdog for making no progress, by phase.",
                             ["phase"], registry=registry)
        self.checkpoint_save = Histogram("ftlab_checkpoint_save_seconds", "Seconds a run took to write a checkpoint.",
                                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
                                         registry=registry)
        self.gpus = Gauge("ftlab_trainer_gpus", "GPUs this trainer has (0: CPU only).", registry=registry)
        self.generations = Counter("ftlab_generation_requests", "Text generation requests, by how they ended.",
                                   ["outcome"], registry=registry)
        self.generated_tokens = Counter("ftlab_generation_tokens", "Tokens generated for text generation requests.",
                                        registry=registry)
        self.first_token = Histogram("ftlab_generation_first_token_seconds",
                                     "Seconds from a generation request to its first token (model load included).",
                                     buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
                                     registry=registry)
        for outcome in ("ok", "stopped", "cancelled", "failed"):
            self.generations.labels(outcome)
        self.gpus.set(len(gpu.read_gpus()))
        for phase in events_pb2.Phase.keys()[1:]:  # every series exists from the start, at 0
            self.stuck.labels(phase.removeprefix("PHASE_").lower())
        for outcome in events_pb2.RunOutcome.keys()[1:]:
            self.ended.labels(outcome.removeprefix("RUN_OUTCOME_").lower())
        self._gpus = GpuCollector()
        registry.register(self._gpus)
        self._all = (self.active, self.started, self.ended, self.gpu_memory, self.stuck,
                     self.checkpoint_save, self.gpus, self._gpus,
                     self.generations, self.generated_tokens, self.first_token)

    def close(self) -> None:
        for m in self._all:
            self._registry.unregister(m)

    def on_generation(self, outcome: str, done: events_pb2.GenerationDone | None) -> None:
        self.generations.labels(outcome).inc()
        if done is not None:
            self.generated_tokens.inc(done.tokens)
            if done.tokens:
                self.first_token.observe(done.load_seconds + done.first_token_seconds)

    def on_event(self, run: Run, event: events_pb2.RunEvent) -> None:
        kind = event.WhichOneof("payload")
        labels = (run.run_id, run.job_id)
        if event.sequence == 1:
            self.started.inc()
        if kind == "metrics":
            m = event.metrics
            for field, name in _GPU_MEMORY:
                if m.HasField(field):
                    self.gpu_memory.labels(*labels, name).set(getattr(m, field))
        elif kind == "checkpoint_saved" and event.checkpoint_saved.HasField("save_seconds"):
            self.checkpoint_save.observe(event.checkpoint_saved.save_seconds)
        elif kind == "finished":
            self.ended.labels(events_pb2.RunOutcome.Name(event.finished.outcome).removeprefix("RUN_OUTCOME_").lower()).inc()
            for name in ("allocated", "reserved", "peak"):
                _remove(self.gpu_memory, *labels, name)


def _remove(gauge: Gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass
