"""The watchdog's loop: it kills a run's process group when the run makes no progress for longer
than its phase allows (the limits and the reckoning are services/trainer/watchdog.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from ftlab.v1 import events_pb2
from services.trainer.runs import Run, kill_group, open_log

log = logging.getLogger(__name__)


async def watch(run: Run, interval: float, on_stuck: Callable[[Run, str], object] | None) -> None:
    """Kill the run's process group when it makes no progress for longer than its phase allows."""
    progress = run.progress
    assert progress is not None  # _start sets it before the run is spawned
    while not run.done:
        await asyncio.sleep(interval)
        silent = progress.overdue(time.monotonic())
        if silent is None or run.done or run.stuck:
            continue
        phase = events_pb2.Phase.Name(progress.phase)
        run.stuck = (f"no progress for {silent:.0f}s in {phase.removeprefix('PHASE_').lower()} "
                     f"(limit {progress.limit():.0f}s); the run was killed")
        log.warning("run %s is stuck: %s", run.run_id, run.stuck)
        try:
            with open_log(run.log_path) as logf:  # the run's own log says why it ended
                logf.write(f"\nftlab watchdog: {run.stuck}\n".encode())
        except OSError as exc:
            log.warning("could not write to the log of run %s: %s", run.run_id, exc)
        if on_stuck is not None:
            on_stuck(run, phase)
        kill_group(run.pid, signal.SIGKILL)
