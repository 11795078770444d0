"""Settings from the environment (``GPULEASE_*``), with defaults for one machine.

``GPULEASE_DATABASE_URL`` selects the database: SQLite in a file by default, or PostgreSQL
(``postgresql+psycopg://user@host/db``). Cores never read settings: services pass values in.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SlurmSiteSettings(BaseModel):
    """How the ``slurm`` executor reaches one site's cluster (``executors.slurm.SlurmSite``)."""

    partition: str = "gpu"
    conf: Path | None = None  # SLURM_CONF of the client commands; None: Slurm's default
    bin_dir: Path | None = None  # directory of sbatch, squeue, scancel, scontrol; None: PATH
    # gpulease node id -> Slurm node name; ids not named map through node_name, a format of
    # {node_id} and {local} (the id without "<site id>-")
    nodes: dict[str, str] = Field(default_factory=dict)
    node_name: str = "{node_id}"
    workdir: Path = Path("/tmp")  # the jobs' working directory on their nodes
    job_prefix: str = Field(default="gpulease-", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    # each GPU its own GRES type (gres.conf Type=s0 ...): the type's format, e.g. "s{slot}";
    # jobs then run on exactly gpulease's GPUs, not merely as many
    slot_type: str | None = None
    # Slurm's job-completion file (JobCompLoc, JobCompType=jobcomp/filetxt) as this host sees
    # it: runs that ended longer than MinJobAge ago (e.g. while no scheduler led) are found
    # there with their exit code instead of being taken for lost and run again
    jobcomp: Path | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GPULEASE_", extra="ignore")

    database_url: str = "sqlite:///gpulease.db"
    data_dir: Path = Path("var")  # job logs of the local executor
    executor: str = Field(default="simulated", pattern="^(simulated|local|slurm)$")
    # slurm executor: site id -> its cluster, as JSON in GPULEASE_SLURM_SITES, e.g.
    # {"jkt1": {"partition": "gpu", "conf": "/etc/slurm/slurm.conf", "node_name": "{local}"}}
    slurm_sites: dict[str, SlurmSiteSettings] = Field(default_factory=dict)
    policy: str = "default"
    scheduler_interval_s: float = Field(default=1.0, gt=0)
    # The leader keeps its state between passes; every so often it rebuilds it from the
    # database, compares, logs any divergence and keeps the rebuilt one.
    consistency_check_s: float = Field(default=300.0, gt=0)
    preemption_grace_s: float = Field(default=30.0, ge=0)
    # how often the leader compares its nodes' states with the executor's (Slurm: one
    # `sinfo` per site) and syncs them both ways (services.node_sync)
    node_sync_s: float = Field(default=10.0, gt=0)
    # how often the leader adds up training compute against the packs' thresholds and
    # raises compute reviews for officers (services.compute_reviews)
    compute_review_scan_s: float = Field(default=300.0, gt=0)
    # GPUs of the rack-local block gangs use (64 on NVL72) that work without a rack
    # requirement should leave whole when other racks have room; 0 = off
    keep_blocks: int = Field(default=0, ge=0)
    price_per_gpu_hour: Decimal = Decimal("3.50")
    currency: str = "USD"
    # `serve` also runs the scheduler loop (leader election decides); off by default: the
    # scheduler runs in its own process (`gpulease scheduler`), so passes and requests do not
    # compete for one interpreter
    run_scheduler: bool = False
    # threads of an API process serving requests at once (each may hold a connection)
    api_threads: int = Field(default=32, ge=1, le=512)
    # database connections kept open per process; None: sized to the process's threads
    # (api_threads in an API process, a few for the scheduler loop, both when together)
    db_pool_size: int | None = Field(default=None, ge=1, le=1000)
    db_max_overflow: int = Field(default=8, ge=0, le=1000)  # more, opened under a burst
    # test a pooled connection that lay idle a second with a round trip before use
    # (PostgreSQL); off, a connection the server dropped fails one transaction (503,
    # database_unavailable), then the pool renews
    db_pre_ping: bool = True
    # Compliance
    policy_files: list[Path] = Field(default_factory=list)  # operator packs beside the shipped
    review_threshold: float = Field(default=85.0, ge=0, le=100)
    block_threshold: float = Field(default=95.0, ge=0, le=100)
    kyc_approvals: int = Field(default=1, ge=1, le=2)  # 2 = four-eyes
    kyc_validity_days: int = Field(default=365, ge=1)
    operator_country: str = "ID"  # customers from elsewhere are foreign
    suspended_running: str = Field(default="drain", pattern="^(drain|keep)$")
    # ------------------------------------------------------------ security and limits
    token_ttl_days: int = Field(default=90, ge=1, le=3650)  # lifetime of a new API token
    max_tokens_per_user: int = Field(default=20, ge=1, le=1000)  # live tokens at once
    max_request_bytes: int = Field(default=1 << 20, ge=1024)  # a request body, before parsing
    max_upload_bytes: int = Field(default=200 << 20, ge=1024)  # a screening-list upload
    max_json_depth: int = Field(default=16, ge=2, le=200)  # nesting of a JSON body
    auth_failures_per_minute: int = Field(default=30, ge=1)  # per client address
    submissions_per_minute: int = Field(default=1200, ge=1)  # jobs, per tenant
    screenings_per_minute: int = Field(default=60, ge=1)  # ad-hoc screenings, per officer
    # a request not yet approved holds its capacity for this long, then lapses
    lease_hold_hours: float = Field(default=72.0, gt=0, le=24 * 366)
    # share of a site's GPUs one tenant's unapproved requests may hold at once
    lease_hold_share: float = Field(default=0.25, gt=0, le=1)
    # requests one tenant may have awaiting approval at a site at once
    max_pending_lease_requests: int = Field(default=20, ge=1, le=10_000)
    lease_horizon_days: int = Field(default=3 * 366, ge=1, le=20 * 366)  # windows end by then
    # addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed;
    # empty: the peer's own address is the client's, whatever the headers say
    trusted_proxies: list[str] = Field(default_factory=list)
    # who may submit at which priority class; a class not named is open to every submitter
    priority_roles: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "critical": ["operator-admin"],
            "high": ["operator-admin", "tenant-admin"],
        }
    )
    # local executor: the unprivileged user jobs run as when the server runs as root
    job_user: str = "nobody"
    max_log_bytes: int = Field(default=16 << 20, ge=4096)  # a run's log on disk; more is cut
    # ------------------------------------------------------------ operations
    # `/metrics` (Prometheus) answers only `Authorization: Bearer <metrics_token>`; unset, it
    # answers 404 like any unknown path: the figures name tenants (docs/operations.md)
    metrics_token: SecretStr | None = Field(default=None, min_length=24, max_length=256)
    metrics_cache_s: float = Field(default=5.0, ge=0, le=600)  # fleet figures kept between scrapes
    # the scheduler process serves its own figures (pass latency, decisions) here; None: not
    scheduler_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    scheduler_metrics_host: str = "127.0.0.1"
    # server logs: "text" (lines for a terminal) or "json" (one object a line, with request ids)
    log_format: str = Field(default="text", pattern="^(text|json)$")
    # scheduler leadership: a lease renewed every pass; lost when not renewed for this long
    leader_ttl_s: float = Field(default=15.0, gt=0)
    # location attestation (services.attestation): how often the scheduler loop has the
    # executor attest its nodes and checks every node's last attestation; a node attested
    # longer ago than attestation_stale_s is flagged and drained; a signed statement dated
    # more than attestation_skew_s from this clock is refused
    attestation_interval_s: float = Field(default=60.0, gt=0)
    attestation_stale_s: float = Field(default=900.0, gt=0)
    attestation_skew_s: float = Field(default=300.0, gt=0, le=86_400)

    # ------------------------------------------------------------ the ledger (docs/ledger.md)
    # the signing keys' private files (mode 0600, never in the database); None: data_dir/ledger
    ledger_key_dir: Path | None = None
    # signed tree heads are published as JSON lines here; None: data_dir/ledger-heads.jsonl
    ledger_heads_file: Path | None = None
    # the scheduler's leader signs a head this often when the ledger grew
    ledger_head_interval_s: float = Field(default=60.0, gt=0)
    # the maximum merge delay: the longest a committed audit record waits for its ledger
    # position (the scheduler's sequencer runs every quarter of it; `ledger verify` reports a
    # record queued longer as a fault)
    ledger_max_merge_delay_s: float = Field(default=1.0, gt=0, le=3600)

    # ------------------------------------------------------------ the web dashboard (web/)
    # the session cookie's Secure flag: "auto" (when the request came over https, as the
    # trusted-proxy rule gives the scheme), "always" or "never"
    ui_cookie_secure: str = Field(default="auto", pattern="^(auto|always|never)$")
    ui_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)  # the cookie's life
    ui_refresh_s: int = Field(default=15, ge=5, le=3600)  # the fleet page's live refresh

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, values: list[str]) -> list[str]:
        """Each an IP address or a CIDR network, written canonically (uvicorn would take a
        malformed entry as a literal name that never matches, or ``*`` as everyone)."""
        canonical = []
        for value in values:
            text = value.strip()
            try:
                if "/" in text:
                    canonical.append(str(ipaddress.ip_network(text, strict=False)))
                else:
                    canonical.append(str(ipaddress.ip_address(text)))
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {value!r} is not an IP address or network (CIDR); "
                    "name the proxies (0.0.0.0/0 would trust every peer)"
                ) from None
        return canonical
