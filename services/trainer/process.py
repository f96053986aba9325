"""Process plumbing shared by the training child and the torchrun launcher (Linux)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


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
