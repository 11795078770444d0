"""The scheduler loop: passes every interval, while this process holds the leader lease.

Each iteration takes or renews the lease (``persistence.leader``) first; a pass runs only
while it is held, and the pass fences its writes on it (``LiveScheduler.leadership``). A pass
that fails (the database is down) is logged and counted (``failed_passes``) and the next
iteration retries; nothing a pass raises ends the thread. On ``stop`` the lease is released
(expired) once the running pass has ended, so another process takes over at once. After a
pass the leader signs a ledger tree head when the interval has passed and the ledger grew
(``services.ledger.HeadSigner``). Beside the passes, led or not, a thread gives queued
ledger records their positions (``services.ledger_sequencer.Sequencer``, safe beside other
processes' sequencers).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from gpulease.activity import log_passes
from gpulease.persistence.leader import Leadership, leader_lock
from gpulease.services.collection import collected_after
from gpulease.services.compute_reviews import ComputeScanner
from gpulease.services.ledger import HeadSigner
from gpulease.services.ledger_sequencer import Sequencer

if TYPE_CHECKING:
    from gpulease.services.scheduling import LiveScheduler

log = logging.getLogger("gpulease.scheduler")


class SchedulerLoop:
    """Runs passes every ``interval`` seconds in a thread while this process leads (the
    module docstring gives the rules)."""

    def __init__(
        self,
        scheduler: LiveScheduler,
        lock: Leadership | None = None,
        interval_s: float | None = None,
    ) -> None:
        ctx = scheduler.ctx
        self.scheduler = scheduler
        self.lock = lock or leader_lock(
            ctx.db, ctx.clock, holder=scheduler.name, ttl_s=ctx.settings.leader_ttl_s
        )
        scheduler.leadership = self.lock
        self.interval_s = interval_s or ctx.settings.scheduler_interval_s
        if self.interval_s * 2 > ctx.settings.leader_ttl_s:
            log.warning(
                "scheduler interval %.3g s is more than half the leader lease TTL %.3g s: "
                "leadership may lapse between passes",
                self.interval_s,
                ctx.settings.leader_ttl_s,
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False
        self._release_guard = threading.Lock()
        self._leading = False
        self.stop_timeout_s = 30.0
        # the leader signs a ledger head after a pass, every so often when the ledger grew
        self.sign_heads = HeadSigner(ctx)
        # ... and adds up training compute against the packs' thresholds for officers
        self.scan_compute = ComputeScanner(ctx)
        # committed audit records get their ledger positions within the maximum merge delay
        self.sequencer = Sequencer(ctx)

    @property
    def leading(self) -> bool:
        """This process leads: it took or renewed the lease, and the lease has not expired."""
        return self._leading and self.lock.still_held()

    @property
    def failed_passes(self) -> int:
        return self.scheduler.failed_passes

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpulease-scheduler", daemon=True)
        self._thread.start()
        self.sequencer.start()

    def stop(self) -> None:
        self._stop.set()
        self.sequencer.stop()
        if self._thread is not None:
            self._thread.join(timeout=self.stop_timeout_s)
            if self._thread.is_alive():
                # a pass still runs: the lease goes when it ends (``_run``), not now, or a new
                # leader would decide beside it
                return
        self.scheduler.attestor.wait(self.stop_timeout_s)  # a sweep under way, beside the passes
        self._release()

    def _release(self) -> None:
        with self._release_guard:
            if self._released:
                return
            self._released = True
            try:
                self.lock.release()
            finally:
                self.scheduler.executor.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._leading = self.lock.acquire()
            except Exception:  # cannot tell: do not lead; the next iteration asks again
                self._leading = False
                log.exception("scheduler leadership check failed")
            if self._leading:
                try:
                    began = time.perf_counter()
                    with collected_after():  # the collector runs after the pass, not in it
                        reports = self.scheduler.tick()
                        took = time.perf_counter() - began
                    log_passes(reports, took)  # busy passes only
                    self.sign_heads()  # never raises; a no-op until the interval has passed
                    self.scan_compute()  # likewise
                except Exception:  # a pass must never kill the loop; the next pass retries
                    self.scheduler.failed_passes += 1
                    log.exception("scheduler pass failed; retrying in %.3g s", self.interval_s)
            self._stop.wait(self.interval_s)
        self._leading = False
        self._release()
