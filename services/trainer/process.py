"""Process plumbing shared by the training child and the torchrun launcher (Linux): dying with the
parent, the event pipe, and agreeing across the processes of a run.

Each event is one JSON line on an inherited pipe, shaped like a `RunEvent` payload (field names as
in the proto), so the trainer service can parse it with `json_format.ParseDict`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from ftlab.v1 import events_pb2  # the generated messages alone: no gRPC, which the zygote must never hold


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
    """Writes events to the pipe inherited from the trainer service (or discards them)."""

    def __init__(self, fd: int | None) -> None:
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8") if fd is not None else None
        self._lock = threading.Lock()
        self.phase = "PHASE_STARTUP"

    def emit(self, **payload: Any) -> None:
        """One RunEvent (its payload field as keyword, e.g. metrics={...}), checked against the proto
        here, where it is made: a field that RunEvent does not have raises at once, in the child,
        instead of being dropped by the trainer. `result` (the run's own outcome) is the one other line."""
        if self._file is None:
            return
        stamp = time.time()
        payload["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"
        line = json.dumps(payload, separators=(",", ":"), default=str)
        if "result" not in payload:
            event = json_format.ParseDict(_text(json.loads(line)), events_pb2.RunEvent())
            line = json_format.MessageToJson(event, preserving_proto_field_name=True, indent=None)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def set_phase(self, phase: str, detail: str = "") -> None:
        if phase != self.phase or detail:
            self.phase = phase
            self.emit(phase_changed={"phase": phase, "detail": detail})


def across_ranks(value: int, op: str, device) -> int:
    """`value` reduced over every process of a torchrun run ("max" or "min"); alone, `value`."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    import torch

    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.MIN)
    return int(t.item())
