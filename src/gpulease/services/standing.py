"""A tenant's standing, as admission checks read it: approved (and not expired), or not.

The standing is a :class:`~gpulease.domain.states.TenantStanding` (none, approved,
suspended, rejected) moved only along ``STANDING_TRANSITIONS`` by ``kyc.set_standing``.

Kept beside the tenant row by the KYC service (``kyc.set_standing``) so that admitting a
job, activating a lease or letting the scheduler start work is one read, not a case query.

:func:`why_not` is what the tenant is told (refused jobs and leases, held work): built from
the standing and its expiry by :func:`~gpulease.compliance.disclosure.tenant_standing`,
never from the stored ``approval_reason``, which is for officers (it may quote a re-screen's
new hits: list entries and scores).
"""

from __future__ import annotations

from datetime import datetime

from gpulease.compliance.disclosure import tenant_standing
from gpulease.domain.states import TenantStanding
from gpulease.persistence.tables import Tenant

# What a suspended tenant's running jobs do: "drain" (requeued, held) or "keep" (finish).
SUSPENDED_RUNNING_CHOICES = ("drain", "keep")


def is_approved(tenant: Tenant, now: datetime) -> bool:
    expires = tenant.approval_expires_at
    return tenant.approval == TenantStanding.APPROVED and (expires is None or expires > now)


def why_not(tenant: Tenant, now: datetime) -> str:
    """Why the tenant may not run work at ``now``, in words the tenant may read."""
    return tenant_standing(tenant.approval, tenant.approval_expires_at, now)
