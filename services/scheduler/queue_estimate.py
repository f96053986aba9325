"""When each queued job should start: free slots go first, then the running jobs' slots as their
ETAs run out; a queued job is assumed to take the median duration of recent successful jobs."""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from google.protobuf import json_format

from ftlab.v1 import job_pb2, job_service_pb2
from services.scheduler import convert
from services.scheduler.clock import aware

if TYPE_CHECKING:
    from services.scheduler.store.models import JobRow


def estimate(queued: list[JobRow], active: list[JobRow], durations: list[float], free_slots: int, now: datetime,
             sees: Callable[[str], bool]) -> job_service_pb2.GetQueueResponse:
    """The queue in start order (`queued` rows, already so ordered), each entry with its wait so far
    and estimated start; `sees(owner)` says whose jobs the caller may see by name (others are
    positions without a name or an owner)."""
    response = job_service_pb2.GetQueueResponse(running=len(active), free_slots=free_slots)
    slots: list[float | None] = [0.0] * free_slots
    for r in active:
        eta = json_format.Parse(r.progress_json, job_pb2.Progress())
        slots.append(eta.eta_seconds if eta.HasField("eta_seconds") else None)
    typical = statistics.median(durations) if durations else None
    known = sorted(x for x in slots if x is not None)
    for position, r in enumerate(queued, start=1):
        entry = response.entries.add(position=position, priority=r.priority,
                                     wait_seconds=(now - aware(r.create_time)).total_seconds())
        if sees(r.owner):
            entry.job, entry.owner = convert.job_name(r.id), r.owner
        if not known:
            continue  # no slot whose release time is known (or no workers)
        start = heapq.heappop(known)
        entry.estimated_start_seconds = start
        if typical is not None:
            heapq.heappush(known, start + typical)
    return response
