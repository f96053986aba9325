"""A pre-flight worker: one process, exec'd by the analyzer (services/analyzer/pool.py), that runs
pre-flight checks one at a time, away from the threads that answer other users.

Pre-flight renders the user's chat template (in transformers' ImmutableSandboxedEnvironment) over
the user's data, so this process runs it under budgets: each render stage gets `--template-seconds`
(a timer interrupts it), the process may grow by `--memory-bytes` beyond what it holds once its
libraries are imported (allocations past that fail with MemoryError), and it runs at a lower CPU
priority than the services. The analyzer kills it when a check outlives its hard limit, and starts
another. Model and tokenizer facts are cached per model folder for the next check.

Protocol on stdin/stdout, one frame each way per check (4-byte big-endian length, then JSON):
    analyzer -> worker  {"request": base64 PreflightRequest, "owner": user}
    worker -> analyzer  {"ready": pid} once, then per check
                        {"response": base64 PreflightResponse} or {"error": {kind, message, reason, violations}}
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import struct
import sys
from collections.abc import Iterable
from typing import Any, BinaryIO, TypeAlias

Frame: TypeAlias = dict[str, Any]  # one JSON object of the protocol


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = stream.read(size - len(data))
        if not piece:
            break
        data += piece
    return data


def read_frame(stream: BinaryIO) -> Frame | None:
    header = _read_exact(stream, 4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    message: Frame = json.loads(_read_exact(stream, size))
    return message


def frame(message: Frame) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">I", len(data)) + data


def _limit_memory(extra: int) -> None:
    import resource

    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, resource.RLIM_INFINITY))


def _error(kind: str, message: str, reason: str = "", violations: Iterable[tuple[str, str]] = ()) -> Frame:
    """A refusal, named by its domain error class (services/common/errors.py; "" for an internal error)."""
    return {"error": {"kind": kind, "message": message, "reason": reason, "violations": [list(v) for v in violations]}}


def _answer(message: Frame, template_seconds: float) -> Frame:
    from ftlab.v1 import analyzer_pb2
    from services.analyzer.preflight import preflight_request
    from services.common import errors

    request = analyzer_pb2.PreflightRequest.FromString(base64.b64decode(message["request"]))
    try:
        response = preflight_request(request, message.get("owner", ""), template_seconds)
    except errors.DomainError as exc:
        kind = next(c.__name__ for c in type(exc).__mro__ if getattr(errors, c.__name__, None) is c)
        return _error(kind, exc.message, exc.reason, [(v.field, v.description) for v in getattr(exc, "violations", [])])
    except MemoryError:
        return _error("ResourceExhausted", "pre-flight needed more memory than it may use", "PREFLIGHT_MEMORY")
    except Exception:
        import traceback

        traceback.print_exc()  # to the analyzer's log
        return _error("", "pre-flight failed")
    return {"response": base64.b64encode(response.SerializeToString()).decode()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template-seconds", type=float, default=10.0)
    parser.add_argument("--memory-bytes", type=int, default=2 << 30)
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "wb", buffering=0)  # frames only; anything a library prints goes to stderr
    os.dup2(2, 1)
    requests = os.fdopen(0, "rb", buffering=0)
    os.nice(5)
    import transformers  # noqa: F401  (the cost of the first check, paid before the memory budget is set)

    from services.analyzer import preflight  # noqa: F401

    _limit_memory(args.memory_bytes)
    out.write(frame({"ready": os.getpid()}))
    while (message := read_frame(requests)) is not None:
        out.write(frame(_answer(message, args.template_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
