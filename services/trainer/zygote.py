"""A warm start for training children: the trainer's handle on the zygote, one process that has
already imported torch, transformers, PEFT, TRL and datasets and forks a child for each run, so a run
skips the seconds those imports take (the process itself: services/trainer/zygote_server.py).

Protocol, over one SOCK_SEQPACKET socket pair (a message is one JSON object):
    trainer -> zygote  {"id": n, "spec": path, "env": {...}, "cwd": dir, "module": name} + descriptors [log, events]
    zygote -> trainer  {"ready": pid}   once imported; or {"unusable": why} and exit
                       {"id": n, "pid": pid}   a child was forked
                       {"pid": pid, "code": rc}   a child ended (rc < 0: killed by signal -rc)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys

log = logging.getLogger(__name__)
MAX_MESSAGE = 1 << 20


CHILD = "services.trainer.child"


def command_line(spec: str, events_fd: int, python: str = sys.executable, module: str = CHILD) -> list[str]:
    """How a single-process run (or a generation process, `module`) is started; a forked child shows
    the same line in `ps`."""
    return [python, "-m", module, "--spec", spec, "--events-fd", str(events_fd)]


class Unavailable(Exception):
    """No warm process to fork from: start the child with exec instead."""


class ForkedProcess:
    """A child forked by the zygote, with the parts of `asyncio.subprocess.Process` the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def _end(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._ended.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)


class Zygote:
    """The trainer's handle on the zygote process: start it, fork runs from it, learn how they end."""

    def __init__(self, python: str = sys.executable, start_timeout: float = 300.0) -> None:
        self.python = python
        self.start_timeout = start_timeout
        self.process: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[bool] | None = None
        self._pending: dict[int, asyncio.Future[ForkedProcess]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(env, PYTHONUNBUFFERED="1", PYTORCH_NVML_BASED_CUDA_CHECK="1", FTLAB_PARENT_PID=str(os.getpid()))
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.python, "-m", "services.trainer.zygote_server", "--fd", str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),), env=env)
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name="zygote")

    async def _read(self) -> None:
        sock, ready = self._sock, self._ready
        assert sock is not None and ready is not None  # start() sets both before it starts this task
        loop = asyncio.get_running_loop()
        why = "the zygote exited"
        try:
            while data := await loop.sock_recv(sock, MAX_MESSAGE):
                message = json.loads(data)
                if "ready" in message:
                    log.info("zygote %d ready: runs start without importing torch", message["ready"])
                    ready.set_result(True)
                elif "unusable" in message:
                    why = message["unusable"]
                    break
                elif "id" in message:  # known before its end can arrive: the zygote reports in order
                    child = self._children[message["pid"]] = ForkedProcess(message["pid"])
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(child)
                else:
                    ended = self._children.pop(message["pid"], None)
                    if ended is not None:
                        ended._end(message["code"])
        except (OSError, ValueError) as exc:
            why = f"the zygote's socket failed: {exc}"
        log.warning("runs start with exec from now on: %s", why)
        self._close(why)

    def _close(self, why: str) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(Unavailable(why))
            self._ready.exception()  # retrieved here: a run that asks later gets it again
        for future in self._pending.values():
            if not future.done():
                future.set_exception(Unavailable(why))
        self._pending.clear()
        for child in self._children.values():  # killed with the zygote (parent-death signal)
            child._end(-signal.SIGKILL)
        self._children.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def spawn(self, spec: str, env: dict[str, str], cwd: str, log_fd: int, events_fd: int,
                    module: str = CHILD) -> ForkedProcess:
        """Fork a run's child (or a generation process, `module`); Unavailable when there is no zygote
        to fork from."""
        if self._ready is None:
            raise Unavailable("no zygote was started")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.start_timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"the zygote was not ready within {self.start_timeout:.0f}s") from None
        if self._sock is None:
            raise Unavailable("the zygote is gone")
        self._next_id += 1
        future: asyncio.Future[ForkedProcess] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        request = {"id": self._next_id, "spec": spec, "env": env, "cwd": cwd, "module": module}
        try:
            socket.send_fds(self._sock, [json.dumps(request).encode()], [log_fd, events_fd])
        except OSError as exc:
            self._pending.pop(self._next_id, None)
            raise Unavailable(f"could not reach the zygote: {exc}") from None
        return await future

    async def close(self) -> None:
        """Let the zygote go (it exits on EOF). Its children die with it: close after the runs ended."""
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        importing = self._ready is not None and not self._ready.done()
        self._close("the trainer closed it")
        if self.process is not None and self.process.returncode is None:
            if importing:  # it would notice the EOF only after its imports; it has no children yet
                self.process.kill()
            try:
                await asyncio.wait_for(self.process.wait(), 5.0)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
