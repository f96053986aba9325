"""The trainer's generation processes: one per set of weights (a job's final model or one of its
checkpoints), started like a training run (forked from the zygote, or exec'd), kept loaded while it
is used and ended when it has been idle for `idle_seconds`, or when a training run needs its slot.
Each one answers one request at a time; a caller that goes away stops its answer. This module
knows nothing of gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from google.protobuf import json_format

from ftlab.v1 import events_pb2, trainer_service_pb2
from services.common import safefs
from services.common.errors import FailedPrecondition, ResourceExhausted
from services.common.settings import Paths
from services.trainer import admission
from services.trainer.process import FRAME, MAX_REPORT
from services.trainer.runs import open_log
from services.trainer.zygote import ForkedProcess, Unavailable, Zygote, command_line

log = logging.getLogger(__name__)
MODULE = "services.trainer.generation_child"
LOAD_TIMEOUT = 600.0


@dataclass
class Generator:
    key: str  # job id and weights
    process: asyncio.subprocess.Process | ForkedProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    load_seconds: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    busy: bool = False
    idle_timer: asyncio.TimerHandle | None = None
    answered: int = 0

    async def read(self) -> events_pb2.GenerationOutput:
        (size,) = FRAME.unpack(await self.reader.readexactly(FRAME.size))
        if size > MAX_REPORT:
            raise ValueError(f"a generation process sent {size} bytes at once")
        return events_pb2.GenerationOutput.FromString(await self.reader.readexactly(size))

    def send(self, command: events_pb2.GenerationCommand) -> None:
        data = command.SerializeToString()
        self.writer.write(FRAME.pack(len(data)) + data)


Observer = Callable[[str, events_pb2.GenerationDone | None], None]  # (outcome, how it went) per request


class GenerationPool:
    def __init__(self, paths: Paths, zygote: Zygote | None, python: str = sys.executable, idle_seconds: float = 300.0,
                 slots_free: Callable[[], bool] = lambda: True, env: Callable[[], dict[str, str]] = lambda: {},
                 on_request: Observer | None = None) -> None:
        self.paths, self.zygote, self.python, self.idle_seconds = paths, zygote, python, idle_seconds
        self.slots_free = slots_free  # whether a training slot is free for a new process
        self.env = env
        self.on_request = on_request
        self.generators: dict[str, Generator] = {}
        self._starting: dict[str, asyncio.Future[Generator]] = {}

    def __len__(self) -> int:
        """Processes that hold a slot: loaded, or being started."""
        return len(self.generators) + len(self._starting)

    async def generate(self, request: trainer_service_pb2.GenerateRequest
                       ) -> AsyncIterator[trainer_service_pb2.GenerateResponse]:
        """The answer, piece by piece, then how it went."""
        key = f"{request.job_id}/{request.checkpoint or 'final'}"
        where = admission.weights(self.paths, request.job_id, request.config, request.checkpoint)
        outcome, done = "failed", None
        try:
            generator, loaded = await self._generator(key, request, where)
            async with generator.lock:
                generator.busy = True
                if generator.idle_timer is not None:
                    generator.idle_timer.cancel()
                try:
                    generator.send(events_pb2.GenerationCommand(ask=request.ask))
                    await generator.writer.drain()
                    while True:
                        output = await generator.read()
                        kind = output.WhichOneof("output")
                        if kind == "text":
                            yield trainer_service_pb2.GenerateResponse(text=output.text)
                        elif kind == "done":
                            done = output.done
                            done.load_seconds = generator.load_seconds if loaded else 0.0
                            generator.answered += 1
                            outcome = "stopped" if done.finish_reason == "stopped" else "ok"
                            yield trainer_service_pb2.GenerateResponse(done=done)
                            return
                        elif kind == "error":
                            raise FailedPrecondition(f"generation failed: {output.error.type}: {output.error.message}",
                                                     reason="GENERATION_FAILED")
                except (asyncio.CancelledError, GeneratorExit):  # the caller went away: stop the answer, keep
                    outcome = "cancelled"                             # the process for the next one
                    await self._stop_answer(generator)
                    raise
                except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                    await self._end(generator, f"its process ended: {exc}")
                    raise FailedPrecondition("the generation process ended; ask again", reason="GENERATION_FAILED") \
                        from None
                finally:
                    generator.busy = False
                    self._arm(generator)
        finally:
            if self.on_request is not None:
                self.on_request(outcome, done)

    async def _stop_answer(self, generator: Generator) -> None:
        """Tell the process to stop the answer under way and read on until it says it is done, so that
        the next request starts clean; shielded, as the caller's task is being cancelled."""
        async def drain() -> None:
            generator.send(events_pb2.GenerationCommand(stop=True))
            await generator.writer.drain()
            while not (await generator.read()).HasField("done"):
                pass
        try:
            await asyncio.shield(asyncio.wait_for(drain(), 30))
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            await self._end(generator, "it did not stop its answer")

    async def _generator(self, key: str, request: trainer_service_pb2.GenerateRequest,
                         where: dict[str, str]) -> tuple[Generator, bool]:
        """The loaded process for `key` (started now if there is none: True), waiting for one that is
        being started."""
        if key in self.generators:
            return self.generators[key], False
        if key in self._starting:
            return await asyncio.shield(self._starting[key]), False
        if not self.slots_free():
            await self.evict_idle()
            if not self.slots_free():
                raise ResourceExhausted("this trainer's slots are busy: training runs and other answers hold them",
                                        reason="WORKER_FULL")
        future: asyncio.Future[Generator] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            generator = await self._start(key, request, where)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: whoever waited on it gets it too
            raise
        finally:
            self._starting.pop(key, None)
        future.set_result(generator)
        self.generators[key] = generator
        return generator, True

    async def _start(self, key: str, request: trainer_service_pb2.GenerateRequest,
                     where: dict[str, str]) -> Generator:
        folder = self.paths.job_dir(request.job_id) / "generation"
        safefs.make_dirs(self.paths.artifacts, folder)
        name = (request.checkpoint or "final").replace("/", "_")
        config = json_format.MessageToDict(request.config, preserving_proto_field_name=True)
        config["base_model"] = where["base_model"]
        spec = folder / f"{name}.json"
        safefs.write_file(self.paths.artifacts, spec, json.dumps(
            {"config": config, "model": where["model"], "adapter": where["adapter"],
             "tokenizer": where["tokenizer"]}, indent=2).encode())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        began = time.monotonic()
        process: asyncio.subprocess.Process | ForkedProcess | None = None
        try:
            with open_log(folder / f"{name}.log") as logf:
                if self.zygote is not None:
                    try:
                        process = await self.zygote.spawn(str(spec), self.env(), str(folder), logf.fileno(),
                                                          theirs.fileno(), module=MODULE)
                    except Unavailable as exc:
                        log.info("generation for %s: %s; starting it with exec", key, exc)
                if process is None:
                    process = await asyncio.create_subprocess_exec(
                        *command_line(str(spec), theirs.fileno(), self.python, MODULE),
                        stdin=asyncio.subprocess.DEVNULL, stdout=logf, stderr=asyncio.subprocess.STDOUT,
                        pass_fds=(theirs.fileno(),), start_new_session=True, env=self.env(), cwd=str(folder))
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_REPORT + FRAME.size)
        generator = Generator(key, process, reader, writer)
        try:
            first = await asyncio.wait_for(generator.read(), LOAD_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            await self._end(generator, f"it did not load ({type(exc).__name__})")
            raise FailedPrecondition(f"the weights of {key} did not load; see the trainer's log",
                                     reason="GENERATION_FAILED") from None
        if first.HasField("error"):
            await self._end(generator, "its weights did not load")
            raise FailedPrecondition(f"the weights of {key} did not load: {first.error.type}: {first.error.message}",
                                     reason="GENERATION_FAILED")
        generator.load_seconds = time.monotonic() - began
        log.info("generation for %s ready in %.1fs (pid %d)", key, generator.load_seconds, process.pid)
        return generator

    def _arm(self, generator: Generator) -> None:
        """End the process once it has been idle for idle_seconds."""
        if generator.key not in self.generators:
            return
        loop = asyncio.get_running_loop()
        generator.idle_timer = loop.call_later(
            self.idle_seconds, lambda: loop.create_task(self._end(generator, f"idle for {self.idle_seconds:g}s")))

    async def evict_idle(self) -> int:
        """End every process that is not answering (a training run needs its slot); how many."""
        idle = [g for g in self.generators.values() if not g.busy and not g.lock.locked()]
        for generator in idle:
            await self._end(generator, "a training run needs its slot")
        return len(idle)

    async def _end(self, generator: Generator, why: str) -> None:
        if self.generators.get(generator.key) is generator:
            del self.generators[generator.key]
        if generator.idle_timer is not None:
            generator.idle_timer.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            generator.writer.close()  # its socket closed: the process exits
        try:
            await asyncio.wait_for(generator.process.wait(), 10)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(generator.process.pid, signal.SIGKILL)
            await generator.process.wait()
        log.info("generation for %s ended after %d answer(s): %s", generator.key, generator.answered, why)

    async def close(self) -> None:
        for generator in list(self.generators.values()):
            await self._end(generator, "the trainer is closing")
