"""`ftlab watch JOB`: the job live. On a terminal, a dashboard (progress bar, loss sparkline, eval
loss, tokens/s, samples/s, GPU memory, ETA, the last events); piped, one line per event (and a
progress line a second); with --json, every event as one JSON object per line."""

from __future__ import annotations

import json
import time
from collections import deque

from google.protobuf import json_format
from rich.console import Console
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ftlab import Client
from ftlab.client import FINAL_STATES
from ftlab.v1 import events_pb2, job_pb2
from services.cli.render import duration, human_bytes, phase_name, state_name

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """The last `width` values as block characters, scaled between their min and max."""
    values = values[-width:]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - lo) / span * (len(SPARKS) - 1) + 0.5))] for v in values)


def describe(event: job_pb2.JobEvent) -> str:
    """One line for an event ("" for metrics, which the dashboard shows otherwise)."""
    kind = event.WhichOneof("payload")
    if kind == "state_changed":
        return f"state  {state_name(event.state_changed.to_state):<10} {event.state_changed.reason}"
    if kind == "phase_changed":
        detail = event.phase_changed.detail
        return f"phase  {phase_name(event.phase_changed.phase)}{': ' + detail if detail else ''}"
    if kind == "eval":
        return f"eval   step {event.eval.step}: eval loss {event.eval.eval_loss:.4f}"
    if kind == "eval_progress":
        p = event.eval_progress
        return f"eval   step {p.step}: {p.batches_done}/{p.batches_total or '?'} batches"
    if kind == "checkpoint_saved":
        c = event.checkpoint_saved
        took = f" in {c.save_seconds:.1f}s" if c.HasField("save_seconds") else ""
        return f"saved  {c.name} ({human_bytes(c.size_bytes)}{took})"
    if kind == "settings":
        return "tuned  " + ", ".join(f"{c.field}={c.value}" for c in event.settings.choices)
    if kind == "checkpoint_deleted":
        return f"pruned {event.checkpoint_deleted.name}: {event.checkpoint_deleted.reason}"
    if kind == "error":
        e = event.error
        return f"error  in {phase_name(e.phase)}: {e.type}: {e.message}"
    if kind == "log":
        return f"log    {event.log.text}"
    if kind == "samples":
        s = event.samples
        when = "final model" if s.final else f"step {s.step}"
        return f"answer {when}: " + " | ".join(f"{shorten(a.prompt, 30)} -> {shorten(a.completion, 60)}"
                                                for a in s.answers)
    return ""


def shorten(text: str, width: int) -> str:
    """One line of at most `width` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def rewards_text(r: events_pb2.PreferenceRewards) -> str:
    """DPO's implicit rewards: chosen, rejected, their margin, and how often chosen wins."""
    return (f"rewards chosen {r.chosen:+.3f} rejected {r.rejected:+.3f} margin {r.margins:+.3f} "
            f"accuracy {r.accuracies:.0%}")


def stats_line(m: events_pb2.TrainingMetrics) -> str:
    parts = [f"loss {m.loss:.4f}" if m.HasField("loss") else "", f"{m.tokens_per_second:,.0f} tok/s",
             f"{m.samples_per_second:,.1f} samples/s"]
    if m.HasField("mean_token_accuracy"):
        parts.append(f"token accuracy {m.mean_token_accuracy:.1%}")
    if m.HasField("rewards"):
        parts.append(rewards_text(m.rewards))
    if m.HasField("gpu_memory_peak_bytes"):
        parts.append(f"GPU peak {human_bytes(m.gpu_memory_peak_bytes)}")
    if m.HasField("eta_seconds"):
        parts.append(f"ETA {duration(m.eta_seconds)}")
    return "  ".join(p for p in parts if p)


class Dashboard:
    """What the terminal shows, rebuilt from the events as they come."""

    def __init__(self, name: str, events_shown: int = 6) -> None:
        self.name = name
        self.state: job_pb2.JobState.ValueType = job_pb2.JOB_STATE_UNSPECIFIED
        self.phase = ""
        self.metrics: events_pb2.TrainingMetrics | None = None
        self.losses: list[float] = []
        self.eval_loss: float | None = None
        self.evaluating: events_pb2.EvalProgress | None = None  # of an evaluation under way
        self.events: deque[str] = deque(maxlen=events_shown)
        self.samples: events_pb2.Samples | None = None  # the latest answers to the sample prompts

    def update(self, event: job_pb2.JobEvent, state: job_pb2.JobState.ValueType) -> None:
        self.state = state
        kind = event.WhichOneof("payload")
        if kind == "metrics":
            self.metrics = event.metrics
            if event.metrics.HasField("loss"):
                self.losses.append(event.metrics.loss)
            return
        if kind == "phase_changed":
            self.phase = phase_name(event.phase_changed.phase)
        if kind == "eval":
            self.eval_loss = event.eval.eval_loss
            self.evaluating = None
        if kind == "eval_progress":
            self.evaluating = event.eval_progress
            return
        if kind == "samples":
            self.samples = event.samples
            return
        line = describe(event)
        if line:
            stamp = event.time.ToDatetime().strftime("%H:%M:%S") if event.HasField("time") else ""
            self.events.append(f"{stamp} {line}")

    def __rich__(self) -> Panel:
        m = self.metrics
        grid = Table.grid(padding=(0, 2))
        grid.add_column(justify="right", style="bold")
        grid.add_column()
        if m is not None and m.max_steps:
            bar = ProgressBar(total=m.max_steps, completed=m.step, width=40)
            eta = f"  ETA {duration(m.eta_seconds)}" if m.HasField("eta_seconds") else ""
            grid.add_row("progress", bar)
            grid.add_row("", Text(f"step {m.step}/{m.max_steps}  epoch {m.epoch:.2f}{eta}"))
        if self.losses:
            evals = f"   eval {self.eval_loss:.4f}" if self.eval_loss is not None else ""
            grid.add_row("loss", Text(f"{self.losses[-1]:.4f}  ") + Text(sparkline(self.losses), style="cyan")
                         + Text(evals))
        if self.evaluating is not None:
            p = self.evaluating
            grid.add_row("evaluating", f"{p.batches_done}/{p.batches_total or '?'} batches at step {p.step}")
        if m is not None and (m.HasField("mean_token_accuracy") or m.HasField("entropy")):
            grid.add_row("tokens", "   ".join(t for t in (
                f"accuracy {m.mean_token_accuracy:.1%}" if m.HasField("mean_token_accuracy") else "",
                f"entropy {m.entropy:.2f}" if m.HasField("entropy") else "") if t))
        if m is not None and m.HasField("rewards"):
            grid.add_row("DPO rewards", rewards_text(m.rewards))
        if m is not None:
            grid.add_row("speed", f"{m.tokens_per_second:,.0f} tokens/s   {m.samples_per_second:,.1f} samples/s")
            if m.HasField("gpu_memory_allocated_bytes") or m.HasField("gpu_memory_peak_bytes"):
                grid.add_row("GPU memory", f"{human_bytes(m.gpu_memory_allocated_bytes)} allocated   "
                                           f"{human_bytes(m.gpu_memory_peak_bytes)} peak")
        if self.samples is not None:
            s = self.samples
            grid.add_row("final answers" if s.final else f"answers, step {s.step}", Text("\n".join(
                f"{shorten(a.prompt, 40)} -> {shorten(a.completion, 80)}" for a in s.answers)))
        grid.add_row("events", Text("\n".join(self.events) or "-"))
        ended = self.state in FINAL_STATES or self.state == job_pb2.JOB_STATE_PAUSED  # no phase is under way
        title = f"{self.name}  [bold]{state_name(self.state)}[/]" + (f"  {self.phase}" if self.phase and not ended else "")
        return Panel(grid, title=title, title_align="left", expand=False)


def watch(client: Client, name: str, console: Console, as_json: bool = False) -> int:
    """Follow the job to its end; returns the exit status (0 only for SUCCEEDED or PAUSED)."""
    state = job_pb2.JOB_STATE_UNSPECIFIED
    live_from = client.get_job(name).last_sequence  # history before this is replayed, not waited on
    dashboard = Dashboard(name)
    live = None
    if console.is_terminal and not as_json:
        from rich.live import Live

        live = Live(dashboard, console=console, refresh_per_second=4, transient=False)
        live.start()
    last_line = 0.0
    try:
        for response in client.watch(name):
            event, state = response.event, response.state
            if as_json:
                print(json.dumps({"state": job_pb2.JobState.Name(state), "event": json_format.MessageToDict(
                    event, preserving_proto_field_name=True)}), flush=True)
            elif live is not None:
                dashboard.update(event, state)
                live.update(dashboard)
            else:
                kind = event.WhichOneof("payload")
                if kind == "metrics":
                    m, now = event.metrics, time.monotonic()
                    if now - last_line >= 1.0 or m.step == m.max_steps:
                        last_line = now
                        console.print(f"step   {m.step}/{m.max_steps}  {stats_line(m)}")
                elif describe(event):
                    console.print(describe(event), style="red" if kind == "error" else None)
            if state in FINAL_STATES or (state == job_pb2.JOB_STATE_PAUSED and event.sequence >= live_from):
                break
    finally:
        if live is not None:
            live.stop()
    if not as_json:
        console.print(f"[bold]{state_name(state)}[/]")
    return 0 if state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_PAUSED) else 1
