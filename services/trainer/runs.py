"""A training run as the trainer holds it: its process, its numbered events, how it is being
stopped, and its log (opened to append, never through a link)."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ftlab.v1 import events_pb2
from services.trainer.watchdog import Progress
from services.trainer.zygote import CHILD, ForkedProcess

LOG_TAIL_LINES = 80
EVAL_PROGRESS_KEPT_SECONDS = 10.0  # how often an evaluation's progress goes into the run's history


@dataclass
class Run:
    run_id: str
    job_id: str
    run_dir: Path
    log_path: Path
    process: asyncio.subprocess.Process | ForkedProcess | None = None
    events: list[events_pb2.RunEvent] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    phase: events_pb2.Phase.ValueType = events_pb2.PHASE_STARTUP
    result: events_pb2.RunFinished | None = None  # what the child reported at its end
    error_seen: bool = False
    stop_mode: str = ""  # "", "pause", "cancel" or "shutdown"
    done: bool = False
    progress: Progress | None = None
    stuck: str = ""  # why the watchdog killed it
    processes: int = 1  # more than one: torchrun
    gpus: list[int] = field(default_factory=list)  # the GPUs it holds (CUDA_VISIBLE_DEVICES)
    module: str = CHILD  # the program it runs: the training child, or the evaluation child

    last_progress_kept: float = 0.0
    oom_before: dict[Path, int] = field(default_factory=dict)  # out-of-memory kill counters when it started

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def keep_progress(self, p: events_pb2.EvalProgress, now: float) -> bool:
        """Whether an evaluation progress event goes into the run's history: the first of an
        evaluation, the last, and one every EVAL_PROGRESS_KEPT_SECONDS."""
        if p.batches_done <= 1 or p.batches_done == p.batches_total or now - self.last_progress_kept >= \
                EVAL_PROGRESS_KEPT_SECONDS:
            self.last_progress_kept = now
            return True
        return False

    async def stream(self, after: int, follow: bool) -> AsyncIterator[events_pb2.RunEvent]:
        """Its events after number `after`; with `follow`, those still to come until it ends."""
        cursor = max(0, after)
        while True:
            async with self.changed:
                if follow:
                    await self.changed.wait_for(lambda: len(self.events) > cursor or self.done)  # noqa: B023 (waited on at once)
                batch = self.events[cursor:]
                done = self.done
            for event in batch:
                yield event
            cursor += len(batch)
            if not follow or (done and cursor >= len(self.events)):
                return


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def open_log(path: Path) -> io.BufferedWriter:
    """A run's log, opened to append, never through a link of that name."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644), "ab")


def disk_note(run_dir: Path) -> str:
    """A line for a failed run's log tail when the disk holding its job's folder is full: the
    evidence the analyzer needs when the library's own message does not say so, or the log could
    not be written."""
    try:
        st = os.statvfs(run_dir)
    except OSError:
        return ""
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    if total and free < min(64 << 20, total // 100):
        return f"\nftlab trainer: the disk holding the job's folder is full ({free:,} of {total:,} bytes free)"
    return ""


def kill_group(pid: int, sig: int) -> None:
    """Signal a run's whole process group (or the process alone while it has none yet)."""
    if pid <= 0:  # never signal our own group
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:  # a forked child that has not made its own session yet: the process alone
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    except PermissionError:
        pass
