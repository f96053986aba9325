"""How a run's process is started. Every launcher gives the child a session of its own (cancel kills
its group), the run's log as stdout and stderr, the run's folder as its working directory, and the
write end of the event pipe; none forks this gRPC process.

- ZygoteLauncher forks a single-process run from the zygote (services/trainer/zygote.py), which has
  imported torch already; it raises Unavailable when there is no zygote, and the next launcher starts it.
- ExecLauncher execs `python -m services.trainer.child`.
- TorchrunLauncher execs torchrun (services/trainer/launch.py) for a run on several GPUs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from services.trainer.zygote import CHILD, ForkedProcess, Unavailable, Zygote, command_line

Process = asyncio.subprocess.Process | ForkedProcess


class Launcher(Protocol):
    name: str

    async def launch(self, spec: str, env: dict[str, str], cwd: str, log_fd: int, events_fd: int) -> Process:
        """Start the run's process; Unavailable where this launcher cannot start it."""
        ...


class ZygoteLauncher:
    name = "forked from the zygote"

    def __init__(self, zygote: Zygote, module: str = CHILD) -> None:
        self.zygote, self.module = zygote, module

    async def launch(self, spec: str, env: dict[str, str], cwd: str, log_fd: int, events_fd: int) -> Process:
        return await self.zygote.spawn(spec, env, cwd, log_fd, events_fd, module=self.module)


class ExecLauncher:
    name = "exec"

    def __init__(self, python: str, module: str = CHILD) -> None:
        self.python, self.module = python, module

    def argv(self, spec: str, events_fd: int) -> list[str]:
        return command_line(spec, events_fd, self.python, self.module)

    async def launch(self, spec: str, env: dict[str, str], cwd: str, log_fd: int, events_fd: int) -> Process:
        return await asyncio.create_subprocess_exec(
            *self.argv(spec, events_fd), stdin=asyncio.subprocess.DEVNULL, stdout=log_fd,
            stderr=asyncio.subprocess.STDOUT, pass_fds=(events_fd,), start_new_session=True, env=env, cwd=cwd)


class TorchrunLauncher(ExecLauncher):
    name = "torchrun"

    def __init__(self, python: str, processes: int) -> None:
        super().__init__(python)
        self.processes = processes

    def argv(self, spec: str, events_fd: int) -> list[str]:
        return [self.python, "-m", "services.trainer.launch", "--nproc", str(self.processes), "--spec", spec,
                "--events-fd", str(events_fd)]


def launchers_for(processes: int, python: str, zygote: Zygote | None, module: str = CHILD) -> list[Launcher]:
    """The launchers to try in order for a run of `processes` processes of `module` (the training
    child; an evaluation run is one process of the evaluation child)."""
    if processes > 1:
        return [TorchrunLauncher(python, processes)]
    return ([ZygoteLauncher(zygote, module)] if zygote is not None else []) + [ExecLauncher(python, module)]


async def launch(launchers: list[Launcher], spec: str, env: dict[str, str], cwd: str, log_fd: int,
                 events_fd: int, on_unavailable: Callable[[Unavailable], object] | None = None) -> tuple[Process, str]:
    """(process, how it was started) from the first launcher that can start it."""
    for launcher in launchers[:-1]:
        try:
            return await launcher.launch(spec, env, cwd, log_fd, events_fd), launcher.name
        except Unavailable as exc:
            if on_unavailable is not None:
                on_unavailable(exc)
    last = launchers[-1]
    return await last.launch(spec, env, cwd, log_fd, events_fd), last.name
