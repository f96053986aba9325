"""What this machine has: GPUs through NVML (no CUDA context in the service process), CPU, memory."""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypedDict, TypeVar

from ftlab.v1 import trainer_service_pb2

T = TypeVar("T")


class GpuReading(TypedDict):
    index: int
    uuid: str
    total: int  # bytes
    used: int  # bytes
    utilization: float  # busy fraction over NVML's last sample


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


# NVML (pynvml) is untyped: the module and a device's handle are Any
def _each_gpu(read: Callable[[Any, int, Any], T]) -> list[T]:
    """`read(pynvml, index, handle)` for every GPU ([] without NVML or a driver: a CPU machine)."""
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        return [read(pynvml, i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def probe_gpus() -> list[trainer_service_pb2.GpuInfo]:
    def read(nv: Any, i: int, h: Any) -> trainer_service_pb2.GpuInfo:
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        major, minor = nv.nvmlDeviceGetCudaComputeCapability(h)
        return trainer_service_pb2.GpuInfo(
            index=i, name=_text(nv.nvmlDeviceGetName(h)), memory_total_bytes=mem.total, memory_free_bytes=mem.free,
            uuid=_text(nv.nvmlDeviceGetUUID(h)), compute_capability=f"{major}.{minor}")

    return _each_gpu(read)


def read_gpus() -> list[GpuReading]:
    """Current memory and utilization of each GPU."""
    def read(nv: Any, i: int, h: Any) -> GpuReading:
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        return {"index": i, "uuid": _text(nv.nvmlDeviceGetUUID(h)), "total": mem.total, "used": mem.used,
                "utilization": nv.nvmlDeviceGetUtilizationRates(h).gpu / 100.0}

    return _each_gpu(read)


def host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class NotEnoughGpus(Exception):
    """The job asks for more GPUs than this machine has (`free` False) or has free now (`free` True)."""

    def __init__(self, message: str, free: bool) -> None:
        super().__init__(message)
        self.free = free


def allocate(indices: list[int], held: set[int], wanted: int) -> list[int]:
    """GPUs for a new run: `wanted` of `indices` (NVML's order) that no active run holds. A CPU
    machine has none to give (a run there uses `wanted` CPU processes)."""
    if not indices:
        return []
    if wanted > len(indices):
        raise NotEnoughGpus(f"the job asks for {wanted} GPUs (num_gpus) and this trainer has {len(indices)}",
                            free=False)
    free = [i for i in indices if i not in held]
    if wanted > len(free):
        raise NotEnoughGpus(f"{len(free)} of {len(indices)} GPUs are free and the job needs {wanted}", free=True)
    return free[:wanted]
