"""The scheduler's reload of changed jobs reads plain rows of a few columns
(``services.job_fields``): the same fields, and the same core view, as the ORM row."""

from __future__ import annotations

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.errors import DomainError
from gpulease.persistence import bulk
from gpulease.persistence.job_rows import COLUMNS
from gpulease.services import job_fields, jobs
from gpulease.services.containment import defect_of
from gpulease.services.context import ServiceContext
from gpulease.services.job_fields import JobFields, spec_of
from live_support import job_of


def test_the_columns_are_the_protocols_fields() -> None:
    fields = {name for name in vars(JobFields) if not name.startswith("_")}
    assert {column.name for column in COLUMNS} == fields


def test_a_loaded_row_answers_every_field_as_the_orm_row(
    ctx: ServiceContext, outsider: Principal
) -> None:
    ids = [jobs.submit(ctx, outsider, job_of(gpus, 600)).id for gpus in (1, 2, 4)]
    with ctx.db.transaction(write=False) as tx:
        plain = {row.id: row for row in job_fields.load(tx, [*ids, "no-such-job"])}
        full = {job.id: job for job in bulk.load_jobs(tx, ids)}
    assert set(plain) == set(ids)
    for job_id in ids:
        for column in COLUMNS:
            assert getattr(plain[job_id], column.name) == getattr(full[job_id], column.name)
        assert spec_of(plain[job_id]) == jobs.spec_of(full[job_id])
        assert defect_of(plain[job_id], ctx.now()) is None


def test_a_bad_priority_is_refused_each_time(ctx: ServiceContext, outsider: Principal) -> None:
    job = jobs.submit(ctx, outsider, job_of(1, 600))
    with ctx.db.transaction() as tx:
        row = tx.require(type(job), job.id, "job")
        row.priority = "urgent-ish"
        for _ in range(2):  # not cached as a success
            with pytest.raises(DomainError):
                spec_of(row)
        assert defect_of(row, ctx.now()) is not None
        tx.session.rollback()
