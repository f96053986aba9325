"""Whether the kernel's out-of-memory killer ended a run: its memory cgroup's kill counter
(cgroup v2 `memory.events`, v1 `memory.oom_control`: `oom_kill N`) and the kernel's own
(`/proc/vmstat`), read when the run starts and again when it ends. A SIGKILL with a counter that
went up in between is a host out-of-memory kill, not a person's `kill -9`."""

from __future__ import annotations

from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _value(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _sources(pid: int) -> list[Path]:
    """The files whose oom_kill counter a kill of `pid` would raise."""
    out: list[Path] = []
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            base, name = CGROUP, "memory.events"  # v2
        elif "memory" in controllers.split(","):
            base, name = CGROUP / "memory", "memory.oom_control"  # v1
        else:
            continue
        folder = base / path.lstrip("/")
        if not (folder / name).exists():  # seen from inside a cgroup namespace: its root is the mount's
            folder = base
        if (folder / name).exists():
            out.append(folder / name)
    return [*out, Path("/proc/vmstat")]  # the cgroup's first: it names where the memory ran out


def counters(pid: int) -> dict[Path, int]:
    """Each source's oom_kill count now."""
    return {path: value for path in _sources(pid) if (value := _value(path)) is not None}


def killed(before: dict[Path, int]) -> str:
    """What says the out-of-memory killer struck since `before`, or ""."""
    for path, was in before.items():
        now = _value(path)
        if now is not None and now > was:
            where = "its memory cgroup" if path.name != "vmstat" else "the kernel"
            return f"the kernel's out-of-memory killer ended it (oom_kill of {where} went from {was} to {now})"
    return ""
