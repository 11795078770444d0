"""Disclosure reports for regulators and auditors: who, why, owned by whom, decided how.

Three reports, each a JSON-ready ``dict`` (strings, numbers, lists, dicts; times as ISO 8601
UTC, percentages and FLOP counts as decimal strings) that ``report_templates.render_html``
turns into a self-contained page:

* ``report_disclosure.end_user_disclosure``: the end user of a tenant account: who it is
  (parties and their identifiers), why it uses the compute (declared and approved end uses),
  its owners up the chain with their shares and its officers, its links to restricted
  parties (the latest screening's hits, ownership assessment and red flags), every KYC case
  and officer decision (with the policy packs in force and the list snapshots used), its
  current standing, the GPU-hours it used by declared purpose, and the IP addresses it
  reached the API from;
* :func:`gpu_provenance`: for one GPU serial: where it is, its chain of custody (maker ->
  builder -> operator -> installed) and which tenants used it, when, for which purpose;
* :func:`large_training_runs`: jobs, tenants and campaigns (a tenant's jobs declaring one
  purpose) whose estimated training compute passes a threshold (the ``training_compute``
  rules of the packs in force, or the caller's), with every term of the estimate shown.

This module holds the last two and what the three share (times, hours, end-use labels, the
compute a set of allocations used); the disclosure is :mod:`report_disclosure`.

All three span tenants, so they are for operator staff only (operator-admin,
compliance-officer). They read, never write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gpulease.compliance import training_compute
from gpulease.compliance.end_uses import END_USES, parse_purpose
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import JobState
from gpulease.inventory.gpu_models import GPU_MODELS
from gpulease.persistence.tables import (
    AuditRecord,
    GpuAllocation,
    Job,
    Tenant,
)
from gpulease.services import compute_estimates as estimates_core
from gpulease.services import custody as custody_service
from gpulease.services import ledger_proofs
from gpulease.services.context import ServiceContext

# what the tests and callers name: the B200 peak, the default utilisation, the thresholds
DEFAULT_PEAK_FLOPS_PER_GPU = GPU_MODELS["B200"].peak_flops
DEFAULT_UTILISATION = estimates_core.DEFAULT_UTILISATION
LEDGER_CITED = 200  # a GPU report cites the latest runs' start records, with proofs
THRESHOLD_1E26 = estimates_core.THRESHOLD_1E26
THRESHOLD_1E25 = estimates_core.THRESHOLD_1E25
FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
END_USE_LABELS = {e.code: e.label for e in END_USES}


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def hours(seconds: float) -> float:
    return round(seconds / 3600.0, 4)


def end_use_label(code: str | None) -> str:
    return END_USE_LABELS.get(code or "", code or "")


def seconds_held(row: GpuAllocation, moment: datetime) -> float:
    end = row.end if row.end is not None and row.end <= moment else moment
    return max(0.0, (end - row.start).total_seconds())


def compute_used(allocations: Iterable[GpuAllocation], moment: datetime) -> dict[str, Any]:
    """GPU-hours by declared purpose (and the end-use code the purpose declares)."""
    seconds: dict[str, float] = defaultdict(float)
    jobs: dict[str, set[str]] = defaultdict(set)
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for row in allocations:
        seconds[row.purpose] += seconds_held(row, moment)
        jobs[row.purpose].add(row.job_id)
        first[row.purpose] = min(first.get(row.purpose, row.start), row.start)
        end = row.end if row.end is not None and row.end <= moment else moment
        last[row.purpose] = max(last.get(row.purpose, end), end)
    purposes = []
    for purpose in sorted(seconds, key=lambda p: (-seconds[p], p)):
        code, _free = parse_purpose(purpose)
        purposes.append(
            {
                "purpose": purpose,
                "end_use": code,
                "end_use_label": end_use_label(code),
                "gpu_hours": hours(seconds[purpose]),
                "jobs": len(jobs[purpose]),
                "first_use": first[purpose].isoformat(),
                "last_use": last[purpose].isoformat(),
            }
        )
    return {
        "gpu_hours": hours(sum(seconds.values())),
        "jobs": len({job for ids in jobs.values() for job in ids}),
        "by_purpose": purposes,
    }


# ------------------------------------------------------------------ GPU provenance
def gpu_provenance(ctx: ServiceContext, actor: Principal, serial: str) -> dict[str, Any]:
    """Where a GPU is, how it got there, and who used it when for what."""
    actor.scope(Action.REPORT_READ)
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        place = custody_service.locate_gpu(tx, serial)
        gpu, node, rack = place.gpu, place.node, place.rack
        # the chip's own chain, its tray's and its rack's, merged (services.custody)
        custody = custody_service.gpu_chains(tx, gpu, node, rack).rows
        rows = tx.all(
            tx.select(GpuAllocation)
            .where(GpuAllocation.gpu_serial == serial)
            .order_by(GpuAllocation.start, GpuAllocation.id)
        )
        tenant_ids = sorted({r.tenant_id for r in rows})
        tenants = {t.id: t for t in tx.all(tx.select(Tenant).where(Tenant.id.in_(tenant_ids)))}
        job_ids = sorted({r.job_id for r in rows})
        job_rows = {j.id: j for j in tx.all(tx.select(Job).where(Job.id.in_(job_ids)))}
        starts = tx.all(  # the runs' start records, cited with ledger proofs (latest first)
            tx.select(AuditRecord)
            .where(
                AuditRecord.subject_type == "job",
                AuditRecord.subject_id.in_(job_ids),
                AuditRecord.action == "job.start",
            )
            .order_by(AuditRecord.id.desc())
            .limit(LEDGER_CITED)
        )
    usage = []
    by_tenant: dict[tuple[str, str], float] = defaultdict(float)
    for r in rows:
        seconds = seconds_held(r, now)
        by_tenant[(r.tenant_id, r.purpose)] += seconds
        code, _free = parse_purpose(r.purpose)
        tenant = tenants.get(r.tenant_id)
        usage.append(
            {
                "tenant_id": r.tenant_id,
                "tenant": tenant.name if tenant else r.tenant_id,
                "tenant_country": tenant.country if tenant else "",
                "job_id": r.job_id,
                "job": job_rows[r.job_id].name if r.job_id in job_rows else "",
                "purpose": r.purpose,
                "end_use": code,
                "start": r.start.isoformat(),
                "end": iso(r.end),
                "running": r.end is None,
                "gpu_hours": hours(seconds),
            }
        )
    holder = custody[-1][0].holder if custody else ""
    return {
        "kind": "gpu",
        "generated_at": now.isoformat(),
        "gpu": {"serial": gpu.serial, "model": gpu.model},
        "location": place.where(),
        "owner": holder,
        "custody": [
            {
                "at": e.at.isoformat(),
                "event": e.event,
                "holder": e.holder,
                "location": e.location,
                "document": e.document,
                "unit": f"{e.unit_kind} {unit_serial}",
            }
            for e, unit_serial, _audit_id in custody
        ],
        "usage": usage,
        "by_tenant": [
            {
                "tenant_id": tid,
                "tenant": tenants[tid].name if tid in tenants else tid,
                "purpose": purpose,
                "gpu_hours": hours(seconds),
            }
            for (tid, purpose), seconds in sorted(by_tenant.items(), key=lambda kv: -kv[1])
        ],
        # the runs' start records: ledger positions and inclusion proofs
        "ledger": ledger_proofs.cite_audit_ids(ctx, [record.id for record in reversed(starts)]),
    }


# -------------------------------------------------------------- large training runs
def _sci(value: Decimal) -> str:
    return f"{value:.3e}"


def large_training_runs(
    ctx: ServiceContext,
    actor: Principal,
    threshold_ops: Decimal | float | str | None = None,
    peak_flops_per_gpu: Decimal | float | str | None = None,
    utilisation: Decimal | float | str = DEFAULT_UTILISATION,
    window_days: int | None = None,
) -> dict[str, Any]:
    """Jobs, tenants and campaigns whose estimated compute reaches a threshold.

    estimate = GPUs x seconds x peak FLOP/s per GPU x utilisation, seconds as
    :func:`gpulease.compliance.training_compute.job_seconds` gives them (a running job keeps
    its projected total); a job with no way to estimate is counted apart. The thresholds are
    ``threshold_ops`` if given, else the ``training_compute`` rules of the packs in force;
    a tenant's jobs, and each of its campaigns (jobs declaring the same purpose), are added
    up over each threshold's window (:func:`training_compute.aggregate`)."""
    actor.scope(Action.REPORT_READ)
    limits = estimates_core.thresholds(ctx, threshold_ops, window_days)
    lowest = limits[0][0].ops
    given = (
        None
        if peak_flops_per_gpu is None
        else estimates_core.positive(peak_flops_per_gpu, "peak_flops_per_gpu")
    )
    util = estimates_core.positive(utilisation, "utilisation")
    if util > 1:
        raise InvalidRequest("utilisation is a fraction in (0, 1]", field="utilisation")
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        jobs = tx.all(tx.select(Job).order_by(Job.submitted_at, Job.id))
        tenants = {t.id: t for t in tx.all(tx.select(Tenant))}
        window = timedelta(days=max(t.window_days for t, _note in limits))
        groups, controller_names = estimates_core.ownership_groups_at(tx, now, now - window)
        peaks = estimates_core.site_peaks(tx)
    estimated, unestimated = estimates_core.estimate_jobs(jobs, now, peaks, util, given)
    runs: list[dict[str, Any]] = []
    site_of = {job.id: job.site_id for job in jobs}
    for found in estimated:
        job, estimate = found.job, found.ops
        passes = [t.ref for t, _note in limits if estimate >= t.ops]
        if not passes:
            continue
        code, _free = parse_purpose(job.purpose)
        tenant = tenants.get(job.tenant_id)
        runs.append(
            {
                "job_id": job.id,
                "name": job.name,
                "tenant_id": job.tenant_id,
                "tenant": tenant.name if tenant else job.tenant_id,
                "tenant_country": tenant.country if tenant else "",
                "site_id": job.site_id,
                "purpose": job.purpose,
                "end_use": code,
                "state": job.state,
                "submitted_at": job.submitted_at.isoformat(),
                "started_at": iso(job.started_at),
                "ended_at": iso(job.ended_at),
                "gpus": job.gpus,
                "seconds": float(found.seconds),
                "seconds_so_far": job.run_s + found.current_run_s,
                "seconds_basis": found.basis,
                "gpu_hours": hours(job.gpus * float(found.seconds)),
                "peak_flops_per_gpu": str(found.peak),
                "utilisation": str(util),
                "estimated_ops": str(estimate),
                "estimated_ops_sci": _sci(estimate),
                "times_threshold": round(float(estimate / lowest), 3),
                "passes": passes,
            }
        )
    runs.sort(key=lambda r: -Decimal(r["estimated_ops"]))
    computed = [found.compute() for found in estimated]
    totals = training_compute.aggregate(computed, [t for t, _note in limits], now, groups)
    estimates = {c.job_id: c.ops for c in computed}
    used = estimates_core.peak_terms(peaks, given)
    return {
        "kind": "large-runs",
        "generated_at": now.isoformat(),
        "threshold_ops": str(lowest),
        "threshold_sci": _sci(lowest),
        "threshold_note": limits[0][1],
        "thresholds": [
            {
                "ref": t.ref,
                "ops": str(t.ops),
                "sci": _sci(t.ops),
                "window_days": t.window_days,
                "note": note,
            }
            for t, note in limits
        ],
        "formula": "estimated operations = GPUs x seconds x peak FLOP/s per GPU x utilisation",
        "terms": {
            "peak_flops_per_gpu": str(given) if given is not None else "by site's GPU model",
            "peak_flops_per_gpu_sci": _sci(given)
            if given is not None
            else "; ".join(
                f"{p['site_id']} {_sci(Decimal(p['peak']))} ({p['models']})" for p in used
            ),
            "peak_source": "given by the caller"
            if given is not None
            else "; ".join(dict.fromkeys(p["source"] for p in used)),
            "peaks": used,
            "utilisation": str(util),
            "seconds": "actual run seconds for a finished job; for a running job the larger "
            "of its run so far and its walltime limit (else declared duration); else its "
            "walltime limit, else its declared duration",
            "aggregation": "a tenant's jobs, and each campaign's (the jobs of a tenant that "
            "declare the same purpose), added up over each threshold's window across every "
            "site (by_site: each site's share), and a group's (tenants whose majority owners "
            "lead to one controller, compliance.ownership_groups): every job that had not "
            "ended before the window opened",
        },
        "jobs_considered": len(jobs),
        "jobs_without_estimate": unestimated,
        "runs": runs,
        "aggregates": [
            {
                "kind": a.kind,
                "tenant_id": a.tenant_id,
                "tenant": tenants[a.tenant_id].name
                if a.tenant_id in tenants
                else controller_names.get(a.tenant_id, a.tenant_id),
                "tenants": [
                    {"tenant_id": t, "tenant": tenants[t].name if t in tenants else t}
                    for t in a.tenants
                ],
                "campaign": a.campaign,
                "window_days": a.window_days,
                "window_start": a.window_start.isoformat(),
                "jobs": len(a.job_ids),
                "job_ids": list(a.job_ids),
                "estimated_ops": str(a.ops),
                "estimated_ops_sci": _sci(a.ops),
                "passes": list(a.passes),
                "by_site": _by_site(a.job_ids, site_of, estimates),
            }
            for a in totals
        ],
    }


def _by_site(
    job_ids: Iterable[str], site_of: dict[str, str], estimates: dict[str, Decimal]
) -> dict[str, str]:
    """An aggregate's estimated operations per site: a campaign split across sites is one
    total (the aggregate), shown with each site's share."""
    found: dict[str, Decimal] = defaultdict(Decimal)
    for job_id in job_ids:
        found[site_of[job_id]] += estimates[job_id]
    return {site: str(ops) for site, ops in sorted(found.items())}
