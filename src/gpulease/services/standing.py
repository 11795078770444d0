"""A tenant's standing, as admission checks read it: approved (and not expired), or not.

Kept beside the tenant row by the KYC service (``kyc._set_standing``) so that admitting a
job, activating a lease or letting the scheduler start work is one read, not a case query.
"""

from __future__ import annotations

from datetime import datetime

from gpulease.persistence.tables import Tenant

# What a suspended tenant's running jobs do: "drain" (requeued, held) or "keep" (finish).
SUSPENDED_RUNNING_CHOICES = ("drain", "keep")


def is_approved(tenant: Tenant, now: datetime) -> bool:
    expires = tenant.approval_expires_at
    return tenant.approval == "approved" and (expires is None or expires > now)


def why_not(tenant: Tenant) -> str:
    return tenant.approval_reason or "no KYC case has been approved"
