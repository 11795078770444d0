"""Why queued jobs wait, resolved on demand: ``Decisions.waiting``.

Design. Explaining every queued job each step cost most of a step at 100,000 queued jobs.
The engine's indexed walk visits only the jobs whose visit can change something; every
other job waits for its shape's reason (a shape that cannot start, or nothing left free),
which the walk records once per run of a queue group (``add_run``: a slice of the group's
entries and one reason). :class:`WaitingMap` is a read-only ``Mapping[str, WaitReason]``
over those runs plus the reasons of the jobs visited one by one (``put``); it resolves a
job's reason when someone reads it.

A reason's text depends only on the job's request and its code (no free-GPU counts), so a
driver that stores reasons can write only those whose meaning changed: ``runs()`` hands
it one reason per run of jobs, ``explicit`` the jobs explained one by one.

The reasons the engine gives are built here (``short_reason``, ``preempting_reason``: one
object per request size, texts without counts that move).

Invariants: a job is in at most one run or in ``explicit``, never both; jobs in ``skip``
(visited before the runs were recorded, e.g. guaranteed jobs) are never read from a run.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import ItemsView, Iterator, Mapping, Sequence

from gpulease.scheduler.backfill import Reservation
from gpulease.scheduler.placement import WaitCode, WaitReason, short_message

Entry = tuple[float, int, str]  # a queue group's entry: (submit, seq, job id)


class WaitingMap(Mapping[str, WaitReason]):
    __slots__ = ("_flat", "_runs", "explicit", "skip")

    def __init__(self) -> None:
        self.explicit: dict[str, WaitReason] = {}
        self._runs: list[tuple[Sequence[Entry], WaitReason]] = []
        self.skip: frozenset[str] | set[str] = frozenset()
        self._flat: dict[str, WaitReason] | None = None

    def put(self, job_id: str, reason: WaitReason) -> None:
        self.explicit[job_id] = reason
        self._flat = None

    def add_run(self, entries: Sequence[Entry], reason: WaitReason) -> None:
        """Every job of ``entries`` (a copy the map keeps) waits for ``reason``."""
        if entries:
            self._runs.append((entries, reason))
            self._flat = None

    def runs(self) -> Iterator[tuple[WaitReason, Iterator[str]]]:
        """One reason per run of jobs: ``(reason, job ids)``, ``explicit`` apart."""
        skip = self.skip
        for entries, reason in self._runs:
            yield reason, (e[2] for e in entries if e[2] not in skip)

    def run_id_sets(self) -> Iterator[tuple[WaitReason, set[str]]]:
        """As :meth:`runs`, each run's job ids as a new set, built without a Python call per
        job (a driver compares whole runs with set operations)."""
        skip = self.skip
        take = operator.itemgetter(2)
        for entries, reason in self._runs:
            ids = set(map(take, entries))
            if skip:
                ids.difference_update(skip)
            yield reason, ids

    def _pairs(self) -> Iterator[tuple[str, WaitReason]]:
        yield from self.explicit.items()
        skip = self.skip
        for entries, reason in self._runs:
            for entry in entries:
                job_id = entry[2]
                if job_id not in skip:
                    yield job_id, reason

    def _resolved(self) -> dict[str, WaitReason]:
        if self._flat is None:
            self._flat = dict(self._pairs()) if self._runs else self.explicit
        return self._flat

    def __getitem__(self, job_id: str) -> WaitReason:
        found = self.explicit.get(job_id)
        if found is not None:
            return found
        return self._resolved()[job_id]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.explicit or job_id in self._resolved()

    def __iter__(self) -> Iterator[str]:
        return (job_id for job_id, _ in self._pairs())

    def __len__(self) -> int:
        return len(self._resolved())

    def items(self) -> ItemsView[str, WaitReason]:
        return _Items(self)

    def __repr__(self) -> str:
        return f"WaitingMap({self._resolved()!r})"


class _Items(ItemsView[str, WaitReason]):
    """Items straight from the runs: no per-job lookup."""

    _mapping: WaitingMap

    def __iter__(self) -> Iterator[tuple[str, WaitReason]]:
        return self._mapping._pairs()


@functools.cache
def short_reason(gpus: int) -> WaitReason:
    return WaitReason(WaitCode.NO_CAPACITY, short_message(gpus))


@functools.cache
def preempting_reason(gpus: int) -> WaitReason:
    return WaitReason(
        WaitCode.PREEMPTING,
        f"{gpus} GPUs are being released by preempted jobs (grace period running)",
    )


def reservation_reason(reservation: Reservation) -> WaitReason:
    when = (
        "an unknown time"
        if math.isinf(reservation.shadow_time)
        else (f"t={reservation.shadow_time:.0f}s")
    )
    return WaitReason(
        WaitCode.RESERVATION,
        f"would delay the job at the head of the queue, which holds a reservation from {when}",
    )
