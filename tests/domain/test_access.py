"""The permission table's shape, and what ``Principal.authorize`` makes of it."""

from __future__ import annotations

import pytest

from gpulease.domain.access import PERMISSIONS, Action, Principal, Role, Scope
from gpulease.domain.errors import Denied, NotFound

OPERATOR = Principal("user-op", Role.OPERATOR_ADMIN, None)
OFFICER = Principal("user-co", Role.COMPLIANCE_OFFICER, None)
ADMIN_A = Principal("user-a", Role.TENANT_ADMIN, "tenant-a")
MEMBER_A = Principal("user-m", Role.TENANT_MEMBER, "tenant-a")
TENANT_ROLES = (Role.TENANT_ADMIN, Role.TENANT_MEMBER)
STAFF_ONLY = {
    Action.TENANT_CREATE,
    Action.SITE_REGISTER,
    Action.NODE_CHANGE,
    Action.NODE_MAINTAIN,
    Action.LEASE_DECIDE,
    Action.KYC_DECIDE,
    Action.KYC_RESCREEN,
    Action.PURPOSE_REVIEW_READ,
    Action.PURPOSE_REVIEW_DECIDE,
    Action.SCREENING_READ,
    Action.SCREENING_SEARCH,
    Action.LIST_IMPORT,
    Action.LIST_READ,
    Action.REPORT_READ,
    Action.AUDIT_READ,
    Action.CUSTODY_READ,
    Action.CUSTODY_RECORD,
    Action.INVOICE_ISSUE,
    Action.PLAN_MANAGE,
}
# the site, the rules and the published prices, not records
SHARED_READS = {Action.NODE_READ, Action.POLICY_READ, Action.PLAN_READ}


def test_every_action_has_a_row() -> None:
    assert set(PERMISSIONS) == set(Action)
    assert all(PERMISSIONS[action] for action in Action)


@pytest.mark.parametrize("action", list(Action))
def test_tenant_roles_never_reach_beyond_their_tenant(action: Action) -> None:
    for role in TENANT_ROLES:
        scope = PERMISSIONS[action].get(role)
        if action in STAFF_ONLY:
            assert scope is None, (action, role)
        elif action not in SHARED_READS:
            assert scope in (None, Scope.TENANT, Scope.SELF), (action, role)


def test_members_never_exceed_their_admin() -> None:
    for action, row in PERMISSIONS.items():
        member, admin = row.get(Role.TENANT_MEMBER), row.get(Role.TENANT_ADMIN)
        if member is not None:
            assert admin is not None, action
            assert admin.value >= member.value, action


def test_only_officers_decide_kyc_cases() -> None:
    assert PERMISSIONS[Action.KYC_DECIDE] == {Role.COMPLIANCE_OFFICER: Scope.ALL}


@pytest.mark.parametrize(
    ("principal", "action", "tenant", "owner", "record", "expected"),
    [
        # operator staff: everything in their row
        (OPERATOR, Action.JOB_CANCEL, "tenant-b", None, "job-1", None),
        (OFFICER, Action.LEASE_DECIDE, "tenant-b", None, "lease-1", Denied),
        (OFFICER, Action.TOKEN_ISSUE, None, "user-op", "user-op", Denied),  # staff see it
        (OFFICER, Action.TOKEN_ISSUE, None, "user-co", "user-co", None),
        # a tenant-admin: its tenant, never another's nor the operator's (not even seen)
        (ADMIN_A, Action.JOB_CANCEL, "tenant-a", "user-m", "job-1", None),
        (ADMIN_A, Action.JOB_CANCEL, "tenant-b", "user-b", "job-1", NotFound),
        (ADMIN_A, Action.TOKEN_ISSUE, None, "user-op", "user-op", NotFound),
        (ADMIN_A, Action.USER_CREATE, None, None, None, Denied),  # staff: a create, denied
        (ADMIN_A, Action.USER_CREATE, "tenant-a", None, None, None),
        (ADMIN_A, Action.AUDIT_READ, None, None, None, Denied),
        # a member: its own records within the tenant
        (MEMBER_A, Action.JOB_CANCEL, "tenant-a", "user-m", "job-1", None),
        (MEMBER_A, Action.JOB_CANCEL, "tenant-a", "user-a", "job-2", Denied),
        (MEMBER_A, Action.JOB_CANCEL, "tenant-b", "user-b", "job-3", NotFound),
        (MEMBER_A, Action.LEASE_REQUEST, "tenant-a", None, None, Denied),
        (MEMBER_A, Action.TOKEN_ISSUE, "tenant-a", "user-a", "user-a", Denied),
        (MEMBER_A, Action.TOKEN_ISSUE, "tenant-a", "user-m", "user-m", None),
    ],
)
def test_authorize(
    principal: Principal,
    action: Action,
    tenant: str | None,
    owner: str | None,
    record: str | None,
    expected: type[Exception] | None,
) -> None:
    def call() -> None:
        principal.authorize(action, tenant_id=tenant, owner_id=owner, record_id=record)

    if expected is None:
        call()
    else:
        with pytest.raises(expected):
            call()


def test_refusals_name_the_roles_that_may() -> None:
    with pytest.raises(Denied, match="only operator-admin may register a tenant"):
        MEMBER_A.scope(Action.TENANT_CREATE)
