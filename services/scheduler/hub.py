"""Wakes watchers when a job gets new events, and hands them the newest events from memory so
that many watchers of a running job do not each go to the database for every event.

Only events published by this process are here; a watcher woken by its poll timeout (another
scheduler process may have written) reads the database instead.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque

from ftlab.v1 import job_pb2

RECENT = 256


class EventHub:
    def __init__(self) -> None:
        self._latest: dict[str, int] = defaultdict(int)
        self._conditions: dict[str, asyncio.Condition] = {}
        self._recent: dict[str, deque[job_pb2.JobEvent]] = {}

    def _condition(self, job_id: str) -> asyncio.Condition:
        cond = self._conditions.get(job_id)
        if cond is None:
            cond = self._conditions[job_id] = asyncio.Condition()
        return cond

    async def publish(self, job_id: str, events: list[job_pb2.JobEvent], final: bool = False) -> None:
        """Record committed events (in sequence order) and wake the job's watchers."""
        if not events:
            return
        recent = self._recent.setdefault(job_id, deque(maxlen=RECENT))
        if recent and recent[-1].sequence + 1 != events[0].sequence:
            recent.clear()  # never leave a gap in the buffer
        recent.extend(events)
        cond = self._condition(job_id)
        async with cond:
            self._latest[job_id] = max(self._latest[job_id], events[-1].sequence)
            cond.notify_all()
        if final:
            self._recent.pop(job_id, None)

    def since(self, job_id: str, cursor: int) -> list[job_pb2.JobEvent] | None:
        """Events after `cursor` from memory, or None when memory does not reach back that far."""
        recent = self._recent.get(job_id)
        if not recent or recent[0].sequence > cursor + 1:
            return None
        return [e for e in recent if e.sequence > cursor]

    async def wait_beyond(self, job_id: str, sequence: int, timeout: float) -> bool:
        """Wait until an event after `sequence` is published here (True) or `timeout` passes (False)."""
        cond = self._condition(job_id)
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: self._latest[job_id] > sequence), timeout)
                return True
            except asyncio.TimeoutError:
                return False
