"""What this machine has: GPUs through NVML (no CUDA context in the service process), CPU, memory."""

from __future__ import annotations

import os
from importlib import metadata

from ftlab.v1 import trainer_service_pb2


def probe_gpus() -> list[trainer_service_pb2.GpuInfo]:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: a CPU machine
        return []
    gpus = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            name = pynvml.nvmlDeviceGetName(h)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            gpus.append(trainer_service_pb2.GpuInfo(
                index=i, name=name if isinstance(name, str) else name.decode(),
                memory_total_bytes=mem.total, memory_free_bytes=mem.free,
                uuid=uuid if isinstance(uuid, str) else uuid.decode(), compute_capability=f"{major}.{minor}"))
    finally:
        pynvml.nvmlShutdown()
    return gpus


def read_gpus() -> list[dict]:
    """Current memory and utilization of each GPU (empty without NVML or a driver)."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:
        return []
    out = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            out.append({"index": i, "uuid": uuid if isinstance(uuid, str) else uuid.decode(), "total": mem.total,
                        "used": mem.used, "utilization": pynvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0})
    finally:
        pynvml.nvmlShutdown()
    return out


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
