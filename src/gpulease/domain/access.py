"""Who may do what to which record: roles, the principal behind a request, and one table.

Design. Authentication (a bearer token) yields a :class:`Principal`: a user, its role and the
tenant it belongs to (operator staff belong to none). Authorization is data:
:data:`PERMISSIONS` says, for every :class:`Action` and every :class:`Role`, the
:class:`Scope` of records the role may act on:

* ``ALL``: any record (operator staff);
* ``TENANT``: records of the principal's own tenant;
* ``SELF``: records that are the principal's own (its user, its tokens, the jobs it submitted);
* absent: not at all.

Every use case in ``services/`` calls :meth:`Principal.authorize` (one record) or
:meth:`Principal.scope` (a listing, which it then filters) with the action it performs;
nothing else decides access. ``tests/domain/test_access.py`` checks the table's shape, and
``tests/api/test_authorization_walk.py`` walks every API operation for every role against
another tenant's and the operator's records.

Invariants:

* A record the principal may not even see (another tenant's, or the operator's for a tenant
  user) is reported as *not found*, never *denied*, so ids cannot be probed; a record it sees
  but may not act on is *denied*, with the roles that may.
* Operator staff (records of no tenant) are reachable by tenant roles under no action: a
  ``TENANT`` scope never covers a record whose tenant is ``None``. Only operator-admins manage
  operator staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from gpulease.domain.errors import Denied, InvalidRequest, NotFound


class Role(StrEnum):
    OPERATOR_ADMIN = "operator-admin"
    COMPLIANCE_OFFICER = "compliance-officer"
    TENANT_ADMIN = "tenant-admin"
    TENANT_MEMBER = "tenant-member"

    @property
    def is_operator(self) -> bool:
        return self in OPERATOR_ROLES

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InvalidRequest(
                f"unknown role {text!r}; use one of {names}", field="role"
            ) from None


OPERATOR_ROLES: frozenset[Role] = frozenset({Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER})


class Scope(Enum):
    SELF = 1
    TENANT = 2
    ALL = 3


class Action(StrEnum):
    """Everything a user can ask of gpulease, as ``<record kind>.<verb>``."""

    TENANT_CREATE = "tenant.create"
    TENANT_READ = "tenant.read"
    USER_CREATE = "user.create"
    USER_READ = "user.read"
    USER_DISABLE = "user.disable"  # and enable again
    TOKEN_ISSUE = "token.issue"
    TOKEN_READ = "token.read"
    TOKEN_REVOKE = "token.revoke"
    SITE_REGISTER = "site.register"
    NODE_READ = "node.read"
    NODE_CHANGE = "node.change"  # drain, down, up
    NODE_MAINTAIN = "node.maintain"  # plan a maintenance window
    LEASE_REQUEST = "lease.request"
    LEASE_READ = "lease.read"
    LEASE_CANCEL = "lease.cancel"
    LEASE_DECIDE = "lease.decide"  # approve, reject, suspend, resume
    JOB_SUBMIT = "job.submit"
    JOB_READ = "job.read"
    JOB_LOGS = "job.logs"
    JOB_CANCEL = "job.cancel"
    KYC_SUBMIT = "kyc.submit"
    KYC_READ = "kyc.read"
    KYC_DECIDE = "kyc.decide"
    KYC_RESCREEN = "kyc.rescreen"
    PURPOSE_REVIEW_READ = "purpose_review.read"
    PURPOSE_REVIEW_DECIDE = "purpose_review.decide"  # approve or reject a held purpose
    COMPUTE_REVIEW_READ = "compute_review.read"
    COMPUTE_REVIEW_DECIDE = "compute_review.decide"  # clear or report compute over a threshold
    # screening internals: scores, thresholds, matched list entries, officers' reasons
    SCREENING_READ = "screening.read"
    SCREENING_SEARCH = "screening.search"  # screen names outside any case (ad hoc)
    LIST_IMPORT = "list.import"
    LIST_READ = "list.read"
    POLICY_READ = "policy.read"
    REPORT_READ = "report.read"
    AUDIT_READ = "audit.read"
    # chain of custody and location attestation of racks, trays and GPUs
    CUSTODY_READ = "custody.read"
    CUSTODY_RECORD = "custody.record"  # record events, register node keys, clear alerts
    # a ledger record's inclusion proof (signed heads and consistency proofs are public)
    LEDGER_PROVE = "ledger.prove"
    LEDGER_SIGN = "ledger.sign"  # sign a tree head now
    # metering and billing: usage records, invoices and credit notes, price plans
    USAGE_READ = "usage.read"
    INVOICE_READ = "invoice.read"
    INVOICE_ISSUE = "invoice.issue"  # issue an invoice, or a credit note against one
    PLAN_READ = "plan.read"
    PLAN_MANAGE = "plan.manage"  # add a plan version, assign a plan to a tenant

    @property
    def kind(self) -> str:
        return self.value.split(".", 1)[0]

    @property
    def words(self) -> str:
        """The action in words, for messages: ``job.cancel`` -> ``cancel a job``."""
        return _WORDS.get(self, self.value.replace(".", " "))


_WORDS: dict[Action, str] = {
    Action.TENANT_CREATE: "register a tenant",
    Action.TENANT_READ: "read a tenant",
    Action.USER_CREATE: "create a user",
    Action.USER_READ: "read a user",
    Action.USER_DISABLE: "disable or enable a user",
    Action.TOKEN_ISSUE: "issue an API token",
    Action.TOKEN_READ: "list API tokens",
    Action.TOKEN_REVOKE: "revoke an API token",
    Action.SITE_REGISTER: "register a site",
    Action.NODE_READ: "read nodes",
    Action.NODE_CHANGE: "change a node's state",
    Action.NODE_MAINTAIN: "plan maintenance",
    Action.LEASE_REQUEST: "request a lease",
    Action.LEASE_READ: "read a lease",
    Action.LEASE_CANCEL: "cancel a lease",
    Action.LEASE_DECIDE: "approve, reject, suspend or resume a lease",
    Action.JOB_SUBMIT: "submit a job",
    Action.JOB_READ: "read a job",
    Action.JOB_LOGS: "read a job's logs",
    Action.JOB_CANCEL: "cancel a job",
    Action.KYC_SUBMIT: "submit a KYC case",
    Action.KYC_READ: "read a KYC case",
    Action.KYC_DECIDE: "decide a KYC case",
    Action.KYC_RESCREEN: "re-screen tenants",
    Action.PURPOSE_REVIEW_READ: "read the purpose review queue",
    Action.PURPOSE_REVIEW_DECIDE: "decide a purpose review",
    Action.COMPUTE_REVIEW_READ: "read the compute review queue",
    Action.COMPUTE_REVIEW_DECIDE: "decide a compute review",
    Action.SCREENING_READ: "read screening scores, thresholds and matches",
    Action.SCREENING_SEARCH: "screen names against the lists",
    Action.LIST_IMPORT: "import a screening list",
    Action.LIST_READ: "read screening lists",
    Action.POLICY_READ: "read the compliance policy",
    Action.REPORT_READ: "read regulator reports",
    Action.AUDIT_READ: "read the audit trail",
    Action.CUSTODY_READ: "read the chain of custody and location attestations",
    Action.CUSTODY_RECORD: "record custody events, node keys and attestation decisions",
    Action.LEDGER_PROVE: "read a ledger record and its proof",
    Action.LEDGER_SIGN: "sign a ledger tree head",
    Action.USAGE_READ: "read metered usage",
    Action.INVOICE_READ: "read invoices and credit notes",
    Action.INVOICE_ISSUE: "issue invoices and credit notes",
    Action.PLAN_READ: "read price plans",
    Action.PLAN_MANAGE: "manage price plans",
}

_OA, _CO, _TA, _TM = (
    Role.OPERATOR_ADMIN,
    Role.COMPLIANCE_OFFICER,
    Role.TENANT_ADMIN,
    Role.TENANT_MEMBER,
)
_ALL, _TENANT, _SELF = Scope.ALL, Scope.TENANT, Scope.SELF
_STAFF = {_OA: _ALL, _CO: _ALL}
_EVERYONE_OWN_TENANT = {_OA: _ALL, _CO: _ALL, _TA: _TENANT, _TM: _TENANT}

# The one table. A role absent from an action's row may not perform it at all.
PERMISSIONS: dict[Action, dict[Role, Scope]] = {
    Action.TENANT_CREATE: {_OA: _ALL},
    Action.TENANT_READ: _EVERYONE_OWN_TENANT,
    Action.USER_CREATE: {_OA: _ALL, _TA: _TENANT},
    Action.USER_READ: {_OA: _ALL, _CO: _ALL, _TA: _TENANT, _TM: _SELF},
    Action.USER_DISABLE: {_OA: _ALL, _TA: _TENANT},
    Action.TOKEN_ISSUE: {_OA: _ALL, _CO: _SELF, _TA: _TENANT, _TM: _SELF},
    Action.TOKEN_READ: {_OA: _ALL, _CO: _SELF, _TA: _TENANT, _TM: _SELF},
    Action.TOKEN_REVOKE: {_OA: _ALL, _CO: _SELF, _TA: _TENANT, _TM: _SELF},
    Action.SITE_REGISTER: {_OA: _ALL},
    Action.NODE_READ: {_OA: _ALL, _CO: _ALL, _TA: _ALL, _TM: _ALL},
    Action.NODE_CHANGE: {_OA: _ALL},
    Action.NODE_MAINTAIN: {_OA: _ALL},
    Action.LEASE_REQUEST: {_OA: _ALL, _TA: _TENANT},
    Action.LEASE_READ: _EVERYONE_OWN_TENANT,
    Action.LEASE_CANCEL: {_OA: _ALL, _TA: _TENANT},
    Action.LEASE_DECIDE: {_OA: _ALL},
    Action.JOB_SUBMIT: {_OA: _ALL, _TA: _TENANT, _TM: _TENANT},
    Action.JOB_READ: _EVERYONE_OWN_TENANT,
    Action.JOB_LOGS: _EVERYONE_OWN_TENANT,
    Action.JOB_CANCEL: {_OA: _ALL, _TA: _TENANT, _TM: _SELF},
    Action.KYC_SUBMIT: {_OA: _ALL, _CO: _ALL, _TA: _TENANT},
    Action.KYC_READ: _EVERYONE_OWN_TENANT,
    Action.KYC_DECIDE: {_CO: _ALL},
    Action.KYC_RESCREEN: _STAFF,
    Action.PURPOSE_REVIEW_READ: {_CO: _ALL},
    Action.PURPOSE_REVIEW_DECIDE: {_CO: _ALL},
    Action.COMPUTE_REVIEW_READ: _STAFF,
    Action.COMPUTE_REVIEW_DECIDE: {_CO: _ALL},
    Action.SCREENING_READ: _STAFF,
    Action.SCREENING_SEARCH: {_CO: _ALL},
    Action.LIST_IMPORT: _STAFF,
    Action.LIST_READ: _STAFF,
    Action.POLICY_READ: {_OA: _ALL, _CO: _ALL, _TA: _ALL, _TM: _ALL},
    Action.REPORT_READ: _STAFF,
    Action.AUDIT_READ: _STAFF,
    Action.CUSTODY_READ: _STAFF,
    Action.CUSTODY_RECORD: {_OA: _ALL},
    Action.LEDGER_PROVE: _EVERYONE_OWN_TENANT,  # a tenant: records about itself
    Action.LEDGER_SIGN: {_OA: _ALL},
    Action.USAGE_READ: _EVERYONE_OWN_TENANT,
    Action.INVOICE_READ: {_OA: _ALL, _CO: _ALL, _TA: _TENANT},
    Action.INVOICE_ISSUE: {_OA: _ALL},
    Action.PLAN_READ: {_OA: _ALL, _CO: _ALL, _TA: _ALL, _TM: _ALL},
    Action.PLAN_MANAGE: {_OA: _ALL},
}


def roles_for(action: Action) -> list[Role]:
    return [role for role in Role if role in PERMISSIONS[action]]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    tenant_id: str | None  # None for operator staff

    def __post_init__(self) -> None:
        if self.role.is_operator != (self.tenant_id is None):
            raise InvalidRequest(
                f"user {self.user_id}: operator roles have no tenant, tenant roles need one",
                field="tenant",
            )

    @property
    def is_operator(self) -> bool:
        return self.role.is_operator

    @property
    def label(self) -> str:
        """How this principal is named to tenants in texts they read (``cancelled by ...``):
        a tenant user by its id, operator staff as "the operator" (their ids stay inside)."""
        return "the operator" if self.is_operator else self.user_id

    def sees(self, tenant_id: str | None) -> bool:
        """Whether records of ``tenant_id`` (None: the operator's own) are visible at all."""
        return self.is_operator or (tenant_id is not None and self.tenant_id == tenant_id)

    def check_visible(self, tenant_id: str | None, kind: str, record_id: str) -> None:
        """Raise NotFound for a record of another tenant: isolation never reveals existence."""
        if not self.sees(tenant_id):
            raise NotFound(
                f"no {kind} {record_id!r}", **{f"{kind.replace(' ', '_')}_id": record_id}
            )

    def can(self, action: Action) -> bool:
        """Whether the role may perform ``action`` on some record (no record checked)."""
        return self.role in PERMISSIONS[action]

    def scope(self, action: Action) -> Scope:
        """The scope this principal has for ``action``; Denied when it has none."""
        found = PERMISSIONS[action].get(self.role)
        if found is None:
            allowed = ", ".join(r.value for r in roles_for(action))
            raise Denied(
                f"only {allowed} may {action.words}; you are {self.role.value}",
                action=action.value,
            )
        return found

    def authorize(
        self,
        action: Action,
        *,
        tenant_id: str | None,
        owner_id: str | None = None,
        record_id: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Allow ``action`` on one record, or raise.

        ``tenant_id``: the record's tenant (None: an operator record such as staff);
        ``owner_id``: the user the record belongs to (a user itself, a token's user, a job's
        submitter), for ``SELF`` scopes; ``record_id`` (with ``kind``, default the action's
        kind): an existing record, so that one out of sight is *not found*. Without a
        ``record_id`` (a create) every refusal is *denied*.
        """
        if record_id is not None and not self.sees(tenant_id):
            self.check_visible(tenant_id, kind or action.kind, record_id)
        scope = self.scope(action)
        if scope is Scope.ALL:
            return
        if scope is Scope.TENANT and tenant_id is not None and tenant_id == self.tenant_id:
            return
        if scope is Scope.SELF and owner_id is not None and owner_id == self.user_id:
            return
        whose = "your own tenant's" if scope is Scope.TENANT else "your own"
        raise Denied(f"as {self.role.value} you may {action.words} only for {whose} records")

    def acting_tenant(self, requested: str | None) -> str:
        """The tenant a create acts for: a tenant user's own; an operator must name one."""
        if self.tenant_id is not None:
            if requested is not None and requested != self.tenant_id:
                raise NotFound(f"no tenant {requested!r}", tenant_id=requested)
            return self.tenant_id
        if requested is None:
            raise InvalidRequest("operators must say which tenant this is for", field="tenant_id")
        return requested
