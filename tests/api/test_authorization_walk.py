"""Every API operation, for every role, against another tenant's and the operator's records.

The walk is driven by the OpenAPI document: every operation the app serves must be listed in
:data:`OPERATIONS` with the action it performs (``test_every_operation_is_walked`` fails for a
new route nobody classified), and the expected answer follows from
:data:`gpulease.domain.access.PERMISSIONS` alone:

* a tenant role never succeeds on another tenant's or the operator's records, and its answer
  is the same as for a record that does not exist (so ids cannot be probed);
* a tenant role's walk changes nothing (no audit record is written);
* an operator role is refused (403) exactly where the table gives it no scope, and otherwise
  gets past authorization (it may still meet a 409 or 422 from the record's state);
* listings a tenant reads never mention the other tenant or operator staff.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gpulease.domain.access import PERMISSIONS, Action, Role
from gpulease.persistence.tables import ApiToken, AuditRecord, Gpu, KycCase, Lease, Node, Tenant
from gpulease.services import identity, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Api = Callable[[str | None], TestClient]


@dataclass(frozen=True)
class Op:
    action: Action | None  # None: any authenticated user (or nobody, for /health)
    target: str = ""  # which record the path or body names: see Records.fill
    body: Callable[[Records], dict[str, Any]] | None = None
    listing: bool = False
    exists: bool = True  # False: the walk names no real record (staff get 404, not 403)


@dataclass
class Records:
    """Ids of the other tenant's (B) and the operator's records."""

    tenant_b: str
    b_admin: str
    b_token: str
    b_lease: str
    b_job: str
    b_case: str
    operator: str
    officer: str
    operator_token: str
    node: str
    serial: str
    start: str
    end: str
    now: str
    b_audit: str  # an audit record about B (its job's submission)

    def path(self, template: str, target: str, *, missing: bool = False) -> str:
        values = self.values(target)
        if missing:  # ids like job-3f9a1c2b7d4e, or numbers (an audit record's id)
            values = {
                k: "9" * 12 if v.isdigit() else v.split("-")[0] + "-000000000000"
                for k, v in values.items()
            }
        return template.format(**values)

    def values(self, target: str) -> dict[str, str]:
        """The record each path parameter names when the walk aims at ``target``."""
        return {
            "lease_id": self.b_lease,
            "job_id": self.b_job,
            "case_id": self.b_case,
            "tenant_id": self.tenant_b,
            "node_id": self.node,
            "serial": self.serial,
            "old_id": "list-000000000000",
            "review_id": "review-000000000000",
            "new_id": "list-000000000001",
            "user_id": {"b": self.b_admin, "operator": self.operator, "officer": self.officer}.get(
                target, self.b_admin
            ),
            "token_id": self.operator_token if target == "operator" else self.b_token,
            "alert_id": "alert-000000000000",
            "audit_id": self.b_audit,
            "tree_size": "1",
            "invoice_id": "inv-000000000000",
        }


def _lease_body(r: Records) -> dict[str, Any]:
    return {"start": r.start, "end": r.end, "gpus": 8, "tenant_id": r.tenant_b}


def _job_body(r: Records) -> dict[str, Any]:
    return {
        "gpus": 4,
        "purpose": "financial AI: credit risk models",
        "command": "true",
        "tenant_id": r.tenant_b,
    }


def _reason(_r: Records) -> dict[str, Any]:
    return {"reason": "walk"}


def _case_body(r: Records) -> dict[str, Any]:
    return {
        "tenant_id": r.tenant_b,
        "organization": {"name": "Bank Nusantara Digital", "countries": ["ID"]},
        "end_uses": ["finance"],
    }


OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/health"): Op(None),
    ("GET", "/me"): Op(None),
    ("POST", "/leases"): Op(Action.LEASE_REQUEST, "b", _lease_body),
    ("GET", "/leases"): Op(Action.LEASE_READ, listing=True),
    ("GET", "/leases/{lease_id}"): Op(Action.LEASE_READ, "b"),
    ("POST", "/leases/{lease_id}/approve"): Op(Action.LEASE_DECIDE, "b", _reason),
    ("POST", "/leases/{lease_id}/reject"): Op(Action.LEASE_DECIDE, "b", _reason),
    ("POST", "/leases/{lease_id}/cancel"): Op(Action.LEASE_CANCEL, "b", _reason),
    ("POST", "/leases/{lease_id}/suspend"): Op(Action.LEASE_DECIDE, "b", _reason),
    ("POST", "/leases/{lease_id}/resume"): Op(Action.LEASE_DECIDE, "b", _reason),
    ("POST", "/jobs"): Op(Action.JOB_SUBMIT, "b", _job_body),
    ("GET", "/jobs"): Op(Action.JOB_READ, listing=True),
    ("GET", "/jobs/{job_id}"): Op(Action.JOB_READ, "b"),
    ("POST", "/jobs/{job_id}/cancel"): Op(Action.JOB_CANCEL, "b", _reason),
    ("GET", "/jobs/{job_id}/logs"): Op(Action.JOB_LOGS, "b"),
    ("GET", "/nodes"): Op(Action.NODE_READ, listing=True),
    ("POST", "/nodes/{node_id}/state"): Op(
        Action.NODE_CHANGE, "operator", lambda r: {"state": "draining", "reason": "walk"}
    ),
    ("POST", "/nodes/{node_id}/maintenance"): Op(
        Action.NODE_MAINTAIN,
        "operator",
        lambda r: {"start": r.start, "end": r.end, "reason": "walk"},
    ),
    ("GET", "/tenants"): Op(Action.TENANT_READ, listing=True),
    ("GET", "/tenants/{tenant_id}"): Op(Action.TENANT_READ, "b"),
    ("POST", "/tenants"): Op(
        Action.TENANT_CREATE, "operator", lambda r: {"name": "X", "country": "SG", "kind": "x"}
    ),
    ("GET", "/users"): Op(Action.USER_READ, listing=True),
    ("POST", "/users"): Op(
        Action.USER_CREATE,
        "b",
        lambda r: {
            "name": "x",
            "email": "walk@b.example",
            "role": "tenant-admin",
            "tenant_id": r.tenant_b,
        },
    ),
    ("GET", "/users/{user_id}"): Op(Action.USER_READ, "b"),
    ("POST", "/users/{user_id}/disable"): Op(Action.USER_DISABLE, "b", _reason),
    ("POST", "/users/{user_id}/enable"): Op(Action.USER_DISABLE, "b", _reason),
    ("POST", "/users/{user_id}/tokens"): Op(Action.TOKEN_ISSUE, "b", lambda r: {}),
    ("GET", "/users/{user_id}/tokens"): Op(Action.TOKEN_READ, "b"),
    ("POST", "/tokens/{token_id}/revoke"): Op(Action.TOKEN_REVOKE, "b", _reason),
    ("GET", "/audit"): Op(Action.AUDIT_READ, listing=True),
    ("POST", "/kyc/cases"): Op(Action.KYC_SUBMIT, "b", _case_body),
    ("GET", "/kyc/cases"): Op(Action.KYC_READ, listing=True),
    ("GET", "/kyc/cases/{case_id}"): Op(Action.KYC_READ, "b"),
    ("POST", "/kyc/cases/{case_id}/approve"): Op(Action.KYC_DECIDE, "b", _reason),
    ("POST", "/kyc/cases/{case_id}/reject"): Op(Action.KYC_DECIDE, "b", _reason),
    ("POST", "/kyc/rescreen"): Op(Action.KYC_RESCREEN, "operator", _reason),
    ("GET", "/lists"): Op(Action.LIST_READ, listing=True),
    ("POST", "/lists"): Op(Action.LIST_IMPORT, "operator"),
    ("GET", "/lists/{old_id}/diff/{new_id}"): Op(Action.LIST_READ, "operator", exists=False),
    ("GET", "/compliance/purpose-reviews"): Op(Action.PURPOSE_REVIEW_READ, listing=True),
    ("GET", "/compliance/purpose-reviews/{review_id}"): Op(
        Action.PURPOSE_REVIEW_READ, "operator", exists=False
    ),
    ("POST", "/compliance/purpose-reviews/{review_id}/approve"): Op(
        Action.PURPOSE_REVIEW_DECIDE, "operator", _reason, exists=False
    ),
    ("POST", "/compliance/purpose-reviews/{review_id}/reject"): Op(
        Action.PURPOSE_REVIEW_DECIDE, "operator", _reason, exists=False
    ),
    ("GET", "/compliance/compute-reviews"): Op(Action.COMPUTE_REVIEW_READ, listing=True),
    ("POST", "/compliance/compute-reviews/scan"): Op(Action.COMPUTE_REVIEW_DECIDE, "operator"),
    ("GET", "/compliance/compute-reviews/{review_id}"): Op(
        Action.COMPUTE_REVIEW_READ, "operator", exists=False
    ),
    ("POST", "/compliance/compute-reviews/{review_id}/decision"): Op(
        Action.COMPUTE_REVIEW_DECIDE,
        "operator",
        lambda r: {"outcome": "cleared", "reason": "walk"},
        exists=False,
    ),
    ("GET", "/policy"): Op(Action.POLICY_READ, listing=True),
    ("POST", "/screening"): Op(
        Action.SCREENING_SEARCH, "operator", lambda r: {"queries": [{"name": "walk"}]}
    ),
    ("GET", "/end-uses"): Op(None),
    ("GET", "/reports/tenants/{tenant_id}/disclosure"): Op(Action.REPORT_READ, "b"),
    ("GET", "/reports/gpus/{serial}"): Op(Action.REPORT_READ, "operator"),
    ("GET", "/reports/large-runs"): Op(Action.REPORT_READ, "operator"),
    ("GET", "/reports/sites"): Op(Action.REPORT_READ, "operator"),
    ("GET", "/custody/{serial}"): Op(Action.CUSTODY_READ, "operator"),
    ("GET", "/custody/alerts"): Op(Action.CUSTODY_READ, listing=True),
    ("POST", "/custody/alerts/{alert_id}/clear"): Op(
        Action.CUSTODY_RECORD, "operator", _reason, exists=False
    ),
    ("POST", "/custody/events"): Op(
        Action.CUSTODY_RECORD,
        "operator",
        lambda r: {
            "unit_kind": "gpu",
            "unit": r.serial,
            "event": "repaired",
            "at": r.now,
            "holder": "Indosat Ooredoo Hutchison",
        },
    ),
    ("POST", "/custody/nodes/{node_id}/key"): Op(
        Action.CUSTODY_RECORD, "operator", lambda r: {"public_key": "ab" * 32}
    ),
    ("POST", "/custody/attestations"): Op(None),  # no bearer: the node's signature
    ("GET", "/ledger/heads"): Op(None),
    ("POST", "/ledger/heads"): Op(Action.LEDGER_SIGN, "operator"),
    ("GET", "/ledger/heads/latest"): Op(None),
    ("GET", "/ledger/heads/{tree_size}"): Op(None),
    ("GET", "/ledger/keys"): Op(None),
    ("GET", "/ledger/consistency"): Op(None),
    ("GET", "/ledger/records/{audit_id}/proof"): Op(Action.LEDGER_PROVE, "b"),
    ("GET", "/usage"): Op(Action.USAGE_READ, listing=True),
    ("GET", "/usage/summary"): Op(Action.USAGE_READ, listing=True),
    ("GET", "/invoices"): Op(Action.INVOICE_READ, listing=True),
    ("GET", "/invoices/draft"): Op(Action.INVOICE_READ, listing=True),  # its own tenant's
    ("GET", "/invoices/{invoice_id}"): Op(Action.INVOICE_READ, "b", exists=False),
    ("POST", "/invoices"): Op(
        Action.INVOICE_ISSUE,
        "b",
        lambda r: {"tenant_id": r.tenant_b, "start": r.start, "end": r.end},
    ),
    ("POST", "/invoices/{invoice_id}/credit-notes"): Op(
        Action.INVOICE_ISSUE, "b", lambda r: {"reason": "walk", "reverse_lines": [1]}, exists=False
    ),
    ("GET", "/price-plans"): Op(Action.PLAN_READ, listing=True),
    ("POST", "/price-plans"): Op(
        Action.PLAN_MANAGE,
        "operator",
        lambda r: {
            "plan_id": "walk",
            "effective_from": r.start,
            "currency": "USD",
            "reserved_rate": "3",
            "on_demand_rate": "4",
            "borrowed_discount": "0.5",
            "lending_share": "0.5",
        },
    ),
    ("POST", "/price-plans/assignments"): Op(
        Action.PLAN_MANAGE, "b", lambda r: {"tenant_id": r.tenant_b, "plan_id": "standard"}
    ),
}
# Operations whose record-naming path parameter is the user: walk them against B's admin and
# against each kind of operator staff.
USER_TARGETS = ("b", "operator", "officer")


def _operations(client: TestClient) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, ops in spec["paths"].items()
        for method in ops
    }


def _setup(ctx: ServiceContext, demo: list[DemoUser]) -> tuple[dict[Role, str], Records]:
    by_email = {u.email: u for u in demo}
    operator = identity.authenticate(ctx, by_email["ops@indosat.example"].token)
    officer = identity.authenticate(ctx, by_email["compliance@indosat.example"].token)
    a_admin = identity.authenticate(ctx, by_email["admin@university.example"].token)
    b_admin = identity.authenticate(ctx, by_email["admin@bank.example"].token)
    assert a_admin.tenant_id is not None
    assert b_admin.tenant_id is not None
    _member, member_token = identity.create_user(
        ctx,
        a_admin,
        name="A member",
        email="member@university.example",
        role=Role.TENANT_MEMBER,
        tenant_id=a_admin.tenant_id,
    )
    job = jobs.submit(
        ctx,
        b_admin,
        jobs.JobSubmission(gpus=4, purpose="financial AI: credit risk models", command="true"),
    )
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        lease = tx.all(select(Lease).where(Lease.tenant_id == b_admin.tenant_id))[0]
        case = tx.all(select(KycCase).where(KycCase.tenant_id == b_admin.tenant_id))[0]
        node = tx.all(select(Node).order_by(Node.id).limit(1))[0]
        gpu = tx.all(select(Gpu).where(Gpu.node_id == node.id).limit(1))[0]
        b_token = tx.all(select(ApiToken).where(ApiToken.user_id == b_admin.user_id))[0]
        op_token = tx.all(select(ApiToken).where(ApiToken.user_id == operator.user_id))[0]
        b_audit = tx.all(select(AuditRecord).where(AuditRecord.subject_id == job.id))[0]
    records = Records(
        tenant_b=b_admin.tenant_id,
        b_admin=b_admin.user_id,
        b_token=b_token.id,
        b_lease=lease.id,
        b_job=job.id,
        b_case=case.id,
        operator=operator.user_id,
        officer=officer.user_id,
        operator_token=op_token.id,
        node=node.id,
        serial=gpu.serial,
        start=(now + timedelta(days=1)).isoformat(),
        end=(now + timedelta(days=30)).isoformat(),
        now=now.isoformat(),
        b_audit=str(b_audit.id),
    )
    tokens = {
        Role.OPERATOR_ADMIN: by_email["ops@indosat.example"].token,
        Role.COMPLIANCE_OFFICER: by_email["compliance@indosat.example"].token,
        Role.TENANT_ADMIN: by_email["admin@university.example"].token,
        Role.TENANT_MEMBER: member_token,
    }
    return tokens, records


def _call(
    client: TestClient, method: str, path: str, op: Op, records: Records
) -> tuple[int, dict[str, Any]]:
    if path == "/lists" and method == "POST":
        answer = client.post(
            path,
            files=[("files", ("walk.csv", b"not a list", "text/csv"))],
            data={"format": "csl-csv"},
        )
    elif method == "POST":
        answer = client.post(path, json=op.body(records) if op.body else None)
    else:
        answer = client.get(path)
    try:
        body = answer.json()
    except ValueError:
        body = {"text": answer.text}
    return answer.status_code, body if isinstance(body, dict) else {"items": body}


def _targets(template: str, op: Op) -> tuple[str, ...]:
    return USER_TARGETS if "{user_id}" in template else (op.target,)


def _audit_count(ctx: ServiceContext) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


def test_every_operation_is_walked(api: Api) -> None:
    served = _operations(api(None))
    assert served == set(OPERATIONS), (
        f"classify new operations: {sorted(served - set(OPERATIONS))}; "
        f"gone: {sorted(set(OPERATIONS) - served)}"
    )


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.TENANT_MEMBER])
def test_tenant_roles_reach_nothing_of_others(
    role: Role, api: Api, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    tokens, records = _setup(ctx, demo)
    client = api(tokens[role])
    audit_before = _audit_count(ctx)
    foreign = {records.tenant_b, records.operator, records.officer, records.b_admin}
    foreign |= {records.b_job, records.b_lease, records.b_case, records.b_token}
    foreign.add(records.operator_token)
    for (method, template), op in sorted(OPERATIONS.items()):
        if op.action is None:
            continue
        for target in _targets(template, op):
            path = records.path(template, target)
            status, body = _call(client, method, path, op, records)
            where = f"{role.value} {method} {path} ({target})"
            if op.listing:
                allowed = role in PERMISSIONS[op.action]
                assert (status == 200) == allowed, (where, status, body)
                text = json.dumps(body)
                leaked = [record for record in foreign if record in text]
                assert not leaked, (where, leaked)
                continue
            assert status in (403, 404), (where, status, body)
            if "{" in template:  # a record named in the path: same answer as a missing one
                missing_status, missing = _call(
                    client, method, records.path(template, target, missing=True), op, records
                )
                assert (missing_status, missing.get("code")) == (status, body.get("code")), where
            if role in PERMISSIONS[op.action] and target in ("b", "officer") and "{" in template:
                assert status == 404, (where, status, body)  # allowed kind, invisible record
    assert _audit_count(ctx) == audit_before  # the walk changed nothing


@pytest.mark.parametrize("role", [Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER])
def test_operator_roles_follow_the_table(
    role: Role, api: Api, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    tokens, records = _setup(ctx, demo)
    client = api(tokens[role])
    me = identity.authenticate(ctx, tokens[role]).user_id
    for (method, template), op in sorted(OPERATIONS.items(), key=_destructive_last):
        if op.action is None:
            continue
        for target in _targets(template, op):
            path = records.path(template, target)
            status, body = _call(client, method, path, op, records)
            where = f"{role.value} {method} {path} ({target})"
            scope = PERMISSIONS[op.action].get(role)
            owner = {"operator": records.operator, "officer": records.officer}.get(target)
            if scope is None:
                assert status == 403, (where, status, body)
            elif scope.name == "SELF" and owner != me:
                assert status == 403, (where, status, body)  # staff see it, may not act on it
            else:
                refusals = (401, 403) if not op.exists else (401, 403, 404)
                assert status not in refusals, (where, status, body)


def _destructive_last(item: tuple[tuple[str, str], Op]) -> tuple[int, str, str]:
    (method, path), _op = item
    late = any(word in path for word in ("/disable", "/revoke", "/enable"))
    return (1 if late else 0, path, method)


def test_tenant_admin_cannot_mint_operator_tokens(
    api: Api, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    """The finding: POST /users/{operator}/tokens answered 201 with an operator-admin token."""
    tokens, records = _setup(ctx, demo)
    client = api(tokens[Role.TENANT_ADMIN])
    for staff in (records.operator, records.officer):
        answer = client.post(f"/users/{staff}/tokens")
        assert answer.status_code == 404, answer.text
    with ctx.db.transaction(write=False) as tx:
        staff_tokens = tx.all(
            select(ApiToken).where(ApiToken.user_id.in_([records.operator, records.officer]))
        )
        assert len(staff_tokens) == 2  # the demo's one each, nothing minted
        assert tx.get(Tenant, records.tenant_b) is not None
