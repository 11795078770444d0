"""The job columns the scheduler's kept state reads, loaded as plain rows (no ORM objects):
what ``services.job_fields`` turns into the core's job specs.

Invariant: read-only; a job id that does not exist is absent from the answer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from gpulease.persistence import bulk
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Job

COLUMNS = tuple(
    Job.__table__.c[name]
    for name in [
        "id",
        "tenant_id",
        "site_id",
        "gpus",
        "gpus_per_node",
        "topology",
        "segment",
        "walltime_s",
        "duration_s",
        "priority",
        "purpose",
        "preemptible",
        "requeueable",
        "state",
        "wait_reason",
        "end_reason",
        "submitted_at",
        "started_at",
        "ended_at",
        "preempt_at",
        "preempt_reason",
        "guaranteed_since",
        "attained_gpu_s",
        "run_s",
        "starts",
        "version",
    ]
)


def load_rows(tx: Tx, ids: Iterable[str]) -> list[Any]:
    """The rows of these jobs (those that exist), :data:`COLUMNS` only."""
    rows: list[Any] = []
    for part in bulk.chunks(sorted(set(ids))):
        query = select(*COLUMNS).where(bulk.among(tx, Job.id, part))
        rows += list(tx.session.execute(query).all())
    return rows
