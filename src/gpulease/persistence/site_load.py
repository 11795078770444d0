"""What a dispatch decision reads of each candidate site's load, as sums.

A submission that names no site is dispatched (``services.sites.choose``) on every
candidate site's running GPUs and the tenant's own guaranteed GPUs there. Summed in the
database (one ``GROUP BY``), not by loading every running job: the read costs the same
whether ten or ten thousand jobs run (``jobs.state`` and ``jobs.site_id`` are indexed).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from gpulease.domain.states import JobState
from gpulease.persistence.tables import Job


def running_gpus(
    session: Session, site_ids: Sequence[str], tenant_id: str
) -> dict[str, tuple[int, int]]:
    """Site id -> ``(GPUs held by running jobs, of which the tenant's own not borrowed)``;
    a site with nothing running is absent."""
    own = case(
        (and_(Job.tenant_id == tenant_id, Job.borrowed.is_(False)), Job.gpus),
        else_=0,
    )
    query = (
        select(Job.site_id, func.sum(Job.gpus), func.sum(own))
        .where(Job.site_id.in_(list(site_ids)), Job.state == JobState.RUNNING.value)
        .group_by(Job.site_id)
    )
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in session.execute(query)}
