"""A bounded pool of pre-flight worker processes (services/analyzer/worker.py), so that pre-flight
work, which renders users' templates over users' data, never runs in the threads or on the cores
that answer other users' calls.

At most `size` checks run at once. A check waits only where its expected wait (the checks ahead of
it times the recent mean duration of a check) fits in half the hard limit, and never behind more
than `max_waiting`; beyond that a caller gets RESOURCE_EXHAUSTED. A check that outlives `hard_seconds` has its worker killed (and replaced): the
caller gets a result that says the pre-flight did not finish, never a frozen call.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import struct
import sys
import time

from ftlab.v1 import analyzer_pb2
from services.analyzer.worker import Frame, frame
from services.common import errors
from services.common.errors import FieldViolation

log = logging.getLogger(__name__)


class Busy(errors.ResourceExhausted):
    """Every worker is busy and the queue is full."""


class Stopped(Exception):
    """The check outlived its limit (or its worker died) and was stopped."""


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None  # _spawn starts it with both pipes
        self.process = process
        self.stdin, self.stdout = process.stdin, process.stdout

    async def ask(self, message: Frame, timeout: float) -> Frame:
        self.stdin.write(frame(message))
        await self.stdin.drain()
        return await asyncio.wait_for(self._read(), timeout)

    async def _read(self) -> Frame:
        import json

        header = await self.stdout.readexactly(4)
        (size,) = struct.unpack(">I", header)
        reply: Frame = json.loads(await self.stdout.readexactly(size))
        return reply

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


class PreflightPool:
    def __init__(self, size: int | None = None, *, hard_seconds: float = 45.0, template_seconds: float = 10.0,
                 memory_bytes: int = 2 << 30, max_waiting: int | None = None, python: str = sys.executable) -> None:
        self.size = size or max(1, min(4, len(os.sched_getaffinity(0)) // 2))
        self.max_waiting = self.size * 256 if max_waiting is None else max_waiting
        self.mean_seconds = 1.0  # of a check, recently (a moving average; pessimistic to begin with)
        self.hard_seconds = hard_seconds
        self.argv = [python, "-m", "services.analyzer.worker", "--template-seconds", str(template_seconds),
                     "--memory-bytes", str(memory_bytes)]
        self._idle: asyncio.Queue[_Worker] | None = None
        self._waiting = 0
        self._all: set[_Worker] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self.closed = False

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self.size):
                self._replace()
        return self._idle

    def start(self) -> None:
        """Start the workers now (each imports transformers: seconds), not at the first check."""
        self._queue()

    def _replace(self) -> None:
        task = asyncio.create_task(self._spawn(), name="preflight-worker")
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _spawn(self) -> None:
        delay = 1.0
        while not self.closed:
            process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env=dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false"))
            worker = _Worker(process)
            try:
                ready = await asyncio.wait_for(worker._read(), 300)
                assert "ready" in ready
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, AssertionError, ValueError):
                worker.kill()
                await process.wait()
                log.error("a pre-flight worker did not start; trying again in %.0fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
                continue
            if self.closed:  # close() was called during the awaits above
                worker.kill()  # type: ignore[unreachable]  # mypy keeps the loop's narrowing across awaits
                return
            self._all.add(worker)
            self._queue().put_nowait(worker)
            return

    async def run(self, request: analyzer_pb2.PreflightRequest, owner: str | None) -> analyzer_pb2.PreflightResponse:
        """The pre-flight of `request` as `owner` would be allowed to read (None: any upload, for an
        admin); raises a DomainError for bad input, Busy when full, Stopped when it did not finish in time."""
        idle = self._queue()
        expected = (self._waiting + 1) * self.mean_seconds / self.size
        if self._waiting >= self.max_waiting + self.size or expected > self.hard_seconds / 2:
            raise Busy(f"pre-flight is busy ({self._waiting} checks running or waiting, about {expected:.0f}s of "
                       "work); try again shortly", reason="PREFLIGHT_BUSY")
        self._waiting += 1
        started = time.monotonic()
        try:
            worker = await asyncio.wait_for(idle.get(), self.hard_seconds)
        except asyncio.TimeoutError:
            self._waiting -= 1
            raise Stopped(f"no pre-flight worker became free in {self.hard_seconds:.0f}s") from None
        message: Frame = {"request": base64.b64encode(request.SerializeToString()).decode(), "owner": owner}
        asked = asyncio.create_task(worker.ask(message, max(1.0, self.hard_seconds - (time.monotonic() - started))))
        asked.add_done_callback(lambda task: self._returned(worker, task))
        began = time.monotonic()
        try:
            reply = await asyncio.shield(asked)  # a caller that goes away leaves the check to finish
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.monotonic() - began)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            why = "it did not finish" if isinstance(exc, asyncio.TimeoutError) else "its worker died"
            raise Stopped(f"pre-flight stopped after {time.monotonic() - started:.0f}s: {why}") from None
        finally:
            self._waiting -= 1
        if "error" in reply:
            e = reply["error"]
            kind = getattr(errors, e["kind"], None) if e["kind"] else None  # a domain error, by its class's name
            if not (isinstance(kind, type) and issubclass(kind, errors.DomainError)):
                raise RuntimeError(f"pre-flight worker error: {e['message']}")
            if kind is errors.InvalidArgument:
                raise kind(e["message"], reason=e["reason"], violations=[FieldViolation(f, d) for f, d in e["violations"]])
            raise kind(e["message"], reason=e["reason"])
        return analyzer_pb2.PreflightResponse.FromString(base64.b64decode(reply["response"]))

    def _returned(self, worker: _Worker, asked: asyncio.Task[Frame]) -> None:
        """A check ended: its worker goes back to the pool, or, if it failed or overran, is replaced."""
        if not asked.cancelled() and asked.exception() is None:
            self._queue().put_nowait(worker)
            return
        worker.kill()
        self._all.discard(worker)
        if not self.closed:
            self._replace()

    async def close(self) -> None:
        self.closed = True
        for task in list(self._starting):
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        for worker in list(self._all):
            worker.kill()
            await worker.process.wait()
