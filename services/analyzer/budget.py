"""A time budget for work a user's input drives (rendering their chat template over their data):
a timer interrupts the Python code running it. Only in a process's main thread, as in the
pre-flight worker; elsewhere the budget is not enforced here (the pool's hard limit still is)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class OverBudget(Exception):
    """The work took longer than its budget."""


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise OverBudget(f"over its budget of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
