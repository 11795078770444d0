"""A scheduler leader's periodic hook: some work every ``interval_s``, in a thread of its own.

Design. The loop calls the hook after each pass; the hook starts its work in a daemon thread
when the interval has passed and no earlier run is still under way, so work that reads a lot
(signing a ledger head, adding up training compute) never delays the next pass. What the
work does on failure is the subclass's: log once, retry at the next interval.

Invariants: at most one run at a time per hook; a call before the interval has passed, or
while a run is under way, starts nothing and returns None.
"""

from __future__ import annotations

import threading
import time


class Periodic:
    """Subclasses give ``name`` (the thread's) and ``run`` (the work; it must not raise)."""

    name = "gpulease-periodic"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self._thread: threading.Thread | None = None

    def __call__(self) -> threading.Thread | None:
        """Start the work if it is due and none is under way; returns the thread started."""
        now = time.monotonic()
        if now < self._next or (self._thread is not None and self._thread.is_alive()):
            return None
        self._next = now + self.interval_s
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> object:
        raise NotImplementedError
