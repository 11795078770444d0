"""Tables. One class per table, typed with SQLAlchemy 2's ``Mapped``.

Invariants the schema enforces:
* ids are stable strings chosen by the service (``lease-...``, ``job-...``); GPUs are keyed
  by their serial number;
* rows that the scheduler decides on (nodes, leases, jobs) carry a ``version`` column used for
  optimistic concurrency: an UPDATE matches only the version that was read, so a decision
  taken on a stale snapshot changes nothing;
* ``audit_log`` and ``gpu_allocations`` are append-only (the service never updates or deletes
  audit rows; an allocation row only gets its ``end`` set);
* an ``Idempotency-Key`` is unique per user.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gpulease.persistence.types import Money, UtcDateTime

# Alembic compares against this naming scheme, so constraint names are stable across databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    pass


Base.metadata.naming_convention = NAMING

# An autoincrementing integer key on both SQLite (INTEGER PRIMARY KEY) and PostgreSQL.
SerialKey = BigInteger().with_variant(Integer(), "sqlite")


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    city: Mapped[str] = mapped_column(String(100))
    hardware: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # IANA time zone of the site (a site is a jurisdiction: its days are local days)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")


class Rack(Base):
    __tablename__ = "racks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # dense per site, the core's rack index
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(40))


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    rack_id: Mapped[str] = mapped_column(ForeignKey("racks.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)  # dense per site, the core's node index
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    gpus: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str] = mapped_column(String(500), default="")
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Gpu(Base):
    __tablename__ = "gpus"
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)  # index within the node (CUDA_VISIBLE_DEVICES)
    model: Mapped[str] = mapped_column(String(40))
    __table_args__ = (UniqueConstraint("node_id", "slot", name="uq_gpus_node_slot"),)


class CustodyEvent(Base):
    """One link of a unit's chain of custody: maker -> builder -> operator -> installed."""

    __tablename__ = "custody_events"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    unit_kind: Mapped[str] = mapped_column(String(16))  # rack, tray, gpu
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    event: Mapped[str] = mapped_column(String(40))  # inventory.custody.CustodyKind
    holder: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200))
    document: Mapped[str] = mapped_column(String(200), default="")
    # (revision 0009) a sale's parties and papers, who recorded the event and when
    from_party: Mapped[str] = mapped_column(String(200), default="", server_default="")
    to_party: Mapped[str] = mapped_column(String(200), default="", server_default="")
    invoice: Mapped[str] = mapped_column(String(200), default="", server_default="")
    export_authorization: Mapped[str] = mapped_column(String(200), default="", server_default="")
    end_user_statement: Mapped[str] = mapped_column(String(200), default="", server_default="")
    note: Mapped[str] = mapped_column(String(500), default="", server_default="")
    recorded_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    recorded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class NodeKey(Base):
    """A node agent's Ed25519 public key, registered by an operator (one per node)."""

    __tablename__ = "node_keys"
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # raw 32 bytes, hex
    key_id: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    registered_by: Mapped[str] = mapped_column(String(64))


class NodeAttestation(Base):
    """A node's last accepted attestation (the audit trail, hence the ledger, keeps each)."""

    __tablename__ = "node_attestations"
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))  # the site it was seen at
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(16))  # agent (signed) or executor
    key_id: Mapped[str] = mapped_column(String(64), default="")
    nonce: Mapped[str] = mapped_column(String(64), default="")
    signature: Mapped[str] = mapped_column(String(128), default="")
    first_at: Mapped[datetime] = mapped_column(UtcDateTime())  # attested since


class AttestationAlert(Base):
    """A node whose attestations stopped or disagree with its site: open until cleared."""

    __tablename__ = "attestation_alerts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    site_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    detail: Mapped[str] = mapped_column(String(500))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    cleared_by: Mapped[str] = mapped_column(String(64), default="")
    clear_reason: Mapped[str] = mapped_column(String(500), default="")


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_windows"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    start: Mapped[datetime] = mapped_column(UtcDateTime())
    end: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(String(500))


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    kind: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The standing of its approval, kept beside the tenant so every admission check is one
    # read: "none" (never approved), "approved", "suspended" (pending review), "rejected".
    approval: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    approval_reason: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    approved_end_uses: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    approval_case_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approval_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # declared purposes an officer cleared after review (services.purpose_reviews)
    cleared_purposes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # A disabled user's tokens stop authenticating at once; the row stays for the audit.
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    disabled_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    disabled_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # who created the account ("bootstrap" for the first operator; "" on rows created
    # before it was recorded): four-eyes refuses a pair where one officer created the other
    created_by: Mapped[str] = mapped_column(String(64), default="", server_default="")


class ApiToken(Base):
    """A bearer token, stored as its SHA-256 only; the token itself is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Every token expires (NULL only on rows issued before expiry existed: they never do).
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    label: Mapped[str] = mapped_column(String(100), default="", server_default="")
    created_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    revoked_by: Mapped[str] = mapped_column(String(64), default="", server_default="")


class AuthEpoch(Base):
    """One row (``id`` 1): a counter bumped in the same transaction as every change that can
    withdraw a credential (a token revoked, a user disabled or enabled, a role changed). API
    processes cache checked tokens and trust an entry only while this counter is unchanged
    (``services.auth_cache``); a missing row reads as epoch 0."""

    __tablename__ = "auth_epoch"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)


class Lease(Base):
    __tablename__ = "leases"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    gpus: Mapped[int] = mapped_column(Integer)
    racks: Mapped[int | None] = mapped_column(Integer, nullable=True)  # asked as whole racks
    start: Mapped[datetime] = mapped_column(UtcDateTime())
    end: Mapped[datetime] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str] = mapped_column(String(500), default="")
    price: Mapped[Decimal] = mapped_column(Money())
    rate: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # A request not yet approved holds capacity only until then; ``leases.tick`` lets it
    # lapse (NULL on requests made before holds expired, and once decided).
    hold_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    lease_id: Mapped[str | None] = mapped_column(ForeignKey("leases.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    image: Mapped[str | None] = mapped_column(String(500), nullable=True)
    command: Mapped[str | None] = mapped_column(Text, nullable=True)
    gpus: Mapped[int] = mapped_column(Integer)
    gpus_per_node: Mapped[int | None] = mapped_column(Integer, nullable=True)
    topology: Mapped[str] = mapped_column(String(16))
    segment: Mapped[int | None] = mapped_column(Integer, nullable=True)
    walltime_s: Mapped[float | None] = mapped_column(nullable=True)
    duration_s: Mapped[float | None] = mapped_column(nullable=True)  # simulated executor only
    priority: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(200))
    preemptible: Mapped[bool]
    requeueable: Mapped[bool]
    state: Mapped[str] = mapped_column(String(16), index=True)
    wait_reason: Mapped[str] = mapped_column(String(500), default="")
    end_reason: Mapped[str] = mapped_column(String(500), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    preempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    preempt_reason: Mapped[str] = mapped_column(String(500), default="")
    # how the control plane chose the site among several (scheduler.dispatch): the sites
    # asked, the one chosen and why every other was not; None when the job named one site
    dispatch: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # queued within its tenant's guarantee since (the scheduler serves the oldest claim first)
    guaranteed_since: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attained_gpu_s: Mapped[float] = mapped_column(default=0.0)  # past runs
    run_s: Mapped[float] = mapped_column(default=0.0)  # wall seconds of past runs
    starts: Mapped[int] = mapped_column(Integer, default=0)
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    borrowed: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
    __table_args__ = (Index("ix_jobs_site_state", "site_id", "state"),)


class GpuAllocation(Base):
    """Who used which chip, when, for what: one row per GPU per run of a job."""

    __tablename__ = "gpu_allocations"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    gpu_serial: Mapped[str] = mapped_column(ForeignKey("gpus.serial"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(200))
    start: Mapped[datetime] = mapped_column(UtcDateTime())
    end: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Whose capacity this GPU was (``scheduler.capacity``), written with the row: "guaranteed"
    # (``lease_id``: the tenant's own lease) or "borrowed" (``lender_lease_id`` and
    # ``lender_tenant``: another tenant's idle lease; none: unleased capacity). NULL on rows
    # written before metering (0014). ``claimed_at``: when the run's guarantee claim began
    # (its wait within the guarantee, the SLA's evidence), NULL when it did not wait so.
    capacity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    lease_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lender_lease_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    lender_tenant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PricePlanVersion(Base):
    """One version of a price plan (``metering.plans.PlanVersion``), in force from
    ``effective_from`` until the next version's; never updated (a change is a new version).
    The SLA rule that credits the plan's lease holders travels with it."""

    __tablename__ = "price_plan_versions"
    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime())
    currency: Mapped[str] = mapped_column(String(3))
    reserved_rate: Mapped[Decimal] = mapped_column(Money())
    on_demand_rate: Mapped[Decimal] = mapped_column(Money())
    borrowed_discount: Mapped[Decimal] = mapped_column(Money())
    lending_share: Mapped[Decimal] = mapped_column(Money())
    sla_wait_slo_s: Mapped[int] = mapped_column(Integer)
    sla_wait_multiple: Mapped[Decimal] = mapped_column(Money())
    sla_degraded_multiple: Mapped[Decimal] = mapped_column(Money())
    sla_cap_share: Mapped[Decimal] = mapped_column(Money())
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PlanAssignment(Base):
    """The price plan a tenant is rated on (a tenant without a row: the default plan)."""

    __tablename__ = "plan_assignments"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    assigned_by: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime())


class InvoiceRow(Base):
    """An issued invoice (``metering.invoices.Invoice``): written once, never updated; its
    lines are the JSON of ``metering.render.invoice_dict``. One per tenant and period."""

    __tablename__ = "invoices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    period_start: Mapped[datetime] = mapped_column(UtcDateTime())
    period_end: Mapped[datetime] = mapped_column(UtcDateTime())
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Money())
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    issued_by: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    __table_args__ = (
        UniqueConstraint("tenant_id", "period_start", "period_end", name="uq_invoices_period"),
    )


class CreditNoteRow(Base):
    """A credit note against an issued invoice: written once, never updated."""

    __tablename__ = "credit_notes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    total: Mapped[Decimal] = mapped_column(Money())
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    issued_by: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)


class JobLog(Base):
    __tablename__ = "job_logs"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)


class AuditRecord(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(String(1000), default="")
    __table_args__ = (Index("ix_audit_subject", "subject_type", "subject_id"),)


class LedgerEntry(Base):
    """The ledger: audit record ``audit_id`` at ``position`` (0, 1, 2, ... without gaps), with
    the RFC 9162 leaf hash of its canonical form (``ledger.records``), fixed in the audit
    record's transaction and moved here by the sequencer (``persistence.ledger_store``).
    Never updated nor deleted. No foreign key: the verifier
    reports an audit row gone, and an insert pays no check."""

    __tablename__ = "ledger_entries"
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    audit_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerPending(Base):
    """An audit record committed but not yet sequenced: its leaf hash, fixed in the audit
    record's own transaction, and when it was queued (seconds since the epoch by the
    database's clock, taken at the end of that transaction). The sequencer moves it to
    ``ledger_entries`` at the next position (``persistence.ledger_store.sequence``)."""

    __tablename__ = "ledger_pending"
    audit_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    queued_at: Mapped[float] = mapped_column(Float)


class LedgerState(Base):
    """One row (``id`` 1): the ledger's size, the next position. Locked by the sequencer
    for its short transaction, so one sequencer at a time hands out positions."""

    __tablename__ = "ledger_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerHead(Base):
    """A signed tree head (``ledger.heads``): the root of the first ``tree_size`` entries."""

    __tablename__ = "ledger_heads"
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))


class LedgerKey(Base):
    """A signing key's public half and the period ``[valid_from, valid_until)`` it signs in
    (the private half is a file, never in the database)."""

    __tablename__ = "ledger_keys"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LeaderLease(Base):
    """Leadership of the scheduler as a lease with a heartbeat: the holder renews
    ``expires_at`` on every pass; once it passes, any process may take over (``term`` + 1),
    and a holder that finds a higher term than its own has lost leadership."""

    __tablename__ = "leader_leases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    term: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SchedulerStatus(Base):
    """One row per site: which process leads its scheduler and when it last decided."""

    __tablename__ = "scheduler_status"
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    leader: Mapped[str] = mapped_column(String(200))
    last_tick_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ticks: Mapped[int] = mapped_column(BigInteger, default=0)
    # the leader process's failed passes so far (as of this pass): /health on any process
    failed_passes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class SchedulerChange(Base):
    """The scheduler's change feed: one row per job or node change, written by a session
    hook in the same transaction as the change (``persistence.change_feed``). The leader
    reads rows past its position and reloads the rows they name; it deletes what it has read."""

    __tablename__ = "scheduler_changes"
    seq: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # "job" or "node"
    ref: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(200), default="")  # the leader's own writes
    __table_args__ = (Index("ix_scheduler_changes_site_seq", "site_id", "seq"),)


# ------------------------------------------------------------------------ compliance
class PartyRow(Base):
    """A party we must know: a tenant's organisation, its owners, officers."""

    __tablename__ = "parties"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(500))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    identifiers: Mapped[list[list[str]]] = mapped_column(JSON, default=list)  # [[type, value]]
    addresses: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id"), nullable=True, index=True
    )  # the tenant this party *is*
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OwnershipRow(Base):
    __tablename__ = "ownership_edges"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), index=True)
    owned_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), index=True)
    percent: Mapped[Decimal] = mapped_column(Money())
    since: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    evidence: Mapped[str] = mapped_column(String(500), default="")


class ControlRow(Base):
    __tablename__ = "control_edges"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), index=True)
    role: Mapped[str] = mapped_column(String(40))


class ListSnapshotRow(Base):
    """One imported version of a screening list; entries are written with it, all or none."""

    __tablename__ = "list_snapshots"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(40), index=True)
    format: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200))
    checksum: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    current: Mapped[bool]
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime())
    imported_by: Mapped[str] = mapped_column(String(64))
    # a re-import of an earlier snapshot's content (a revert): the snapshot it repeats
    reverts: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_list_snapshots_source_checksum", "source", "checksum"),)


class ListEntryRow(Base):
    __tablename__ = "list_entries"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[str] = mapped_column(ForeignKey("list_snapshots.id"), index=True)
    source: Mapped[str] = mapped_column(String(40))
    entry_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the whole ListEntry


class KycCase(Base):
    __tablename__ = "kyc_cases"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str] = mapped_column(String(1000), default="")
    end_uses: Mapped[list[str]] = mapped_column(JSON)  # declared (and, once approved, approved)
    end_use_statement: Mapped[str] = mapped_column(Text, default="")
    identification: Mapped[dict[str, Any]] = mapped_column(JSON)  # customer identification
    verdict: Mapped[str] = mapped_column(String(16), default="")  # clear / review / block
    screening: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    policy_versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    lists_screened: Mapped[list[str]] = mapped_column(JSON, default=list)  # snapshot ids
    # ref -> party id of every party the case declared (None: a case from before graphs)
    declared_parties: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    approvals_needed: Mapped[int] = mapped_column(Integer, default=1)
    round: Mapped[int] = mapped_column(Integer, default=0)  # screenings so far
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    screened_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class KycDecision(Base):
    """An officer's sign-off (or refusal) on a case; four-eyes needs two distinct officers."""

    __tablename__ = "kyc_decisions"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("kyc_cases.id"), index=True)
    officer_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # approve / reject
    reason: Mapped[str] = mapped_column(String(1000))
    screening_round: Mapped[int] = mapped_column(Integer)  # decisions count per round
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    # who could have presented this officer's credentials when it decided: the officer and
    # the issuers of its live tokens (four-eyes needs two approvals with no one in common)
    controllers: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")


class PurposeReview(Base):
    """A declared purpose the classifier sent to an officer, and the work it holds."""

    __tablename__ = "purpose_reviews"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # "job"
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(1000))
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)  # the classifier's record
    state: Mapped[str] = mapped_column(String(16), index=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    decision_reason: Mapped[str] = mapped_column(String(1000), default="")


class ComputeReview(Base):
    """Training compute that reached a threshold of the packs, raised for an officer
    (``services.compute_reviews``). ``subject_key`` names what it is about (kind, subject,
    campaign, threshold) so a scan finds the review it raised before."""

    __tablename__ = "compute_reviews"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # tenant, campaign or group
    subject_id: Mapped[str] = mapped_column(String(64), index=True)  # tenant or controller
    subject_name: Mapped[str] = mapped_column(String(200))
    campaign: Mapped[str] = mapped_column(String(200), default="")
    threshold_ref: Mapped[str] = mapped_column(String(200))
    threshold_ops: Mapped[str] = mapped_column(String(64))
    window_days: Mapped[int] = mapped_column(Integer)
    estimated_ops: Mapped[str] = mapped_column(String(64))
    jobs: Mapped[int] = mapped_column(Integer)
    # the evidence: job ids (the largest first, at most services.compute_reviews.CITED),
    # tenants of a group, operations per site
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    decision_reason: Mapped[str] = mapped_column(String(1000), default="")


class AccessRecord(Base):
    """IP addresses a tenant's users reached the API from, with first and last time seen."""

    __tablename__ = "access_records"
    id: Mapped[int] = mapped_column(SerialKey, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (UniqueConstraint("user_id", "ip", name="uq_access_user_ip"),)
