"""`ftlab watch JOB`: the job live, with a progress bar, loss, throughput, memory and ETA."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ftlab import Client
from ftlab.client import FINAL_STATES
from ftlab.v1 import job_pb2
from services.cli.render import duration, human_bytes, phase_name, state_name


def watch(client: Client, name: str, console: Console) -> int:
    """Follow the job to its end; returns the exit status (0 only for SUCCEEDED or PAUSED)."""
    progress = Progress(TextColumn("[bold]{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), console=console, transient=False,
                        disable=not console.is_terminal)
    task = progress.add_task("train", total=None, phase="queued", stats="")
    state = job_pb2.JOB_STATE_UNSPECIFIED
    last_line = 0.0
    live_from = client.get_job(name).last_sequence  # history before this is replayed, not waited on
    with progress:
        for response in client.watch(name):
            event, state = response.event, response.state
            kind = event.WhichOneof("payload")
            if kind == "state_changed":
                sc = event.state_changed
                progress.console.print(f"state  {state_name(sc.to_state):<10} {sc.reason}")
            elif kind == "phase_changed":
                progress.update(task, phase=phase_name(event.phase_changed.phase))
                detail = event.phase_changed.detail
                progress.console.print(f"phase  {phase_name(event.phase_changed.phase)}{': ' + detail if detail else ''}")
            elif kind == "metrics":
                m = event.metrics
                stats = [f"loss {m.loss:.4f}" if m.HasField("loss") else "", f"{m.tokens_per_second:,.0f} tok/s",
                         f"{m.samples_per_second:,.1f} samples/s"]
                if m.HasField("gpu_memory_peak_bytes"):
                    stats.append(f"GPU peak {human_bytes(m.gpu_memory_peak_bytes)}")
                if m.HasField("eta_seconds"):
                    stats.append(f"ETA {duration(m.eta_seconds)}")
                progress.update(task, total=m.max_steps, completed=m.step, stats="  ".join(s for s in stats if s))
                now = time.monotonic()
                if not console.is_terminal and (now - last_line >= 1.0 or m.step == m.max_steps):
                    last_line = now
                    console.print(f"step   {m.step}/{m.max_steps}  " + "  ".join(s for s in stats if s))
            elif kind == "eval":
                progress.console.print(f"eval   step {event.eval.step}: eval loss {event.eval.eval_loss:.4f}")
            elif kind == "checkpoint_saved":
                c = event.checkpoint_saved
                progress.console.print(f"saved  {c.name} ({human_bytes(c.size_bytes)})")
            elif kind == "checkpoint_deleted":
                progress.console.print(f"pruned {event.checkpoint_deleted.name}: {event.checkpoint_deleted.reason}")
            elif kind == "error":
                e = event.error
                progress.console.print(f"[red]error  in {phase_name(e.phase)}: {e.type}: {e.message}[/]")
            if state in FINAL_STATES or (state == job_pb2.JOB_STATE_PAUSED and event.sequence >= live_from):
                break
    console.print(f"[bold]{state_name(state)}[/]")
    return 0 if state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_PAUSED) else 1
