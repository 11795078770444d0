"""The ledger's sequencer as the operator runs it: who gives queued audit records their
positions, and when.

Design (docs/ledger.md, "Appending"). A writing transaction only queues its audit records
(``persistence.ledger_store``: leaf hash fixed, no position, no lock); :func:`sequence` gives
the committed ones the next positions, in batches, each batch a short transaction of its own
under the counter row's lock (``ledger_store.sequence``). It is safe to run anywhere at any
time, by any number of processes at once: one holds the lock, the others wait for it and
then find the queue emptied. It runs

* in the scheduler process, in a thread of its own (:class:`Sequencer`, beside the thread
  that signs heads), every quarter of the maximum merge delay
  (``Settings.ledger_max_merge_delay_s``, the MMD: the longest a committed record may wait
  for its position);
* on demand, before anything that reads positions: signing a head, ``ledger verify``, the
  export, the reports' proofs, and a staff member's proof of a record still queued.

SQLite takes the same path (its writers are serialised anyway, so the queue costs them
nothing and one code path is tested on both databases).

Invariants: the caller's transaction is never the sequencer's (a record is sequenced only
once committed); an empty queue costs one read, no lock and no write.
"""

from __future__ import annotations

import logging
import threading

from gpulease.persistence import ledger_store
from gpulease.services.context import ServiceContext

log = logging.getLogger("gpulease.ledger")


def sequence(ctx: ServiceContext, *, batch: int = ledger_store.SEQUENCE_BATCH) -> int:
    """Give every record committed and queued so far its position; returns how many."""
    if not ctx.db.scalar_now(ledger_store.ANY_PENDING):
        return 0
    total = 0
    while True:
        with ctx.db.transaction() as tx:
            done = ledger_store.sequence(tx.session, batch=batch)
        total += done.count
        if done.count < batch:
            return total


class Sequencer:
    """The scheduler process's sequencer thread: :func:`sequence` every ``interval_s``
    (default a quarter of the MMD). A failure (the database is down) is logged once and
    retried at the next interval; nothing ends the thread but :meth:`stop`."""

    def __init__(self, ctx: ServiceContext, interval_s: float | None = None) -> None:
        self.ctx = ctx
        self.interval_s = interval_s or ctx.settings.ledger_max_merge_delay_s / 4
        self.sequenced = 0  # records this thread gave positions to
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="gpulease-ledger-sequencer", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the running batch (if any) and a last pass over the queue."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval_s)
            self.once()
            if stopping:
                return

    def once(self) -> int:
        try:
            done = sequence(self.ctx)
        except Exception:
            if not self._warned:
                log.exception(
                    "the ledger's sequencer failed; retrying every %.3g s", self.interval_s
                )
                self._warned = True
            return 0
        self._warned = False
        self.sequenced += done
        return done
