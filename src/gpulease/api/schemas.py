"""Request and response bodies. Requests refuse unknown fields; times are aware UTC.

Request models (``Strict``) are built from the constrained types of
:mod:`gpulease.api.constraints`: strict integers, finite bounded numbers, text without
control characters and with a length bound, times within a fixed window, bounded free-form
JSON. A value outside them is a 422 ``invalid_request`` naming its field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpulease.api.constraints import (
    CountryCode,
    Day,
    FreeJson,
    GpuCount,
    Line,
    OptionalCountry,
    Percent,
    Ref,
    Seconds,
    ShortLine,
    StrictBool,
    StrictInt,
    Text,
    Timestamp,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    code: str
    message: str
    details: dict[str, object]


# The error answers every authenticated route may give, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 413, 422, 429)
}


# ------------------------------------------------------------------- leases
class LeaseCreate(Strict):
    site_id: Ref | None = Field(default=None, description="default: the only/first site")
    start: Timestamp
    end: Timestamp = Field(description="at most lease_horizon_days from now")
    gpus: GpuCount | None = None
    racks: StrictInt | None = Field(
        default=None, ge=1, le=100_000, description="whole NVLink domains"
    )
    tenant_id: Ref | None = Field(default=None, description="operators only: for which tenant")


class LeaseDecision(Strict):
    reason: Text = Field(default="", max_length=500)


class LeaseAmend(Strict):
    gpus: GpuCount | None = Field(default=None, description="the lease's new size")
    end: Timestamp | None = Field(default=None, description="the lease's new end")
    reason: Text = Field(max_length=500, description="why (audited)")


class LeaseOut(Out):
    id: str
    tenant_id: str
    tenant_name: str = Field(default="", description="the tenant's name, for people")
    site_id: str
    gpus: int
    racks: int | None
    start: datetime
    end: datetime
    state: str
    state_reason: str
    price: str
    rate_per_gpu_hour: str
    currency: str
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------- jobs
class JobCreate(Strict):
    name: Line = Field(default="", max_length=200)
    command: Text | None = Field(default=None, max_length=100_000)
    image: Line | None = Field(default=None, max_length=500)
    gpus: GpuCount
    gpus_per_node: StrictInt | None = Field(default=None, ge=1, le=64)
    topology: Literal["required", "preferred", "none"] = "preferred"
    segment: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    walltime_s: Seconds | None = Field(default=None, gt=0, description="at most 366 days")
    duration_s: Seconds | None = Field(
        default=None, description="simulated executor only: how long the run takes"
    )
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    purpose: Line = Field(min_length=1, max_length=200, description="declared end use")
    preemptible: StrictBool = True
    requeueable: StrictBool = True
    lease_id: Ref | None = None
    site_id: Ref | None = None
    sites: list[Ref] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="dispatch among these sites (no site_id, no sites: among every site)",
    )
    tenant_id: Ref | None = Field(default=None, description="operators only: for which tenant")


class JobCancel(Strict):
    reason: Text = Field(default="", max_length=500)


class AllocationOut(BaseModel):
    node_id: str
    slots: list[int]
    gpu_serials: list[str]


class JobOut(Out):
    id: str
    name: str
    tenant_id: str
    tenant_name: str = Field(default="", description="the tenant's name, for people")
    site_id: str
    dispatch: dict[str, object] | None = Field(
        default=None,
        description="how the site was chosen among several: the sites asked, the one chosen "
        "and why, and a reason for every site not chosen (null: the job named its site)",
    )
    lease_id: str | None
    command: str | None
    image: str | None
    gpus: int
    gpus_per_node: int | None
    topology: str
    segment: int | None
    walltime_s: float | None
    duration_s: float | None
    priority: str
    purpose: str
    preemptible: bool
    requeueable: bool
    state: str
    wait_reason: str
    end_reason: str
    exit_code: int | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    preempt_at: datetime | None
    starts: int
    preemptions: int
    borrowed: bool
    allocation: list[AllocationOut] = Field(default_factory=list)


class JobLogsOut(BaseModel):
    """One bounded chunk of a job's log; ask again from ``next_offset`` for more."""

    job_id: str
    state: str
    text: str = Field(description="the chunk (UTF-8; invalid bytes replaced)")
    offset: int = Field(description="byte offset of the chunk in the log")
    next_offset: int = Field(description="byte offset to ask for next")
    size: int = Field(description="bytes in the log now")
    complete: bool = Field(description="the job has ended and nothing more is to be read")


# -------------------------------------------------------------------- nodes
class NodeOut(BaseModel):
    id: str
    site_id: str
    rack_id: str
    rack_index: int
    index: int
    serial: str
    gpus: int
    used_gpus: int
    state: str
    state_reason: str
    tenants: list[str]


class NodeStateChange(Strict):
    state: Literal["up", "draining", "down"]
    reason: Text = Field(min_length=1, max_length=500)


# ------------------------------------------------------------------- misc
class MeOut(BaseModel):
    user_id: str
    role: str
    tenant_id: str | None
    user_name: str = Field(default="", description="the user's name, for people")
    tenant_name: str = Field(default="", description="the tenant's name ('' for staff)")


class SchedulerStatusOut(BaseModel):
    site_id: str
    leader: str = Field(description="the scheduler that made the last pass")
    last_tick_at: datetime
    ticks: int
    age_s: float = Field(description="seconds since the last pass")
    stale: bool = Field(
        description="no pass for longer than max(3 intervals, the leader lease TTL)"
    )


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: the database is unavailable, a scheduler is stale, or the "
        "leader lease has expired (nobody leads)"
    )
    version: str
    database: str
    executor: str
    this_process_leads: bool
    leader: str | None = Field(description="holder of the leader lease, if any ever led")
    leader_expires_at: datetime | None
    leader_expired: bool
    failed_passes: int = Field(
        description="scheduler passes that failed in the process that leads (as of its "
        "last heartbeat), or in this process if it runs the scheduler"
    )
    schedulers: list[SchedulerStatusOut]


# ------------------------------------------------------- tenants and users
class TenantCreate(Strict):
    name: Line = Field(min_length=1, max_length=200)
    country: CountryCode
    kind: Line = Field(min_length=1, max_length=40, description="e.g. ai-startup, bank")


class TenantOut(Out):
    id: str
    name: str
    country: str
    kind: str
    created_at: datetime


class TenantSummaryOut(TenantOut):
    approval: str = Field(description="none, approved, suspended or rejected")
    standing: str = Field(description="approved, or why the tenant may not run work")
    approval_expires_at: datetime | None
    kyc_case_id: str | None = Field(description="the tenant's latest KYC case")
    kyc_state: str | None
    users: int


class UserCreate(Strict):
    name: Line = Field(min_length=1, max_length=200)
    email: Line = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Literal["operator-admin", "compliance-officer", "tenant-admin", "tenant-member"]
    tenant_id: Ref | None = None


class UserOut(Out):
    id: str
    name: str
    email: str
    role: str
    tenant_id: str | None
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str = ""
    created_by: str = Field(
        default="", description='who created the account ("the operator" to tenant users)'
    )


class UserCreated(BaseModel):
    user: UserOut
    token: str = Field(description="shown once; only its hash is stored")


class TokenCreate(Strict):
    label: Line = Field(default="", max_length=100, description="what the token is for")
    ttl_days: StrictInt | None = Field(
        default=None, ge=1, le=3650, description="default: the operator's setting"
    )


class TokenInfoOut(Out):
    """A token's record: never its value (only the hash is stored)."""

    id: str
    user_id: str
    prefix: str
    label: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str


class TokenOut(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")
    id: str = ""
    expires_at: datetime | None = None


class ReasonIn(Strict):
    reason: Text = Field(min_length=1, max_length=500)


class MaintenanceCreate(Strict):
    start: Timestamp
    end: Timestamp
    reason: Text = Field(min_length=1, max_length=500)


class MaintenanceOut(Out):
    id: str
    node_id: str
    site_id: str
    start: datetime
    end: datetime
    reason: str


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    before: dict[str, object] | None
    after: dict[str, object] | None
    reason: str


# --------------------------------------------------------------------- compliance
class AddressIn(Strict):
    street: ShortLine = ""
    city: ShortLine = ""
    region: ShortLine = ""
    postal_code: ShortLine = ""
    country: OptionalCountry = ""


class PartyIn(Strict):
    name: Line = Field(min_length=1, max_length=500)
    kind: Literal["organization", "person"] = "organization"
    aliases: list[ShortLine] = Field(default_factory=list, max_length=100)
    countries: list[CountryCode] = Field(
        default_factory=list,
        max_length=50,
        description="ISO 3166-1 alpha-2 (names and alpha-3 accepted), the first the home country",
    )
    identifiers: dict[Ref, ShortLine] = Field(
        default_factory=dict, max_length=50, description="e.g. registration, lei, tax"
    )
    addresses: list[AddressIn] = Field(default_factory=list, max_length=50)


class OwnerIn(Strict):
    ref: Line = Field(min_length=1, max_length=64, description="names this owner in the case")
    party: PartyIn
    owns: Line = Field(
        default="tenant", max_length=64, description="'tenant' or another owner's ref"
    )
    percent: Percent
    since: Day | None = None
    until: Day | None = Field(default=None, description="the day the stake was sold")


class OfficerIn(Strict):
    party: PartyIn
    role: Literal["director", "officer", "supervisor", "legal_representative", "trustee", "other"]
    of: Line = Field(default="tenant", max_length=64)


class DeclaredPartyIn(PartyIn):
    """A party of the case, declared once; its stakes and roles are edges that name its ref."""

    ref: Line = Field(
        min_length=1, max_length=64, description="names this party in the case (not 'tenant')"
    )


class StakeIn(Strict):
    owner: Line = Field(min_length=1, max_length=64, description="a declared party's ref")
    owns: Line = Field(
        default="tenant", min_length=1, max_length=64, description="'tenant' or a party's ref"
    )
    percent: Percent
    since: Day | None = None
    until: Day | None = Field(default=None, description="the day the stake was sold")


class RoleIn(Strict):
    party: Line = Field(min_length=1, max_length=64, description="a declared party's ref")
    role: Literal["director", "officer", "supervisor", "legal_representative", "trustee", "other"]
    of: Line = Field(
        default="tenant", min_length=1, max_length=64, description="'tenant' or a party's ref"
    )


class KycCaseCreate(Strict):
    """A case: the organisation, its declared parties (each once) with their ownership and
    control edges; ``owners`` and ``officers`` are the older list form (a party per edge)."""

    tenant_id: Ref | None = Field(default=None, description="operators: for which tenant")
    organization: PartyIn
    end_uses: list[Ref] = Field(min_length=1, max_length=50, description="codes from GET /end-uses")
    end_use_statement: Text = Field(default="", max_length=5000)
    parties: list[DeclaredPartyIn] = Field(default_factory=list, max_length=500)
    ownership: list[StakeIn] = Field(default_factory=list, max_length=1000)
    control: list[RoleIn] = Field(default_factory=list, max_length=1000)
    owners: list[OwnerIn] = Field(default_factory=list, max_length=200)
    officers: list[OfficerIn] = Field(default_factory=list, max_length=200)
    identification: FreeJson = Field(default_factory=dict)


class KycDecisionIn(Strict):
    reason: Text = Field(min_length=1, max_length=1000)
    end_uses: list[Ref] | None = Field(
        default=None, max_length=50, description="approve only these"
    )


class SiteAdmissionOut(BaseModel):
    """Whether the case's tenant is admitted at a site under the packs in force there."""

    site_id: str
    country: str
    timezone: str
    admitted: bool
    reason: str = Field(description="why not, naming the pack and rule ('' when admitted)")
    rule: str | None = Field(description="the site's rule that refuses (pack@version/rule)")


class SiteAdmissionOfficerOut(SiteAdmissionOut):
    """Officers also see the packs in force at the site."""

    packs: list[str] = Field(description="the packs in force at the site")


class KycCaseOut(Out):
    """A case as compliance officers and operator admins see it: the whole screening (list
    entries matched, scores, features, thresholds in the reasons), the lists screened."""

    view: Literal["officer"] = "officer"
    id: str
    tenant_id: str
    tenant_name: str = Field(default="", description="the tenant's name, for people")
    party_id: str
    state: str
    state_reason: str
    verdict: str
    end_uses: list[str]
    end_use_statement: str
    identification: dict[str, object]
    screening: dict[str, object] | None
    policy_versions: list[str]
    lists_screened: list[str]
    declared_parties: dict[str, str] | None = Field(
        default=None, description="the submitter's ref -> the party's id, for every declared party"
    )
    approvals_needed: int
    round: int
    sites: list[SiteAdmissionOfficerOut] = Field(
        default_factory=list, description="admission at every site (one approval, per-site rules)"
    )
    submitted_by: str
    submitted_at: datetime
    screened_at: datetime | None
    decided_at: datetime | None
    expires_at: datetime | None


class KycCaseTenantOut(BaseModel):
    """A case as its tenant sees it (``compliance.disclosure``): where it stands and what to
    supply; never scores, thresholds, matched list entries, lists screened or officers' notes."""

    view: Literal["tenant"] = "tenant"
    id: str
    tenant_id: str
    state: str
    status: str = Field(description="where the case stands, in plain words")
    missing_identification: list[str] = Field(
        description="customer-identification fields still to supply (see GET /policy)"
    )
    prohibited_end_uses: list[str] = Field(
        description="declared end uses that no approval can allow"
    )
    end_uses: list[str]
    approved_end_uses: list[str]
    end_use_statement: str
    identification: dict[str, object]
    submitted_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None
    sites: list[SiteAdmissionOut] = Field(
        default_factory=list, description="admission at every site (one approval, per-site rules)"
    )


KycCaseView = Annotated[KycCaseOut | KycCaseTenantOut, Field(discriminator="view")]


class PolicyOut(BaseModel):
    """The policy in force as operator staff see it: packs, active and inactive rules."""

    view: Literal["officer"] = "officer"
    as_of: str
    packs: list[str]
    rules: list[str]
    inactive: dict[str, str]


class TenantPolicyOut(BaseModel):
    """The policy in force as a tenant sees it: what is prohibited, what to supply."""

    view: Literal["tenant"] = "tenant"
    as_of: str
    prohibited_end_uses: list[str]
    identification_required_of_foreign_customers: list[str]
    identification_required_of_all_customers: list[str]


PolicyView = Annotated[PolicyOut | TenantPolicyOut, Field(discriminator="view")]


class RescreenIn(Strict):
    reason: Text = Field(min_length=1, max_length=500)


class RescreenOut(BaseModel):
    case_id: str
    tenant_id: str
    outcome: str
    reason: str


class ListSnapshotOut(Out):
    id: str
    source: str
    format: str
    label: str
    checksum: str
    entries: int
    counts: dict[str, object]
    current: bool
    imported_at: datetime
    imported_by: str
    reverts: str | None = Field(
        default=None, description="the earlier snapshot whose content this one repeats"
    )


class ListImportOut(BaseModel):
    snapshot: ListSnapshotOut
    replaces: str | None
    reverts: str | None = Field(
        default=None, description="an import of an earlier snapshot's content: that snapshot"
    )
    added: int
    removed: int
    changed: int
    rescreened: list[RescreenOut]


class ListDiffOut(BaseModel):
    added: list[dict[str, object]]
    removed: list[dict[str, object]]
    changed: list[dict[str, object]]


class PurposeReviewOut(Out):
    """A declared purpose held for a compliance officer (officers only)."""

    id: str
    tenant_id: str
    subject_type: str = Field(description="what is held: a job")
    subject_id: str
    purpose: str
    code: str
    reason: str = Field(description="why it was sent to review: the terms found, their sources")
    decision: dict[str, object] = Field(description="the classifier's record")
    state: str = Field(description="pending, approved or rejected")
    opened_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str


class PurposeReviewDecisionIn(Strict):
    reason: Text = Field(min_length=1, max_length=1000)


class EndUseOut(BaseModel):
    code: str
    label: str
    prohibited: bool
    description: str


# ------------------------------------------------------------------ ad-hoc screening
class ScreeningQueryIn(Strict):
    """One name to screen (yente's ``/match`` query, flattened to what the index uses)."""

    id: Line = Field(default="", max_length=64, description="your id for it (default q1, q2...)")
    name: Line = Field(min_length=1, max_length=300)
    kind: Literal["organization", "person", "vessel", "aircraft", "unknown"] = "unknown"
    aliases: list[Annotated[Line, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=10
    )
    countries: list[CountryCode] = Field(
        default_factory=list, max_length=10, description="ISO 3166 alpha-2"
    )
    identifiers: dict[Annotated[Line, Field(min_length=1, max_length=40)], ShortLine] = Field(
        default_factory=dict, max_length=10, description="e.g. registration, lei, passport"
    )


class ScreeningIn(Strict):
    queries: list[ScreeningQueryIn] = Field(min_length=1, max_length=100)


class ScreeningFeatureOut(BaseModel):
    name: str
    detail: str
    weight: float


class ScreeningResultOut(BaseModel):
    source: str
    entry_id: str
    caption: str = Field(description="the entry's primary name")
    kind: str
    listed_name: str = Field(description="the entry's name that matched (primary or alias)")
    our_name: str = Field(description="the query's name that matched")
    score: float
    match: bool
    identifier_match: bool
    programs: list[str]
    list_name: str
    countries: list[str]
    features: list[ScreeningFeatureOut]


class ScreeningResponseOut(BaseModel):
    query: dict[str, object]
    outcome: Literal["clear", "review", "block"]
    reason: str
    total: int = Field(description="hits at the review threshold, all counted")
    omitted: int = Field(0, description="hits not shown (see results_per_query)")
    results: list[ScreeningResultOut]


class ScreeningListOut(BaseModel):
    snapshot_id: str
    label: str


class ScreeningOut(BaseModel):
    id: str = Field(description="the audit record's subject: who screened what, when")
    screened_at: datetime
    screened_by: str
    thresholds: dict[str, float]
    results_per_query: int = Field(
        description="results shown per response: 10, fewer when many names are screened at "
        "once (at most 200 results in one answer)"
    )
    lists: list[ScreeningListOut]
    policy_packs: list[str]
    responses: dict[str, ScreeningResponseOut]


# ---------------------------------------------------------- custody, attestation
class CustodyEventCreate(Strict):
    """One provenance event of a rack, a tray or a GPU (``inventory.custody``)."""

    unit_kind: Literal["rack", "tray", "gpu"]
    unit: Ref = Field(description="a rack or tray by id or serial, a GPU by serial")
    event: Literal[
        "manufactured",
        "sold",
        "shipped",
        "received",
        "installed",
        "moved",
        "repaired",
        "decommissioned",
    ]
    at: Timestamp
    holder: Line = Field(default="", max_length=200, description="who holds it afterwards")
    location: Line = Field(default="", max_length=200, description="site / rack / slot, place")
    from_party: Line = Field(default="", max_length=200, description="a sale's seller")
    to_party: Line = Field(default="", max_length=200, description="a sale's buyer")
    invoice: Line = Field(default="", max_length=200)
    export_authorization: Line = Field(
        default="", max_length=200, description="export licence or licence exception"
    )
    end_user_statement: Line = Field(default="", max_length=200)
    note: Line = Field(default="", max_length=500)


class CustodyEventOut(Out):
    id: int
    unit_kind: str
    unit_id: str
    at: datetime
    event: str
    holder: str
    location: str
    from_party: str
    to_party: str
    invoice: str
    export_authorization: str
    end_user_statement: str
    note: str
    recorded_by: str


class NodeKeyCreate(Strict):
    public_key: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="raw Ed25519, hex")


class NodeKeyOut(Out):
    node_id: str
    key_id: str
    public_key: str
    registered_at: datetime


class AttestationStatementIn(Strict):
    kind: Literal["gpulease-location-attestation/1"]
    node_id: Ref
    site_id: Ref
    at: str = Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    nonce: str = Field(pattern=r"^[0-9a-f]{16,64}$")


class AttestationIn(Strict):
    """A node agent's statement and its Ed25519 signature (hex) over the statement's
    RFC 8785 canonical JSON."""

    statement: AttestationStatementIn
    signature: str = Field(pattern=r"^[0-9a-f]{128}$")


class AttestationOut(Out):
    node_id: str
    site_id: str
    at: datetime
    source: str
    key_id: str


class AlertOut(Out):
    id: str
    node_id: str
    site_id: str
    kind: str
    state: str
    detail: str
    opened_at: datetime
    cleared_at: datetime | None
    cleared_by: str
    clear_reason: str


class AlertClear(Strict):
    reason: Text = Field(min_length=1, max_length=500)
    resume: StrictBool = Field(default=True, description="bring the drained node back up")


class AlertClearedOut(BaseModel):
    alert: AlertOut
    node_state: str
