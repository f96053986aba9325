"""Wakes watchers when a job gets new events (in this process; other processes poll)."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class EventHub:
    def __init__(self) -> None:
        self._latest: dict[str, int] = defaultdict(int)
        self._conditions: dict[str, asyncio.Condition] = {}

    def _condition(self, job_id: str) -> asyncio.Condition:
        cond = self._conditions.get(job_id)
        if cond is None:
            cond = self._conditions[job_id] = asyncio.Condition()
        return cond

    async def publish(self, job_id: str, sequence: int) -> None:
        cond = self._condition(job_id)
        async with cond:
            self._latest[job_id] = max(self._latest[job_id], sequence)
            cond.notify_all()

    async def wait_beyond(self, job_id: str, sequence: int, timeout: float) -> None:
        """Return once an event after `sequence` was published, or after `timeout` seconds."""
        cond = self._condition(job_id)
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: self._latest[job_id] > sequence), timeout)
            except asyncio.TimeoutError:
                pass
