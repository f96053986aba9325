"""A small typed client for the JobService. Every call has a deadline; only reads are retried."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format

from ftlab import messages as build
from ftlab.config import config_from_dict, resolve_local_paths
from ftlab.connection import RETRYABLE, Connection
from ftlab.errors import FtlabError
from ftlab.v1 import (
    analyzer_pb2,
    artifact_service_pb2,
    config_pb2,
    events_pb2,
    job_pb2,
    job_service_pb2,
)

if TYPE_CHECKING:
    from ftlab.compare import Comparison
    from ftlab.download import Downloaded

FINAL_STATES = frozenset({job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED})


class Client(Connection):
    """Talks to a FineTune Lab server: `Client("localhost:50051")`, or FTLAB_ADDRESS."""

    # jobs
    def create_job(self, config: config_pb2.TrainingConfig | dict[str, Any] | None = None, *, template: str = "",
                   display_name: str = "", priority: int = 0, request_id: str | None = None, force: bool = False,
                   validate_only: bool = False,
                   retry_policy: job_pb2.RetryPolicy | dict[str, Any] | None = None,
                   watchdog: job_pb2.WatchdogConfig | dict[str, Any] | None = None,
                   metadata: dict[str, str] | None = None) -> job_pb2.Job:
        """Queue a job. A request_id (generated when omitted) makes retries of this call safe.
        Pre-flight refuses a job that cannot run (FAILED_PRECONDITION) unless `force`; `validate_only`
        returns the job as it would be, with its pre-flight findings, and creates nothing."""
        if isinstance(config, dict):
            config = config_from_dict(config)
        if config is not None:
            config = resolve_local_paths(_copy(config))  # "./tiny" is where the caller stands
        request = job_service_pb2.CreateJobRequest(
            template=template, config=config, display_name=display_name, priority=priority,
            request_id=request_id or uuid.uuid4().hex, force=force, validate_only=validate_only,
            metadata=metadata or {})
        if retry_policy is not None:
            if isinstance(retry_policy, dict):
                retry_policy = json_format.ParseDict(retry_policy, job_pb2.RetryPolicy())
            request.retry_policy.CopyFrom(retry_policy)
        if watchdog is not None:
            if isinstance(watchdog, dict):
                watchdog = json_format.ParseDict(watchdog, job_pb2.WatchdogConfig())
            request.watchdog.CopyFrom(watchdog)
        reply: job_service_pb2.CreateJobResponse = self._call(self.jobs.CreateJob, request, idempotent=True)
        return reply.job

    def get_job(self, name: str) -> job_pb2.Job:
        reply: job_service_pb2.GetJobResponse = self._call(self.jobs.GetJob, job_service_pb2.GetJobRequest(name=name),
                                                            idempotent=True)
        return reply.job

    def list_jobs(self, states: Sequence[job_pb2.JobState.ValueType] | None = None,
                  page_size: int = 100) -> Iterator[job_pb2.Job]:
        token = ""
        while True:
            page: job_service_pb2.ListJobsResponse = self._call(self.jobs.ListJobs, job_service_pb2.ListJobsRequest(
                states=states or [], page_size=page_size, page_token=token), idempotent=True)
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def cancel_job(self, name: str, grace_seconds: float | None = None) -> job_pb2.Job:
        request = job_service_pb2.CancelJobRequest(name=name)
        if grace_seconds is not None:
            request.grace_seconds = grace_seconds
        reply: job_service_pb2.CancelJobResponse = self._call(self.jobs.CancelJob, request, idempotent=False)
        return reply.job

    def pause_job(self, name: str) -> job_pb2.Job:
        reply: job_service_pb2.PauseJobResponse = self._call(
            self.jobs.PauseJob, job_service_pb2.PauseJobRequest(name=name), idempotent=False)
        return reply.job

    def resume_job(self, name: str, checkpoint_name: str = "") -> job_pb2.Job:
        request = job_service_pb2.ResumeJobRequest(name=name, checkpoint_name=checkpoint_name)
        if checkpoint_name:
            request.checkpoint = job_pb2.CHECKPOINT_SELECTOR_NAMED
        reply: job_service_pb2.ResumeJobResponse = self._call(self.jobs.ResumeJob, request, idempotent=False)
        return reply.job

    def retry_job(self, name: str, changes: config_pb2.TrainingConfig | dict[str, Any] | None = None, *,
                  checkpoint: str = "", apply_suggestions: bool = False, force: bool = False,
                  request_id: str | None = None) -> job_pb2.Job:
        """A new job from an ended one (a retry of a failed or cancelled job, a continuation or fork of a
        succeeded one), with `changes` and (if asked) the analyzer's
        suggestions, starting from `checkpoint`: "best", "latest", a name, or "" / "none" for none."""
        if isinstance(changes, dict):
            changes = config_from_dict(changes)
        if changes is not None:
            changes = resolve_local_paths(_copy(changes))
        request = job_service_pb2.RetryJobRequest(name=name, config_changes=changes, apply_suggestions=apply_suggestions,
                                                  force=force, request_id=request_id or uuid.uuid4().hex)
        request.checkpoint, request.checkpoint_name = build.checkpoint_selector(checkpoint, none=True)
        reply: job_service_pb2.RetryJobResponse = self._call(self.jobs.RetryJob, request, idempotent=True)
        return reply.job

    def set_priority(self, name: str, priority: int) -> job_pb2.Job:
        request = job_service_pb2.SetJobPriorityRequest(name=name, priority=priority)
        reply: job_service_pb2.SetJobPriorityResponse = self._call(self.jobs.SetJobPriority, request, idempotent=True)
        return reply.job

    def list_checkpoints(self, name: str) -> list[job_pb2.Checkpoint]:
        reply: job_service_pb2.ListCheckpointsResponse = self._call(
            self.jobs.ListCheckpoints, job_service_pb2.ListCheckpointsRequest(name=name), idempotent=True)
        return list(reply.checkpoints)

    def list_events(self, name: str, after_sequence: int = 0) -> list[job_pb2.JobEvent]:
        events: list[job_pb2.JobEvent] = []
        token = ""
        while True:
            page: job_service_pb2.ListJobEventsResponse = self._call(self.jobs.ListJobEvents, job_service_pb2.ListJobEventsRequest(
                name=name, after_sequence=after_sequence, page_size=1000, page_token=token), idempotent=True)
            events += page.events
            token = page.next_page_token
            if not token:
                return events

    def list_samples(self, name: str, checkpoint: str = "") -> list[events_pb2.Samples]:
        """The job's answers to its sample prompts, oldest first: one Samples per evaluation and one for
        the final model. `checkpoint` ("best", "latest" or a name such as "checkpoint-20") keeps those of
        that checkpoint's step."""
        samples = [e.samples for e in self.list_events(name) if e.HasField("samples")]
        if not checkpoint:
            return samples
        known = self.list_checkpoints(name)
        chosen = next((c for c in known if (checkpoint == "best" and c.is_best) or (checkpoint == "latest" and c.is_latest)
                       or c.name == checkpoint), None)
        if chosen is None:
            raise FtlabError(grpc.StatusCode.NOT_FOUND, f"{name} has no checkpoint {checkpoint!r}",
                             [("checkpoint", "best, latest or a name from `list_checkpoints`")])
        return [s for s in samples if s.step == chosen.step and not s.final]

    def compare(self, names: list[str]) -> Comparison:
        """The jobs side by side: config changes against the first, losses, speed, answers, lineage
        (ftlab.compare)."""
        from ftlab.compare import compare

        return compare(self, names)

    def list_templates(self) -> list[config_pb2.Template]:
        reply: job_service_pb2.ListTemplatesResponse = self._call(
            self.jobs.ListTemplates, job_service_pb2.ListTemplatesRequest(), idempotent=True)
        return list(reply.templates)

    def get_queue(self) -> job_service_pb2.GetQueueResponse:
        reply: job_service_pb2.GetQueueResponse = self._call(self.jobs.GetQueue, job_service_pb2.GetQueueRequest(),
                                                              idempotent=True)
        return reply

    def analyze_failure(self, log: str, config: config_pb2.TrainingConfig | dict[str, Any] | None = None,
                        exit_code: int | None = None, signal: int | None = None) -> analyzer_pb2.FailureAnalysis:
        """Ask the AnalyzerService why a run with this log failed and what to change."""
        if isinstance(config, dict):
            config = config_from_dict(config)
        request = analyzer_pb2.AnalyzeFailureRequest(log=log)
        if config is not None:
            request.config_json = json_format.MessageToJson(config)
        if exit_code is not None:
            request.exit_code = exit_code
        if signal is not None:
            request.signal = signal
        reply: analyzer_pb2.AnalyzeFailureResponse = self._call(self.analyzer.AnalyzeFailure, request, idempotent=True)
        return reply.analysis

    def list_artifacts(self, name: str) -> list[artifact_service_pb2.Artifact]:
        reply: artifact_service_pb2.ListArtifactsResponse = self._call(
            self.artifacts.ListArtifacts, artifact_service_pb2.ListArtifactsRequest(job=name), idempotent=True)
        return list(reply.artifacts)

    def download(self, name: str, path: str | os.PathLike[str], *, what: str = "checkpoint", checkpoint: str = "",
                 merged: bool = False, progress: Callable[[int, int], object] | None = None) -> Downloaded:
        """Download a job's `what` (checkpoint, model, adapter, logs or all; `checkpoint` best, latest or a
        name) as a zip to `path`, resuming a partial earlier try, and verify it against its manifest."""
        from ftlab.download import download, request_for

        try:
            return download(self.artifacts.DownloadArtifact, request_for(name, what, checkpoint, merged), path,
                            metadata=self._metadata, progress=progress)
        except grpc.RpcError as err:
            raise FtlabError.from_rpc(err) from None

    def list_datasets(self) -> list[artifact_service_pb2.Dataset]:
        """Your uploaded datasets, newest first: name ("datasets/{sha256}"), file name, format, rows, bad
        rows, size, and when you uploaded them."""
        reply: artifact_service_pb2.ListDatasetsResponse = self._call(
            self.artifacts.ListDatasets, artifact_service_pb2.ListDatasetsRequest(), idempotent=True)
        return list(reply.datasets)

    def upload_dataset(self, path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20,
                       progress: Callable[[int, int], object] | None = None) -> artifact_service_pb2.Dataset:
        """Upload a JSONL, JSON, CSV or Parquet dataset; returns it as stored, with its report. Jobs name
        it by the returned `name` ("datasets/{sha256}"). Sending the same content again stores nothing new."""
        messages = build.upload_messages(Path(path), chunk_bytes, progress)
        try:
            reply: artifact_service_pb2.UploadDatasetResponse = self.artifacts.UploadDataset(
                messages, metadata=self._metadata, timeout=max(self.timeout, 600.0))
            return reply.dataset
        except grpc.RpcError as err:
            raise FtlabError.from_rpc(err) from None

    def watch(self, name: str, after_sequence: int = 0, follow: bool = True, reconnect: bool = True,
              timeout: float | None = None) -> Iterator[job_service_pb2.WatchJobResponse]:
        """Yield the job's events after `after_sequence`; with `follow`, until it ends. A broken
        stream is reopened after the last event received, so nothing is missed or repeated.
        With `timeout`, raise TimeoutError once that many seconds have passed."""
        cursor, failures = after_sequence, 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
            stream = self.jobs.WatchJob(job_service_pb2.WatchJobRequest(name=name, after_sequence=cursor, follow=follow),
                                        metadata=self._metadata, timeout=remaining)
            try:
                for response in stream:
                    cursor, failures = response.event.sequence, 0
                    yield response
                return
            except grpc.RpcError as err:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"watching {name}: no end after {timeout}s") from None
                failures += 1
                if not reconnect or err.code() not in RETRYABLE or failures > 10:
                    raise FtlabError.from_rpc(err) from None
                time.sleep(min(0.1 * 2 ** failures, 5.0))
            finally:
                stream.cancel()

    def evaluate(self, name: str, tasks: Sequence[str | dict[str, str]], *, checkpoint: str = "",
                 compare_base: bool = True, limit: int = 0, max_new_tokens: int | None = None, builtin: bool = True,
                 display_name: str = "", priority: int = 0, request_id: str = "") -> job_pb2.Job:
        """Queue an evaluation of a job's weights (its final model, or `checkpoint`: "best", "latest" or
        a name) as a job of its own: each task a local .jsonl file (sent inline), a task definition file
        on the server (.yaml, by path), one of lm-evaluation-harness's own tasks by name, or a dict of
        EvaluationTask's fields. Its scores come as the job's `evaluation_results` once it succeeds."""
        request = build.evaluation_request(name, tasks, checkpoint=checkpoint, compare_base=compare_base,
                                              limit=limit, max_new_tokens=max_new_tokens, builtin=builtin,
                                              display_name=display_name, priority=priority,
                                              request_id=request_id or uuid.uuid4().hex)
        reply: job_service_pb2.EvaluateJobResponse = self._call(self.jobs.EvaluateJob, request, idempotent=True)
        return reply.job

    def generate(self, name: str, prompt: str = "", *, messages: Sequence[dict[str, str]] = (), checkpoint: str = "",
                 max_new_tokens: int | None = None, temperature: float | None = None, seed: int | None = None,
                 timeout: float | None = None) -> Iterator[job_service_pb2.GenerateTextResponse]:
        """Stream a job's answer to `prompt` (or to the chat `messages`: {"role", "content"}) with its
        final model, or a checkpoint ("best", "latest" or a name): pieces of text, then one with
        `done` (tokens, time to the first token, finish reason). Leaving the loop early stops it."""
        request = build.generate_request(name, prompt, messages, checkpoint,
                                            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        stream = self.jobs.GenerateText(request, metadata=self._metadata, timeout=timeout)
        try:
            yield from stream
        except grpc.RpcError as err:
            raise FtlabError.from_rpc(err) from None
        finally:
            stream.cancel()

    def generate_text(self, name: str, prompt: str = "", **options: Any) -> str:
        """The whole answer of `generate`, as one string."""
        return "".join(piece.text for piece in self.generate(name, prompt, **options))

    def wait(self, name: str, timeout: float | None = None) -> job_pb2.Job:
        """Block until the job reaches a final state, or pauses, from now on; return it."""
        job = self.get_job(name)
        if job.state in FINAL_STATES:
            return job
        for response in self.watch(name, after_sequence=job.last_sequence, timeout=timeout):
            if response.state in FINAL_STATES or response.state == job_pb2.JOB_STATE_PAUSED:
                break
        return self.get_job(name)


def _copy(config: config_pb2.TrainingConfig) -> config_pb2.TrainingConfig:
    out = config_pb2.TrainingConfig()
    out.CopyFrom(config)
    return out
