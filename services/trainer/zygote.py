"""A warm start for training children: one process that has already imported torch, transformers,
PEFT, TRL and datasets forks a child for each run, so a run skips the seconds those imports take.

The trainer service spawns this process with exec, never as a fork of its own gRPC process
(gRPC's core does not survive fork(): grpc's doc/fork_support.md). It is single-threaded, never imports gRPC and never touches
CUDA (a process that initialized CUDA cannot hand it to a forked child; torch is told to ask NVML,
and the zygote refuses to serve if CUDA was initialized anyway). Each child it forks is set up as the
trainer sets up a child it execs: a session of its own, stdout and stderr into the run's log, the
run's environment and working directory, the event pipe, the same command line in `ps`, and death
with its parent (this process, which dies with the trainer). Then it runs `services.trainer.child`.

Protocol, over one SOCK_SEQPACKET socket pair (a message is one JSON object):
    trainer -> zygote  {"id": n, "spec": path, "env": {...}, "cwd": dir} + descriptors [log, events]
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
from pathlib import Path

log = logging.getLogger(__name__)
PRELOAD = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors",
           "services.trainer.child", "services.trainer.recipe", "services.trainer.tuning",
           "services.trainer.reporting", "services.trainer.retention", "services.common.datasets")
MAX_MESSAGE = 1 << 20


def command_line(spec: str, events_fd: int, python: str = sys.executable) -> list[str]:
    """How a single-process run is started; a forked child shows the same line in `ps`."""
    return [python, "-m", "services.trainer.child", "--spec", spec, "--events-fd", str(events_fd)]


# ---------------------------------------------------------------- the zygote process


def _capability_from_nvml(device=None) -> tuple[int, int]:
    """`torch.cuda.get_device_capability` answered by NVML, which does not initialize CUDA."""
    from services.trainer import gpu

    index = getattr(device, "idx", device) or 0
    capabilities = gpu._each_gpu(lambda nv, i, h: tuple(nv.nvmlDeviceGetCudaComputeCapability(h)))
    return capabilities[min(index, len(capabilities) - 1)] if capabilities else (0, 0)


def _preload() -> str:
    """Import what every run needs; '' when forking is safe afterwards, else why not."""
    import importlib

    try:  # set up now, while the command line and environment are still where the kernel put them
        import setproctitle

        setproctitle.setproctitle(setproctitle.getproctitle())
    except ImportError:  # forked children then show the zygote's command line in `ps`
        pass
    import torch

    # bitsandbytes (imported by PEFT, which transformers' Trainer imports) asks every GPU's compute
    # capability at import, which would initialize CUDA here; NVML knows the answer without that
    asked_torch = torch.cuda.get_device_capability
    torch.cuda.get_device_capability = _capability_from_nvml
    try:
        for name in PRELOAD:
            importlib.import_module(name)
    finally:
        torch.cuda.get_device_capability = asked_torch
    # transformers resolves these lazily; a run of one of them would import it anyway
    for arch in ("qwen2", "llama", "mistral", "gemma", "phi3"):
        try:
            importlib.import_module(f"transformers.models.{arch}.modeling_{arch}")
        except ImportError:
            pass
    if torch.cuda.is_initialized() or "libcuda.so" in Path("/proc/self/maps").read_text():
        return "CUDA was initialized while importing; a forked child could not use it"
    if "grpc" in sys.modules:
        return "gRPC was imported; it must not be forked"
    return ""


def _send(sock: socket.socket, **message) -> None:
    sock.send(json.dumps(message).encode())


def _become_run(request: dict, fds: list[int], zygote_pid: int, close: list[int]) -> None:
    """In the forked child: turn into the run's process and train. Never returns."""
    code = 1
    try:
        from services.trainer import child

        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        child.PAUSE.clear()  # SIGUSR1 keeps the handler the child module installed: a pause from now on is ours
        for fd in close:  # the zygote's own
            os.close(fd)
        os.setsid()
        log_fd, events_fd = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["FTLAB_PARENT_PID"] = str(zygote_pid)  # die with the zygote, which dies with the trainer
        import random

        random.seed()  # not the zygote's state, shared by every child
        argv = command_line(request["spec"], events_fd)
        if "setproctitle" in sys.modules:
            sys.modules["setproctitle"].setproctitle(" ".join(argv))
        code = child.main(argv[3:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, pid=pid, code=os.waitstatus_to_exitcode(status))


def serve(sock: socket.socket) -> int:
    import selectors

    from services.trainer.process import die_with_parent

    die_with_parent()
    why = _preload()
    if why:
        _send(sock, unusable=why)
        return 1
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD wakes the selector
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer decides when runs stop
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    _send(sock, ready=os.getpid())
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2)
                if not data:  # the trainer is gone
                    return 0
                request = json.loads(data)
                pid = os.fork()
                if pid == 0:
                    _become_run(request, fds, os.getppid(), [sock.fileno(), wake_r, wake_w, selector.fileno()])
                for fd in fds:
                    os.close(fd)
                _send(sock, id=request["id"], pid=pid)
            else:
                os.read(wake_r, 4096)
        _reap(sock)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="this end of the trainer's socket pair")
    args = parser.parse_args(argv)
    return serve(socket.socket(fileno=args.fd))


# ---------------------------------------------------------------- the trainer's side


class Unavailable(Exception):
    """No warm process to fork from: start the child with exec instead."""


class ForkedProcess:
    """A child forked by the zygote, with the parts of `asyncio.subprocess.Process` the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = asyncio.get_running_loop().create_future()

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
        self._ready: asyncio.Future | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._next_id = 0
        self._reader: asyncio.Task | None = None

    async def start(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(env, PYTHONUNBUFFERED="1", PYTORCH_NVML_BASED_CUDA_CHECK="1", FTLAB_PARENT_PID=str(os.getpid()))
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.python, "-m", "services.trainer.zygote", "--fd", str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),), env=env)
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name="zygote")

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        why = "the zygote exited"
        try:
            while data := await loop.sock_recv(self._sock, MAX_MESSAGE):
                message = json.loads(data)
                if "ready" in message:
                    log.info("zygote %d ready: runs start without importing torch", message["ready"])
                    self._ready.set_result(True)
                elif "unusable" in message:
                    why = message["unusable"]
                    break
                elif "id" in message:  # known before its end can arrive: the zygote reports in order
                    child = self._children[message["pid"]] = ForkedProcess(message["pid"])
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(child)
                else:
                    child = self._children.pop(message["pid"], None)
                    if child is not None:
                        child._end(message["code"])
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

    async def spawn(self, spec: str, env: dict[str, str], cwd: str, log_fd: int, events_fd: int) -> ForkedProcess:
        """Fork a run's child; Unavailable when there is no zygote to fork from."""
        if self._ready is None:
            raise Unavailable("no zygote was started")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.start_timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"the zygote was not ready within {self.start_timeout:.0f}s") from None
        if self._sock is None:
            raise Unavailable("the zygote is gone")
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        request = {"id": self._next_id, "spec": spec, "env": env, "cwd": cwd}
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


if __name__ == "__main__":
    sys.exit(main())
