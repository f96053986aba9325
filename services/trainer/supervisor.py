"""Runs each training run in its own child process and keeps its numbered event log.

The child is never a fork of this gRPC process. A single-process run is forked from the zygote
(services/trainer/zygote.py: an exec'd process that has already imported torch and the rest), or
started with exec when there is none; a run on several GPUs is exec'd through torchrun. Either way it
runs in a new session so that cancelling kills its whole process group, and reports over a pipe whose
read end this process watches. Events are numbered 1, 2, 3... per run so a consumer that reconnects
after N misses none. This module knows nothing of gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from ftlab.v1 import config_pb2, events_pb2, job_pb2
from services.common import safefs
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from services.common.settings import Paths
from services.trainer import admission, gpu, launchers, oom, outcome, stuck
from services.trainer.process import FRAME, MAX_REPORT
from services.trainer.runs import Run, disk_note, kill_group, log_tail, open_log
from services.trainer.watchdog import Limits, Progress
from services.trainer.zygote import Zygote

EVAL_CHILD = "services.trainer.eval_child"

log = logging.getLogger(__name__)
KEEP_FINISHED_RUNS = 256  # ended runs whose events stay streamable from memory
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


class RunSupervisor:
    def __init__(self, paths: Paths, *, max_runs: int = 1, kill_grace: float = 10.0, python: str = sys.executable,
                 on_event: Callable[[Run, events_pb2.RunEvent], object] | None = None,
                 on_stuck: Callable[[Run, str], object] | None = None, watchdog_interval: float = 1.0,
                 gpu_indices: Sequence[int] = (), preload: bool = False, cpu_threads: int = 0,
                 held: Callable[[], int] = lambda: 0, make_room: Callable[[], Awaitable[int]] | None = None) -> None:
        self.paths = paths
        self.cpu_threads = cpu_threads  # torch threads per run (0: torch's default, every core)
        self.gpu_indices = list(gpu_indices)  # NVML's (PCI bus) order; none on a CPU machine
        self.max_runs = max_runs
        self.kill_grace = kill_grace
        self.python = python
        self.runs: dict[str, Run] = {}
        self.closing = False
        self.on_event = on_event  # callback(run, event) for metrics
        self.on_stuck = on_stuck  # callback(run, phase) when the watchdog kills a run
        self.watchdog_interval = watchdog_interval
        self._tasks: set[asyncio.Task[None]] = set()
        self.zygote = Zygote(python) if preload else None
        self.held = held  # slots held by other processes of this trainer's (generation)
        self.make_room = make_room  # frees the slots of those that are idle

    async def warm_up(self) -> None:
        """Start the zygote, so that runs fork from a process that has imported torch already."""
        if self.zygote is not None and not self.closing:
            try:
                await self.zygote.start(self.child_env())
            except OSError as exc:
                log.warning("no zygote (%s): runs start with exec", exc)

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", FTLAB_PARENT_PID=str(os.getpid()))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    def active(self) -> list[Run]:
        return [r for r in self.runs.values() if not r.done]

    def allocate_gpus(self, wanted: int) -> list[int]:
        """GPUs for a new run that no active run holds (services/trainer/gpu.py)."""
        try:
            return gpu.allocate(self.gpu_indices, {i for r in self.active() for i in r.gpus}, wanted)
        except gpu.NotEnoughGpus as exc:
            if exc.free:
                raise ResourceExhausted(str(exc), reason="WORKER_FULL") from None
            raise FailedPrecondition(str(exc), reason="NOT_ENOUGH_GPUS") from None

    async def start(self, run_id: str, job_id: str, config: config_pb2.TrainingConfig, resume_checkpoint: str,
                    watchdog: job_pb2.WatchdogConfig | None = None, weights_only: bool = False,
                    evaluation: admission.Evaluation | None = None) -> Run:
        admission.check(run_id, job_id, config)
        if run_id in self.runs:
            return self.runs[run_id]
        if self.closing:
            raise FailedPrecondition("this trainer is shutting down", reason="WORKER_SHUTTING_DOWN")
        if len(self.active()) + self.held() >= self.max_runs and self.make_room is not None:
            await self.make_room()  # idle generation processes give their slots back to training
        if len(self.active()) + self.held() >= self.max_runs:
            raise ResourceExhausted(f"worker is full ({self.max_runs} runs)", reason="WORKER_FULL")
        gpus = self.allocate_gpus(max(1, config.num_gpus))
        try:
            return await self._start(run_id, job_id, config, resume_checkpoint, watchdog, weights_only, gpus,
                                     evaluation)
        except safefs.LinkRefused as exc:
            self.runs.pop(run_id, None)
            log.error("not starting %s: the job's folder holds a link (%s)", run_id, exc)
            why = "its folder in the store holds a link where a folder belongs; an administrator must remove it"
            raise InvalidArgument(f"job {job_id}: {why}", violations=[FieldViolation("job_id", why)],
                                  reason="STORE_LINK") from None
        except OSError as exc:
            self.runs.pop(run_id, None)
            raise admission.refusal(exc) from exc

    async def _start(self, run_id: str, job_id: str, config: config_pb2.TrainingConfig, resume_checkpoint: str,
                     watchdog: job_pb2.WatchdogConfig | None, weights_only: bool, gpus: list[int],
                     evaluation: admission.Evaluation | None = None) -> Run:
        run_dir = admission.prepare(self.paths, run_id, job_id, config, resume_checkpoint, weights_only, evaluation)
        run = Run(run_id, job_id, run_dir, run_dir / "train.log", processes=max(1, config.num_gpus), gpus=gpus)
        if evaluation is not None:  # one process, the evaluation child
            run.processes, run.module = 1, EVAL_CHILD
        run.progress = Progress(Limits.from_proto(watchdog or job_pb2.WatchdogConfig()), time.monotonic())
        self.runs[run_id] = run
        await self._spawn(run)
        return run

    async def _spawn(self, run: Run) -> None:
        read_fd, write_fd = os.pipe()
        env = self.child_env()
        if self.cpu_threads:  # split among the run's processes
            env["FTLAB_CPU_THREADS"] = str(max(1, self.cpu_threads // run.processes))
        if run.gpus:  # each run sees only its own GPUs, numbered as NVML numbers them
            env.update(CUDA_DEVICE_ORDER="PCI_BUS_ID", CUDA_VISIBLE_DEVICES=",".join(map(str, run.gpus)))
        ways = launchers.launchers_for(run.processes, self.python, self.zygote, run.module)
        with open_log(run.log_path) as logf:
            try:
                run.process, how = await launchers.launch(
                    ways, str(run.run_dir / "spec.json"), env, str(run.run_dir), logf.fileno(), write_fd,
                    on_unavailable=lambda exc: log.info("run %s: %s; starting it with exec", run.run_id, exc))
            finally:
                os.close(write_fd)
        run.oom_before = oom.counters(run.pid)
        log.info("run %s started (pid %d, %s)", run.run_id, run.pid, how)
        if run.stop_mode == "cancel":  # cancelled while it was being started
            kill_group(run.pid, signal.SIGTERM)
        reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        for coro, name in ((self._supervise(run, reader), "run"), (stuck.watch(run, self.watchdog_interval, self.on_stuck), "watchdog")):
            task = asyncio.create_task(coro, name=f"{name}-{run.run_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _append(self, run: Run, event: events_pb2.RunEvent) -> None:
        if event.HasField("eval_progress") and not run.keep_progress(event.eval_progress, time.monotonic()):
            if run.progress is not None:  # the watchdog hears it; the job's history keeps one every few seconds
                run.progress.saw(event, time.monotonic())
            return
        async with run.changed:
            event.sequence = len(run.events) + 1
            if not event.HasField("time"):  # the child stamps its events when it emits them
                event.time.GetCurrentTime()
            run.events.append(event)
            run.changed.notify_all()
        kind = event.WhichOneof("payload")
        if event.sequence == 1 and run.stop_mode == "pause":  # pause asked before the child could take it
            os.kill(run.pid, signal.SIGUSR1)
        if event.sequence == 1 and run.stop_mode == "cancel":
            # a cancel while a forked child was still becoming the run (before its own session and signal
            # handlers) may have missed it: its first event says it is the run now
            kill_group(run.pid, signal.SIGTERM)
        if run.progress is not None:
            run.progress.saw(event, time.monotonic())
        if kind == "phase_changed":
            run.phase = event.phase_changed.phase
        if self.on_event is not None:
            self.on_event(run, event)

    async def _pump(self, run: Run, reader: asyncio.StreamReader) -> None:
        """The run's reports, as the child frames them (process.EventSink), until its pipe closes."""
        try:
            while True:
                (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                if size > MAX_REPORT:
                    log.warning("run %s sent a report of %d bytes; reading no more of its pipe", run.run_id, size)
                    return
                report = events_pb2.RunReport.FromString(await reader.readexactly(size))
                if report.HasField("result"):
                    run.result = report.result
                    continue
                event = report.event
                if event.HasField("error"):
                    run.error_seen = True
                    event.error.log_tail = log_tail(run.log_path) + disk_note(run.run_dir)
                await self._append(run, event)
        except asyncio.IncompleteReadError:  # the pipe closed: the run's process and its children are gone
            return
        except DecodeError as exc:
            log.warning("run %s sent a report that is not a RunReport (%s); reading no more of its pipe", run.run_id, exc)

    async def _supervise(self, run: Run, reader: asyncio.StreamReader) -> None:
        assert run.process is not None  # _spawn starts this task once the process is launched
        pump = asyncio.create_task(self._pump(run, reader))
        rc = await run.process.wait()
        try:  # the pipe may stay open in orphaned grandchildren: don't wait on it for long
            await asyncio.wait_for(asyncio.shield(pump), 5.0)
        except asyncio.TimeoutError:
            pump.cancel()
        kill_group(run.pid, signal.SIGKILL)
        await self._finish(run, rc)

    async def _finish(self, run: Run, rc: int) -> None:
        finished = outcome.finished(rc, run.result, run.stop_mode)
        if finished.outcome == events_pb2.RUN_OUTCOME_FAILED:
            killer = oom.killed(run.oom_before) if rc == -signal.SIGKILL and not run.stuck else ""
            error = outcome.error(rc, stuck=run.stuck, error_seen=run.error_seen,
                                  phase=events_pb2.Phase.Name(run.phase), oom_killer=killer)
            if error is not None:
                error.log_tail = log_tail(run.log_path) + ("" if run.stuck else disk_note(run.run_dir)) + (
                    f"\nftlab trainer: {killer}" if killer else "")
                await self._append(run, events_pb2.RunEvent(error=error))
        await self._append(run, events_pb2.RunEvent(finished=finished))
        run.done = True
        async with run.changed:
            run.changed.notify_all()
        log.info("run %s ended: %s", run.run_id, json_format.MessageToDict(finished))
        ended = [r for r in self.runs.values() if r.done]
        for old in ended[: max(0, len(ended) - KEEP_FINISHED_RUNS)]:
            del self.runs[old.run_id]

    async def stop(self, run_id: str, mode: str, grace: float | None) -> bool:
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")
        if run.done:
            return False
        if run.process is None:  # still being spawned: _spawn acts on stop_mode
            run.stop_mode = mode
            return True
        if mode == "pause":
            if run.stop_mode == "cancel":
                raise FailedPrecondition("run is being cancelled")
            run.stop_mode = "pause"
            if run.events:  # the child has started reporting, so its SIGUSR1 handler is in place
                os.kill(run.pid, signal.SIGUSR1)
            return True
        run.stop_mode = "cancel"
        kill_group(run.pid, signal.SIGTERM)
        task = asyncio.create_task(self._escalate(run, self.kill_grace if grace is None else grace))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _escalate(self, run: Run, grace: float) -> None:
        assert run.process is not None  # only a launched run is escalated
        try:
            await asyncio.wait_for(asyncio.shield(run.process.wait()), grace)
        except asyncio.TimeoutError:
            log.warning("run %s ignored SIGTERM for %.1fs; killing it", run.run_id, grace)
            kill_group(run.pid, signal.SIGKILL)

    async def events(self, run_id: str, after: int, follow: bool) -> AsyncIterator[events_pb2.RunEvent]:
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")
        async for event in run.stream(after, follow):
            yield event

    async def fence(self, grace: float | None = None) -> None:
        """Stop every run as for a shutdown (save, exit, reported lost), but keep accepting new ones."""
        await self._hand_back(self.active(), self.kill_grace if grace is None else grace)

    async def close(self, grace: float = 5.0) -> None:
        """Shut down: ask every run to save a checkpoint and exit (as for a pause), give them `grace`
        seconds, then SIGTERM and SIGKILL; their jobs are reported lost so they resume elsewhere."""
        self.closing = True
        await self._hand_back(self.active(), grace)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.zygote is not None:
            await self.zygote.close()

    async def _hand_back(self, runs: list[Run], grace: float) -> None:
        for run in runs:
            run.stop_mode = "shutdown"
            if run.events and run.process is not None:
                os.kill(run.pid, signal.SIGUSR1)
        waits = [asyncio.wait_for(asyncio.shield(r.process.wait()), grace) for r in runs if r.process is not None]
        await asyncio.gather(*waits, return_exceptions=True)
        escalations = []
        for run in runs:
            if not run.done and run.process is not None and run.process.returncode is None:
                kill_group(run.pid, signal.SIGTERM)
                escalations.append(self._escalate(run, 2.0))
        await asyncio.gather(*escalations, return_exceptions=True)

