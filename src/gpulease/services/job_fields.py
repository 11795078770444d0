"""The job columns the scheduler reads, and the core's view of a job (``spec_of``).

Design. The leader reloads every job others changed since its last pass (about 500 rows a
pass at 100 arrivals and 50 completions a second). Loaded as ORM objects, each row paid for
identity-map bookkeeping, attribute instrumentation and the columns it never reads (the
dispatch record's JSON, the command, the image). :func:`load` reads only
``persistence.job_rows.COLUMNS`` as plain rows (one statement per chunk), which answer the
same attribute names as a :class:`~gpulease.persistence.tables.Job`; everything the kept
state does with a reloaded job (``services.live_state``) and the defect check
(``services.containment``) takes a :class:`JobFields`, which a ``Job`` is too.

:func:`spec_of` builds the core's ``JobSpec`` from either. Parsing the priority class and the
topology request is done once per distinct text (a site has a handful), not once per job.

Invariants: :func:`spec_of` raises for a row it cannot map exactly as it did per row (an
unknown priority or topology mode, a shape the spec refuses); nothing here writes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, cast

from gpulease.domain.clock import to_seconds
from gpulease.domain.models import JobSpec, PriorityClass, TopologyMode, TopologyRequest
from gpulease.persistence import job_rows
from gpulease.persistence.db import Tx


class JobFields(Protocol):
    """The columns of a job row the scheduler reads (a ``Job`` or a row of :func:`load`)."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def site_id(self) -> str: ...
    @property
    def gpus(self) -> int: ...
    @property
    def gpus_per_node(self) -> int | None: ...
    @property
    def topology(self) -> str: ...
    @property
    def segment(self) -> int | None: ...
    @property
    def walltime_s(self) -> float | None: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def priority(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def preemptible(self) -> bool: ...
    @property
    def requeueable(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def wait_reason(self) -> str: ...
    @property
    def end_reason(self) -> str: ...
    @property
    def submitted_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def preempt_at(self) -> datetime | None: ...
    @property
    def preempt_reason(self) -> str: ...
    @property
    def guaranteed_since(self) -> datetime | None: ...
    @property
    def attained_gpu_s(self) -> float: ...
    @property
    def run_s(self) -> float: ...
    @property
    def starts(self) -> int: ...
    @property
    def version(self) -> int: ...


def load(tx: Tx, ids: Iterable[str]) -> list[JobFields]:
    """The rows of these jobs (those that exist), the scheduler's columns only
    (``persistence.job_rows.COLUMNS``), as plain rows."""
    return cast("list[JobFields]", job_rows.load_rows(tx, ids))


@functools.lru_cache(maxsize=1024)
def _request(
    priority: str, topology: str, segment: int | None
) -> tuple[PriorityClass, TopologyRequest]:
    """Parsed once per distinct text (raises, and caches nothing, for one it refuses)."""
    return PriorityClass.parse(priority), TopologyRequest(TopologyMode(topology), segment)


def spec_of(job: JobFields) -> JobSpec:
    """The core's view of a job row (submit time in epoch seconds)."""
    priority, topology = _request(job.priority, job.topology, job.segment)
    return JobSpec(
        id=job.id,
        tenant=job.tenant_id,
        gpus=job.gpus,
        submit_time=to_seconds(job.submitted_at),
        gpus_per_node=job.gpus_per_node,
        priority=priority,
        walltime=job.walltime_s,
        preemptible=job.preemptible,
        requeueable=job.requeueable,
        topology=topology,
        purpose=job.purpose,
    )
