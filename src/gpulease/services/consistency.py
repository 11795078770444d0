"""The leader's periodic consistency check, built beside the passes instead of inside one.

Design. Every ``consistency_check_s`` the leader checks its kept state (``services.
live_state``) against the database. Rebuilding inside a pass cost seconds at 40,000 queued
jobs, and blocked that pass; so a :class:`Check` builds the fresh state in a thread of its
own: one read transaction (one database snapshot) read and built in slices, the thread
waiting at each slice's end while a pass runs (:class:`Gate`), so the passes go on at
their pace and the build takes the time between them.

Meanwhile the passes keep moving the kept state, and the snapshot was taken at a moment no
pass knows. So every job and node the kept state touched from the pass that started the
check to the pass that compares is left out of the comparison: every change the feed
returned in that window (others' and the leader's own writes alike: a change committed
before the snapshot and read after it is among them), every job the leader's decisions
moved or whose guarantee claim it wrote, and the lease guarantees if they changed. What is
left must be equal; anything else is a divergence. A divergence is logged and repaired by
a rebuild in the pass that found it (the old, blocking path: rare, and then it is needed);
otherwise the kept state goes on and the next check is due ``consistency_check_s`` later.

Invariants: the thread never writes and never touches the kept state (it reads the
database and builds its own ``SchedulerState``); only the pass thread compares; a check
whose kept state was replaced meanwhile (new term, admission change, rebuild) is dropped
unread; a check whose thread failed is logged and the next one is due a period later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from gpulease.persistence.change_reader import Change
from gpulease.scheduler.engine import Decisions
from gpulease.scheduler.state import SchedulerState
from gpulease.services.containment import describe
from gpulease.services.live_state import SiteState, divergences
from gpulease.services.snapshot import Pause, Snapshot

log = logging.getLogger("gpulease.scheduler")

Build = Callable[[Pause], tuple[Snapshot, SchedulerState]]


def _trim() -> None:
    """Hand the C allocator's free pages back to the system (glibc's ``malloc_trim``; a
    no-op elsewhere): a thread allocates in a malloc arena of its own, which otherwise keeps
    the high-water mark of the snapshot it read."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


class Gate:
    """Open between passes, shut while one runs: a check's thread waits at it."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    @contextmanager
    def shut(self) -> Iterator[None]:
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    def wait(self) -> None:
        self._open.wait()


@dataclass
class Check:
    """One consistency check of one site's kept state (the module docstring gives the rules)."""

    kept: SiteState
    now: datetime
    lease_changes: int
    jobs: set[str] = field(default_factory=set)  # touched since the check started
    nodes: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    fresh: SchedulerState | None = None
    left_out: set[str] = field(default_factory=set)  # defects of the snapshot: not compared
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    @classmethod
    def begin(cls, kept: SiteState, now: datetime, build: Build, gate: Gate) -> Check:
        check = cls(kept, now, kept.lease_changes)
        check.thread = threading.Thread(
            target=check._run,
            args=(build, gate),
            name=f"gpulease-check-{kept.site_id}",
            daemon=True,
        )
        check.thread.start()
        return check

    def _run(self, build: Build, gate: Gate) -> None:
        try:
            gate.wait()  # begun by a pass: read once it has ended
            snap, self.fresh = build(gate.wait)
            self.left_out = {d.job_id for d in snap.defects}
        except BaseException as error:  # reported by the pass that reads the check
            self.error = error
        finally:
            _trim()  # the snapshot's rows are freed: their pages go back to the system
            self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    # ----------------------------------------------------------- what passes touch
    def saw(self, changes: Iterable[Change]) -> None:
        for change in changes:
            (self.jobs if change.kind == "job" else self.nodes).add(change.ref)

    def decided(self, decisions: Decisions | None, job_ids: Iterable[str]) -> None:
        self.jobs.update(job_ids)
        if decisions is None:
            return
        self.jobs.update(s.job_id for s in decisions.starts)
        self.jobs.update(p.job_id for p in decisions.notices)
        self.jobs.update(p.job_id for p in decisions.requeues)
        self.jobs.update(decisions.timeouts)
        self.jobs.update(decisions.guaranteed_waiting)

    # ---------------------------------------------------------------- the verdict
    def conclude(self) -> tuple[str, list[str]]:
        """Once :attr:`done`: ("equal", []), ("diverged", what differs) or ("failed: why",
        []), logged."""
        site_id = self.kept.site_id
        try:
            found = self.verdict()
        except Exception as error:
            log.error("consistency check of site %s failed: %s", site_id, describe(error))
            return f"failed: {describe(error)}", []
        if not found:
            return "equal", []
        log.error(
            "scheduler state for site %s diverged from the database (repaired): %s",
            site_id,
            "; ".join(found),
        )
        return "diverged", found

    def verdict(self) -> list[str]:
        """The divergences found (empty: none); only once :attr:`done`. A failed build
        raises its error."""
        if self.error is not None:
            raise self.error
        assert self.fresh is not None
        return divergences(
            self.kept.state,
            self.fresh,
            skip=self.jobs | self.left_out,
            skip_nodes=self.nodes,
            leases=self.kept.lease_changes == self.lease_changes,
        )
