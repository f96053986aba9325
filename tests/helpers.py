"""Shared test helpers: real servers in subprocesses on free ports, a TCP proxy that can cut
connections, and a tiny model and dataset made on the spot."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
# the users of the shared server with auth on (conftest's `secured`)
TOKENS = {"alice": ("user", "tok-alice"), "bob": ("user", "tok-bob"), "root": ("admin", "tok-root")}
SERVICE_TOKEN = "tok-service"
CANARY = "alice-canary-7f3e"  # in alice's data: must never reach bob


@dataclass
class ServerProcess:
    """One `ftlab serve` (or `python -m services.<name>`) process."""

    proc: subprocess.Popen
    port: int
    metrics_port: int
    home: Path
    log_path: Path
    openai_port: int | None = None  # ftlab serve's OpenAI-compatible gateway

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.openai_port}/v1"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(home: Path, args: list[str] | None = None, module: str | None = None, env: dict | None = None,
                 name: str = "server", timeout: float = 60.0, prefix: list[str] | None = None) -> ServerProcess:
    """Start a server with --port 0 and wait until it reports its ports; `prefix` runs it through a
    wrapper command (which must exec it)."""
    home.mkdir(parents=True, exist_ok=True)
    ready = home / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    log_path = home / f"{name}.log"
    command = [*(prefix or []), *([sys.executable, "-m", module] if module else
                                   [sys.executable, "-m", "services.cli.main", "serve"])]
    command += ["--port", "0", "--metrics-port", "0", "--ready-file", str(ready), *(args or [])]
    if module is None and "--openai-port" not in command:  # ftlab serve: its REST gateway on a free port too
        command += ["--openai-port", "0"]
    environment = dict(os.environ, FTLAB_HOME=str(home), PYTHONUNBUFFERED="1", **(env or {}))
    with log_path.open("ab") as log:  # a restarted server appends: the whole history stays readable
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    info = json.loads(ready.read_text())
    return ServerProcess(proc, info["port"], info["metrics_port"], home, log_path, info.get("openai_port"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `cut()` drops every open connection (a network fault)."""

    target_port: int
    port: int = 0
    _server: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    cuts: int = 0

    def start(self) -> "TcpProxy":
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.cuts += 1

    def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def channel_ready(address: str, timeout: float = 10.0) -> grpc.Channel:
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=timeout)
    return channel


def write_chat_dataset(path: Path, rows: int = 128, seed: int = 0, padding: int = 0) -> Path:
    """Chat rows asking a sum; padding adds that many words of preamble to each question."""
    from services.common.arithmetic_chat import write_arithmetic_chat

    return write_arithmetic_chat(path, rows, seed, padding)


def training_children() -> list[tuple[int, str, str]]:
    """(pid, job id, run id) of every live training child on this machine, from /proc command lines."""
    import re

    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
            state = open(f"/proc/{entry}/stat").read().split()[2]
        except OSError:
            continue
        m = re.search(r"/jobs/([0-9a-f]+)/runs/([^/]+)/spec.json", cmdline)
        if "services.trainer.child" in cmdline and m and state != "Z":
            out.append((int(entry), m.group(1), m.group(2)))
    return out


class SmallDisk:
    """A tmpfs of `size` bytes mounted at `path` (needs root): a disk the tests can fill."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size

    def __enter__(self) -> "SmallDisk":
        import pytest

        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); needs root")
        return self

    def fill(self) -> None:
        """Take every free byte (a file that grows until the disk says no)."""
        with open(self.path / "filler", "ab", buffering=0) as f:
            for size in (1 << 20, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError:
                    pass

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def child_pid(job_id: str, attempt: int | None = None) -> int:
    """The training child of a job (of one attempt of it, when given)."""
    for pid, job, run in training_children():
        if job == job_id and (attempt is None or run == f"{job_id}-{attempt}"):
            return pid
    raise AssertionError(f"no training child for job {job_id}")


class ChildRunner:
    """Training children forked from a zygote of their own, as the trainer service starts them; each
    run's config is resolved from the basic template, its rows written to a file, its reports read
    from its pipe."""

    def __init__(self) -> None:
        import asyncio

        from services.trainer.zygote import Zygote

        self.loop = asyncio.new_event_loop()
        self.zygote = Zygote()
        self.loop.run_until_complete(self.zygote.start(dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                                                                   *sys.path]))))

    def run(self, tmp_path: Path, config: dict, rows: list[dict]) -> tuple[int, list[dict], Path]:
        """(exit status, the child's reports as dicts, the job's folder) of one run on `rows`; its
        output goes to tmp_path/train.log."""
        import asyncio

        from google.protobuf import json_format

        from ftlab.config import config_from_dict
        from services.scheduler import jobconfig
        from services.trainer.process import read_events

        data = tmp_path / "data.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        dataset = {**config.get("dataset", {}), "uri": str(data)}
        resolved = jobconfig.resolve("basic", config_from_dict({**config, "dataset": dataset}))
        cfg = json_format.MessageToDict(resolved, preserving_proto_field_name=True)
        job_dir = tmp_path / "job"
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"config": cfg, "job_dir": str(job_dir), "checkpoints_dir": str(job_dir / "checkpoints"),
                                    "run_dir": str(job_dir / "runs" / "run-1"), "job_id": "0000000000c0ffee"}))
        read_fd, write_fd = os.pipe()
        with (tmp_path / "train.log").open("wb") as log:
            child = self.loop.run_until_complete(self.zygote.spawn(str(spec), dict(os.environ), str(ROOT), log.fileno(),
                                                                   write_fd))
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            events = read_events(pipe)
        return self.loop.run_until_complete(asyncio.wait_for(child.wait(), 300)), events, job_dir

    def close(self) -> None:
        self.loop.run_until_complete(self.zygote.close())
        self.loop.close()
