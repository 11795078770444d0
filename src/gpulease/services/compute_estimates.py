"""Estimated training compute of stored jobs: the terms the large-runs report shows and the
compute reviews raise cases on.

Design. A job's estimate is GPUs x seconds x peak x utilisation
(:mod:`gpulease.compliance.training_compute` gives the seconds and the aggregation rule).
The **peak** is the rated dense BF16 throughput of the GPU model of the job's site
(:mod:`gpulease.inventory.gpu_models`); a site whose racks hold several models is estimated at
the highest of them, so a job is never under-estimated for where it may run. A caller may give
one peak for every job instead (a what-if). The thresholds are the caller's, else the
``training_compute`` rules of the packs in force (else 10^26); the groups of tenants under
common control come from the declared ownership graph
(:mod:`gpulease.compliance.ownership_groups`).

Invariants: read-only; the same rows, clock and terms give the same estimates; every number a
caller gives is refused unless positive and finite (:class:`InvalidRequest`, 422).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from gpulease.compliance import ownership_groups, training_compute
from gpulease.compliance.policy_packs import RuleKind, TrainingComputeParams
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import JobState
from gpulease.inventory.gpu_models import UNKNOWN_MODEL_PEAK, UNKNOWN_MODEL_SOURCE, peak_of
from gpulease.persistence.db import Tx
from gpulease.persistence.fleet_figures import gpu_models_by_site
from gpulease.persistence.tables import Job, OwnershipRow, PartyRow
from gpulease.services import kyc
from gpulease.services.context import ServiceContext

DEFAULT_UTILISATION = Decimal("0.4")
THRESHOLD_1E26 = Decimal("1e26")
THRESHOLD_1E25 = Decimal("1e25")
THRESHOLD_NOTES = {
    "1e26": "10^26 operations: the training-compute threshold of the 2025 AI diffusion rule's "
    "model-weights control and of the former US reporting requirement for dual-use "
    "foundation models",
    "1e25": "10^25 operations: the EU AI Act's presumption of a general-purpose model with "
    "systemic risk",
}
FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class SitePeak:
    site_id: str
    peak: Decimal  # dense BF16 FLOP/s per GPU used for the site's jobs
    models: tuple[str, ...]  # the GPU models its racks hold
    source: str  # where the peak comes from


@dataclass(frozen=True, slots=True)
class JobEstimate:
    job: Job
    seconds: Decimal
    basis: str  # what the seconds are (training_compute.job_seconds)
    current_run_s: float  # of the run under way (0 when not running)
    peak: Decimal
    ops: Decimal

    def compute(self) -> training_compute.JobCompute:
        job = self.job
        return training_compute.JobCompute(
            job.id, job.tenant_id, job.purpose, job.ended_at, self.ops
        )


def positive(value: Decimal | float | str, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"{field} must be a number, not {value!r}", field=field) from None
    if not number.is_finite() or number <= 0:
        raise InvalidRequest(f"{field} must be a positive number", field=field)
    return number


def site_peaks(tx: Tx) -> dict[str, SitePeak]:
    """Each site's peak: the highest rated peak among its GPU models (module doc)."""
    found: dict[str, SitePeak] = {}
    for site_id, models in gpu_models_by_site(tx.session).items():
        rated = sorted(((*peak_of(m), m) for m in models), key=lambda t: (-t[0], t[2]))
        peak, source, _model = rated[0]
        found[site_id] = SitePeak(site_id, peak, tuple(sorted(models)), source)
    return found


def thresholds(
    ctx: ServiceContext, threshold_ops: Decimal | float | str | None, window_days: int | None
) -> list[tuple[training_compute.Threshold, str]]:
    """The caller's threshold, else the ``training_compute`` rules of the packs in force
    today (else 10^26), each with the note that says where it comes from; lowest first."""
    if window_days is not None and not 1 <= window_days <= 3660:
        raise InvalidRequest(
            "window_days is a whole number of days, 1 to 3660", field="window_days"
        )
    if threshold_ops is not None:
        ops = positive(threshold_ops, "threshold")
        note = THRESHOLD_NOTES.get(f"{ops:.0e}".replace("+", ""), "")
        return [(training_compute.Threshold("given by the caller", ops, window_days or 365), note)]
    found = [
        (
            training_compute.Threshold(
                active.ref,
                active.rule.params.threshold_ops,
                window_days or active.rule.params.window_days,
            ),
            active.rule.title,
        )
        for active in kyc.policy_on(ctx, ctx.now()).of_kind(RuleKind.TRAINING_COMPUTE)
        if isinstance(active.rule.params, TrainingComputeParams)
    ]
    if not found:
        note = THRESHOLD_NOTES["1e26"]
        return [(training_compute.Threshold("default", THRESHOLD_1E26, window_days or 365), note)]
    return sorted(found, key=lambda item: (item[0].ops, item[0].ref))


def estimate_jobs(
    jobs: Iterable[Job],
    now: datetime,
    peaks: Mapping[str, SitePeak],
    utilisation: Decimal,
    given_peak: Decimal | None = None,
) -> tuple[list[JobEstimate], int]:
    """Each job's estimate, and how many jobs had nothing to estimate from (no walltime,
    no duration, never run). ``given_peak`` replaces every site's peak."""
    estimates: list[JobEstimate] = []
    unestimated = 0
    for job in jobs:
        state = JobState(job.state)
        running = state is JobState.RUNNING and job.started_at is not None
        current = (
            max(0.0, (now - job.started_at).total_seconds()) if running and job.started_at else 0.0
        )
        found = training_compute.job_seconds(
            running=running,
            finished=state in FINISHED,
            starts=job.starts,
            run_s=job.run_s,
            current_run_s=current,
            walltime_s=job.walltime_s,
            duration_s=job.duration_s,
        )
        if found is None:
            unestimated += 1
            continue
        seconds, basis = found
        secs = Decimal(repr(float(seconds)))
        site = peaks.get(job.site_id)
        peak = given_peak or (site.peak if site is not None else UNKNOWN_MODEL_PEAK)
        ops = Decimal(job.gpus) * secs * peak * utilisation
        estimates.append(JobEstimate(job, secs, basis, current, peak, ops))
    return estimates, unestimated


def peak_terms(peaks: Mapping[str, SitePeak], given_peak: Decimal | None) -> list[dict[str, str]]:
    """The peaks used, one line per site, for a report's terms."""
    if given_peak is not None:
        return [
            {
                "site_id": "*",
                "models": "",
                "peak": str(given_peak),
                "peak_sci": f"{given_peak:.3e}",
                "source": "given by the caller",
            }
        ]
    return [
        {
            "site_id": p.site_id,
            "models": ", ".join(p.models),
            "peak": str(p.peak),
            "peak_sci": f"{p.peak:.3e}",
            "source": p.source,
        }
        for p in sorted(peaks.values(), key=lambda p: p.site_id)
    ] or [
        {
            "site_id": "*",
            "models": "",
            "peak": str(UNKNOWN_MODEL_PEAK),
            "peak_sci": f"{UNKNOWN_MODEL_PEAK:.3e}",
            "source": UNKNOWN_MODEL_SOURCE,
        }
    ]


def ownership_groups_at(
    tx: Tx, moment: datetime, since: datetime | None = None
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Tenants under common control (``compliance.ownership_groups``) from the declared
    parties and the stakes in force at ``moment``, or at any time from ``since`` to
    ``moment`` (a window: tenants that were under one control while their jobs ran stay one
    group after the stakes end, so ending them does not hide a total); and each
    controller's name."""
    parties = tx.all(tx.select(PartyRow))
    opened = moment if since is None else since
    stakes = [
        ownership_groups.Stake(e.owner_id, e.owned_id, e.percent)
        for e in tx.all(tx.select(OwnershipRow))
        if (e.since is None or e.since <= moment) and (e.until is None or e.until > opened)
    ]
    declared = [
        ownership_groups.GroupParty(
            p.id,
            p.name,
            tuple(p.countries or ()),
            tuple((str(i[0]), str(i[1])) for i in p.identifiers or () if len(i) == 2),
            p.tenant_id,
        )
        for p in parties
    ]
    tenant_parties: dict[str, str] = {}
    for p in sorted(parties, key=lambda p: p.id):
        if p.tenant_id is not None:
            tenant_parties.setdefault(p.tenant_id, p.id)
    names = {p.id: p.name for p in parties}
    return ownership_groups.groups(tenant_parties, declared, stakes), names
