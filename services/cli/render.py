"""How the CLI shows what it prints (rich): jobs, checkpoints, artifacts, datasets, the queue, templates,
analyses. What runs produced (scores, answers, comparisons) is services/cli/render_results.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from ftlab.v1 import config_pb2, events_pb2, job_pb2

if TYPE_CHECKING:
    from ftlab.v1 import analyzer_pb2, artifact_service_pb2, job_service_pb2

_ENUM_PREFIXES = ("ADAPTER_", "METHOD_", "PRECISION_", "LR_SCHEDULER_", "SWITCH_", "OPTIMIZER_", "EVAL_STRATEGY_",
                  "DATASET_FORMAT_", "TRACKER_")


def words(value: str) -> str:
    """A config value as a user writes it: `ADAPTER_QLORA` is `qlora`, `EVAL_STRATEGY_STEPS` is `steps`."""
    for prefix in _ENUM_PREFIXES:
        if value.startswith(prefix) and value[len(prefix):].replace("_", "").isalnum():
            return value[len(prefix):].lower()
    return value


def in_words(value: object) -> object:
    """`words` through a config's dict: every enum name in it as a job file writes it."""
    if isinstance(value, dict):
        return {k: in_words(v) for k, v in value.items()}
    if isinstance(value, list):
        return [in_words(v) for v in value]
    return words(value) if isinstance(value, str) else value


def state_name(state: job_pb2.JobState.ValueType) -> str:
    return job_pb2.JobState.Name(state).removeprefix("JOB_STATE_")


def phase_name(phase: events_pb2.Phase.ValueType) -> str:
    return events_pb2.Phase.Name(phase).removeprefix("PHASE_").lower().replace("_", " ")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def job_json(job: job_pb2.Job) -> str:
    return json.dumps(json_format.MessageToDict(job, preserving_proto_field_name=True), indent=2)


def jobs_table(jobs: list[job_pb2.Job]) -> Table:
    table = Table(box=None)
    table.add_column("JOB", no_wrap=True, min_width=16)
    for name in ("NAME", "STATE", "PHASE", "STEP", "LOSS"):
        table.add_column(name)
    table.add_column("CREATED", no_wrap=True)
    final = (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_CANCELLED)
    for j in jobs:
        p = j.progress
        table.add_row(j.id, j.display_name, state_name(j.state),
                      phase_name(j.phase) if j.phase and j.state not in final else "",
                      f"{p.step}/{p.max_steps}" if p.max_steps else "",
                      f"{p.loss:.4f}" if p.HasField("loss") else "",
                      j.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"))
    return table


def preflight_findings(console: Console, job: job_pb2.Job) -> None:
    """Pre-flight's warnings and failures, each with the changes that would settle it."""
    marks = {2: "[yellow]warn[/]", 3: "[red]FAIL[/]"}
    for check in job.preflight.checks:
        if check.status in marks:
            console.print(f"  pre-flight {check.name}: {marks[check.status]} {check.message}")
            for p in check.suggestions:
                console.print(f"    try {p.field}: {words(p.current)} -> [bold]{words(p.suggested)}[/]"
                              + (f"  [dim]{p.reason}[/]" if p.reason and p.reason not in check.message else ""))


def dry_run_panel(console: Console, job: job_pb2.Job) -> None:
    """What `submit --dry-run` would queue: the resolved config and every pre-flight finding."""
    from ftlab.config import to_dict

    console.print(f"dry run: nothing was created; template {job.template or 'basic'}, resolved config:")
    console.print(json.dumps(in_words(to_dict(job.config)), indent=2))
    passed = [c.name for c in job.preflight.checks if c.status == 1]
    if passed:
        console.print(f"pre-flight passed: {', '.join(passed)}")
    preflight_findings(console, job)
    console.print("pre-flight: it can run" if job.preflight.ok else
                  "pre-flight: it would be refused (add --force to queue it anyway)")


def retry_panel(console: Console, job: job_pb2.Job, parent: job_pb2.Job, events: list[job_pb2.JobEvent]) -> None:
    """A retry or continuation just made: what it was made from, what it changed, and why it was queued."""
    kind = "continuation" if parent.state == job_pb2.JOB_STATE_SUCCEEDED else "retry"
    console.print(f"{job.name} ({kind} of {job.parent}"
                  + (f" from {job.resume_checkpoint.rsplit('/', 1)[-1]})" if job.resume_checkpoint else ")"))
    for c in job.changes:
        console.print(f"  {c.field}: {words(c.current)} -> [bold]{words(c.suggested)}[/bold]  [dim]{c.reason}[/dim]")
    if events:
        console.print(f"  [dim]{events[0].state_changed.reason}[/dim]")


def job_panel(console: Console, job: job_pb2.Job) -> None:
    console.print(f"[bold]{job.name}[/] {job.display_name}  [bold]{state_name(job.state)}[/]  ({job.state_reason})")
    p = job.progress
    if p.max_steps:
        loss = f"  loss {p.loss:.4f}" if p.HasField("loss") else ""
        ev = f"  eval loss {p.eval_loss:.4f}" if p.HasField("eval_loss") else ""
        console.print(f"  step {p.step}/{p.max_steps}  epoch {p.epoch:.2f}{loss}{ev}  {p.tokens_per_second:,.0f} tokens/s")
        if p.HasField("mean_token_accuracy") or p.HasField("entropy"):
            console.print("  " + "  ".join(t for t in (
                f"token accuracy {p.mean_token_accuracy:.1%}" if p.HasField("mean_token_accuracy") else "",
                f"entropy {p.entropy:.2f}" if p.HasField("entropy") else "") if t))
        if p.HasField("rewards"):
            r = p.rewards
            console.print(f"  DPO rewards: chosen {r.chosen:+.3f}  rejected {r.rejected:+.3f}  margin {r.margins:+.3f}"
                          f"  accuracy {r.accuracies:.0%}")
    c = job.config
    adapter = config_pb2.Adapter.DESCRIPTOR.values_by_number[c.adapter].name
    console.print(f"  model {c.base_model}  template {job.template}  {words(adapter)}")
    if job.parent:
        console.print(f"  {'automatic retry of' if job.automatic else 'made from'} {job.parent}"
                      + (f" from {job.resume_checkpoint.rsplit('/', 1)[-1]}" if job.resume_checkpoint else ""))
        for change in job.changes:
            console.print(f"    {change.field}: {words(change.current)} -> [bold]{words(change.suggested)}[/]  "
                          f"[dim]{change.reason}[/]")
    preflight_findings(console, job)
    if job.preflight.estimated_gpu_memory_bytes:
        console.print(f"  estimated peak GPU memory {human_bytes(job.preflight.estimated_gpu_memory_bytes)}")
    if job.tuning:
        console.print("  trained with:")
        for choice in job.tuning:
            console.print(f"    {choice.field} = [bold]{choice.value}[/]  [dim]{choice.reason}[/]")
    if job.kind == job_pb2.JOB_KIND_EVALUATION:
        target = job.evaluation
        console.print(f"  evaluates {target.job} ({target.checkpoint_name or 'its final model'}): "
                      + ", ".join(t.name or t.uri.rsplit("/", 1)[-1] for t in target.tasks))
        if job.evaluation_results.scores:
            from services.cli.render_results import evaluation_table  # it imports this module

            console.print(evaluation_table(job.evaluation_results))
    if job.state == job_pb2.JOB_STATE_FAILED:
        e = job.error
        console.print(f"[red]  failed in {phase_name(e.phase)}: {e.type}: {e.message}[/]")
        if e.HasField("exit_code"):
            console.print(f"  exit code {e.exit_code}")
        if e.HasField("signal"):
            console.print(f"  signal {e.signal}")


def datasets_table(datasets: Iterable[artifact_service_pb2.Dataset]) -> Table:
    """Uploaded datasets, newest first; NAME is what a job's dataset.uri takes."""
    table = Table("NAME", "FILE", "FORMAT", "ROWS", "BAD", "SIZE", "UPLOADED", box=None)
    for d in datasets:
        table.add_row(d.name, d.filename, d.format, f"{d.rows:,}", f"{d.bad_row_count:,}", human_bytes(d.size_bytes),
                      d.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if d.HasField("create_time") else "")
    return table


def dataset_report(console: Console, dataset: artifact_service_pb2.Dataset) -> None:
    """An uploaded dataset: its size, format, usable and bad rows (the first 20 of them), and how a job names it."""
    console.print(f"[bold]{dataset.name}[/]  ({dataset.filename}, {dataset.size_bytes:,} bytes)")
    console.print(f"format {dataset.format}, {dataset.rows:,} rows usable, {dataset.bad_row_count:,} bad")
    for bad in dataset.bad_rows[:20]:
        console.print(f"  line {bad.line}: {bad.reason}")
    if dataset.bad_row_count > 20:
        console.print(f"  ... and {dataset.bad_row_count - 20:,} more")
    console.print(f"use it in a job as: \"dataset\": {{\"uri\": \"{dataset.name}\"}}")


def artifacts_table(artifacts: Iterable[artifact_service_pb2.Artifact]) -> Table:
    """What a job produced: kind, size, step and eval loss, with the best and latest marked."""
    from ftlab.v1 import artifact_service_pb2 as apb

    table = Table("NAME", "KIND", "SIZE", "STEP", "EVAL LOSS", "", box=None)
    for a in artifacts:
        marks = ", ".join(m for m, on in (("best", a.is_best), ("latest", a.is_latest)) if on)
        table.add_row(a.name, apb.ArtifactKind.Name(a.kind).removeprefix("ARTIFACT_KIND_").lower(),
                      human_bytes(a.size_bytes), str(a.step or ""),
                      f"{a.eval_loss:.4f}" if a.HasField("eval_loss") else "", marks)
    return table


def queue_panel(console: Console, queue: job_service_pb2.GetQueueResponse) -> None:
    """How many run, wait and could start, then each queued job: order, waiting time, estimated start."""
    console.print(f"{queue.running} running, {len(queue.entries)} queued, {queue.free_slots} free slot(s)")
    table = Table("#", "JOB", "OWNER", "PRIORITY", "WAITING", "STARTS IN", box=None)
    for e in queue.entries:
        table.add_row(str(e.position), e.job.removeprefix("jobs/") or "(another user's)", e.owner or "-",
                      str(e.priority), duration(e.wait_seconds),
                      duration(e.estimated_start_seconds) if e.HasField("estimated_start_seconds") else "?")
    console.print(table)


def templates_panel(console: Console, templates: Iterable[config_pb2.Template], verbose: bool) -> None:
    """Each template's name and description; verbose adds its values as a job file writes them ("lora", "steps",
    not ADAPTER_LORA)."""
    from ftlab.config import to_dict

    for t in templates:
        console.print(f"[bold]{t.name}[/]: {t.description}")
        if verbose:
            console.print(json.dumps(in_words(to_dict(t.config)), indent=2))


def checkpoints_table(checkpoints: list[job_pb2.Checkpoint]) -> Table:
    table = Table("CHECKPOINT", "STEP", "EVAL LOSS", "SIZE", "", box=None)
    for c in checkpoints:
        marks = ", ".join(m for m, on in (("best", c.is_best), ("latest", c.is_latest)) if on)
        table.add_row(c.name, str(c.step), f"{c.eval_loss:.4f}" if c.HasField("eval_loss") else "-",
                      human_bytes(c.size_bytes), marks)
    return table


def analysis_panel(console: Console, analysis: analyzer_pb2.FailureAnalysis) -> None:
    """Category, phase, summary, evidence, and each suggestion as current -> suggested with the reason."""
    from rich.panel import Panel

    from ftlab.v1 import analyzer_pb2

    category = analyzer_pb2.FailureCategory.Name(analysis.category).removeprefix("FAILURE_CATEGORY_")
    lines = [f"[bold red]{category}[/] in [bold]{phase_name(analysis.phase) or 'unknown phase'}[/]"
             f"  (confidence {analysis.confidence:.0%})", analysis.summary, ""]
    if analysis.HasField("hardware"):
        lines[-1:-1] = [f"Ran on: {hardware_line(analysis.hardware)}"]
    if analysis.evidence:
        lines.append("[bold]Evidence[/]")
        lines += [f"  {line}" for line in analysis.evidence]
        lines.append("")
    if analysis.suggestions:
        lines.append("[bold]What to change[/]")
        for s in analysis.suggestions:
            lines.append(f"  [cyan]{s.field}[/]: {words(s.current)} -> [green]{words(s.suggested)}[/]")
            lines.append(f"      {s.reason}" + (f" ({s.expected_effect})" if s.expected_effect else ""))
    console.print(Panel("\n".join(lines), title="Why it failed", expand=False))


def hardware_line(h: analyzer_pb2.Hardware) -> str:
    host = f"{human_bytes(h.host_memory_bytes)} host memory"
    if not h.gpu_count:
        return f"CPU only, {host}"
    return f"{h.gpu_count} x {h.gpu_name or 'GPU'} ({human_bytes(h.gpu_memory_bytes)}), {host}"


def analysis_json(analysis: analyzer_pb2.FailureAnalysis) -> str:
    from ftlab.v1 import analyzer_pb2

    return json.dumps({
        "category": analyzer_pb2.FailureCategory.Name(analysis.category).removeprefix("FAILURE_CATEGORY_"),
        "phase": events_pb2.Phase.Name(analysis.phase).removeprefix("PHASE_"),
        "summary": analysis.summary,
        "evidence": list(analysis.evidence),
        "confidence": analysis.confidence,
        "suggestions": [{"field": s.field, "current": s.current, "suggested": s.suggested, "reason": s.reason,
                         "expected_effect": s.expected_effect} for s in analysis.suggestions],
        "hardware": json_format.MessageToDict(analysis.hardware, preserving_proto_field_name=True)
        if analysis.HasField("hardware") else None,
    }, indent=2)
