"""Process plumbing shared by the training child and the torchrun launcher (Linux): dying with the
parent, the event pipe, and agreeing across the processes of a run.

The pipe carries `RunReport` messages (ftlab.v1), each as a 4-byte big-endian length and its
serialized bytes: the run's events, then its own result. They are built as protos where they are
made, so a field the proto lacks fails in the child, and the trainer reads them without parsing text."""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from google.protobuf import json_format

from ftlab.v1 import events_pb2  # the generated messages alone: no gRPC, which the zygote must never hold

if TYPE_CHECKING:
    import torch


def die_with_parent() -> None:
    """Be killed when the parent named by FTLAB_PARENT_PID dies, so a lost trainer leaves no run behind
    that could train alongside its requeued successor."""
    expected = os.environ.get("FTLAB_PARENT_PID")
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(expected):  # the parent died before prctl took effect
        os._exit(1)


def prefer_oom_kill() -> None:
    """Be the one the kernel kills first when memory runs out, not the trainer service beside it
    (raising one's own oom_score_adj needs no privilege)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("500")
    except OSError:
        pass


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _text(value: Any) -> Any:
    """Strings made valid UTF-8 for the proto (a file name read with surrogateescape keeps its bytes as
    backslash escapes), through dicts and lists."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


class EventSink:
    """Writes the run's reports to the pipe inherited from the trainer service (or discards them)."""

    def __init__(self, fd: int | None) -> None:
        self._file = os.fdopen(fd, "wb", buffering=0) if fd is not None else None
        self._lock = threading.Lock()
        self.phase = "PHASE_STARTUP"

    def emit(self, **payload: Any) -> None:
        """One RunEvent, its payload field as keyword (e.g. metrics={...}, in the proto's JSON shape),
        checked against the proto here, where it is made: a field that RunEvent does not have raises
        at once, in the child, instead of being lost on the way."""
        if self._file is None:
            return
        # through JSON first: values such as numpy floats become plain numbers, text valid UTF-8
        event = json_format.ParseDict(_text(json.loads(json.dumps(payload, default=str))), events_pb2.RunEvent())
        event.time.GetCurrentTime()
        self._write(events_pb2.RunReport(event=event))

    def result(self, **finished: Any) -> None:
        """The run's own account of how it ended (RunFinished's fields), its last report."""
        if self._file is not None:
            self._write(events_pb2.RunReport(result=json_format.ParseDict(_text(finished), events_pb2.RunFinished())))

    def _write(self, report: events_pb2.RunReport) -> None:
        assert self._file is not None  # emit and result write only where there is a pipe
        data = report.SerializeToString()
        with self._lock:
            self._file.write(FRAME.pack(len(data)) + data)

    def set_phase(self, phase: str, detail: str = "") -> None:
        if phase != self.phase or detail:
            self.phase = phase
            self.emit(phase_changed={"phase": phase, "detail": detail})


FRAME = struct.Struct(">I")
MAX_REPORT = 16 << 20  # a longer length is a broken pipe, not a report


def read_reports(stream: BinaryIO) -> Iterator[events_pb2.RunReport]:
    """The reports on a pipe's read end, until it closes (for tools and tests; the trainer reads them
    with asyncio, see supervisor.py)."""
    while header := stream.read(FRAME.size):
        (size,) = FRAME.unpack(header)
        if len(header) < FRAME.size or size > MAX_REPORT:
            raise ValueError(f"a broken report on the run's pipe (length {size})")
        yield events_pb2.RunReport.FromString(stream.read(size))


def read_events(stream: BinaryIO) -> list[dict[str, Any]]:
    """Every report on a pipe as the proto's JSON shape ({"metrics": {...}}, ..., {"result": {...}})."""
    out = []
    for report in read_reports(stream):
        kind = report.WhichOneof("report")
        message = report.event if kind == "event" else report.result
        as_dict = json_format.MessageToDict(message, preserving_proto_field_name=True)
        out.append(as_dict if kind == "event" else {"result": as_dict})
    return out


def across_ranks(value: int, op: str, device: torch.device | str) -> int:
    """`value` reduced over every process of a torchrun run ("max" or "min"); alone, `value`."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    import torch

    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.MIN)
    return int(t.item())
