"""The zygote process (services/trainer/zygote.py is the trainer's handle on it): it imports torch,
transformers, PEFT, TRL and datasets once, then forks one child per run on the trainer's request.

It is exec'd by the trainer, never forked from its gRPC process (gRPC's core does not survive fork():
grpc's doc/fork_support.md). It is single-threaded, never imports gRPC and never touches CUDA (a
process that initialized CUDA cannot hand it to a forked child; torch is told to ask NVML, and the
zygote refuses to serve if CUDA was initialized anyway). Each child it forks is set up as the trainer
sets up a child it execs: a session of its own, stdout and stderr into the run's log, the run's
environment and working directory, the event pipe, the same command line in `ps`, and death with
its parent (this process, which dies with the trainer). Then it runs `services.trainer.child`. The
protocol is in zygote.py.

    python -m services.trainer.zygote_server --fd N
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.trainer.zygote import CHILD, MAX_MESSAGE, command_line

if TYPE_CHECKING:
    import torch

PRELOAD = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors",
           "services.trainer.child", "services.trainer.recipe", "services.trainer.tuning",
           "services.trainer.reporting", "services.trainer.retention", "services.trainer.loading",
           "services.trainer.micro_batch", "services.trainer.generation_child", "services.trainer.eval_child", "services.trainer.sampling", "services.trainer.stopping", "services.common.datasets")


def _capability_from_nvml(device: torch.device | int | None = None) -> tuple[int, int]:
    """`torch.cuda.get_device_capability` answered by NVML, which does not initialize CUDA."""
    from services.trainer import gpu

    index = getattr(device, "idx", device) or 0
    capabilities = gpu._each_gpu(lambda nv, i, h: tuple(nv.nvmlDeviceGetCudaComputeCapability(h)))
    return capabilities[min(index, len(capabilities) - 1)] if capabilities else (0, 0)


def _preload() -> str:
    """Import what every run needs; '' when forking is safe afterwards, else why not."""

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


def _send(sock: socket.socket, **message: Any) -> None:
    sock.send(json.dumps(message).encode())


def _become_run(request: dict[str, Any], fds: list[int], zygote_pid: int, close: list[int]) -> None:
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
        module = request.get("module") or CHILD  # a training run, or a generation process
        argv = command_line(request["spec"], events_fd, module=module)
        if "setproctitle" in sys.modules:
            sys.modules["setproctitle"].setproctitle(" ".join(argv))
        code = importlib.import_module(module).main(argv[3:])
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

    parser = argparse.ArgumentParser(description="the zygote: forks training runs from a warm process")
    parser.add_argument("--fd", type=int, required=True, help="this end of the trainer's socket pair")
    args = parser.parse_args(argv)
    return serve(socket.socket(fileno=args.fd))


if __name__ == "__main__":
    sys.exit(main())
