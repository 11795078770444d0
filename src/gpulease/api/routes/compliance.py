"""Compliance over HTTP: KYC cases, officer decisions, screening lists, policy, end uses.

Secrecy towards tenants: what a route answers depends on who asks. Operator staff
(compliance officers, operator admins) get a case whole (``KycCaseOut``: screening, scores,
list entries, lists screened) and the policy whole (``PolicyOut``); a tenant's users get the
tenant's view (``KycCaseTenantOut``, ``TenantPolicyOut``, built by
``compliance.disclosure``): state, status in plain words, what to supply, end uses and dates;
never scores, thresholds, matched entries or screening rules. Both answers carry ``view``
(``officer`` / ``tenant``), which tells them apart. Screening lists (``/lists``) are for
operator staff only (refused by the service to anyone else).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from gpulease.api.constraints import Ref, ReportDay
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import (
    ERROR_RESPONSES,
    EndUseOut,
    KycCaseCreate,
    KycCaseOut,
    KycCaseTenantOut,
    KycCaseView,
    KycDecisionIn,
    ListDiffOut,
    ListImportOut,
    ListSnapshotOut,
    PartyIn,
    PolicyOut,
    PolicyView,
    RescreenIn,
    RescreenOut,
    SiteAdmissionOfficerOut,
    SiteAdmissionOut,
    TenantPolicyOut,
)
from gpulease.compliance.case_graph import DeclaredParty, DeclaredRole, DeclaredStake
from gpulease.compliance.disclosure import tenant_case_view, tenant_policy_view
from gpulease.compliance.end_uses import END_USES
from gpulease.compliance.model import Address
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import KycState
from gpulease.persistence.tables import KycCase
from gpulease.services import kyc, names, rescreening, screening_lists
from gpulease.services import sites as sites_service
from gpulease.services.context import ServiceContext
from gpulease.services.lookup import Kind, resolve, resolve_optional
from gpulease.services.screening_lists import entry_to_json

router = APIRouter(tags=["compliance"])


def _case_out(
    me: Principal, case: KycCase, ctx: ServiceContext | None = None, *, sites: bool = False
) -> KycCaseOut | KycCaseTenantOut:
    """The case as ``me`` may see it: whole for operator staff (with ``ctx``, the tenant's
    name beside its id), the tenant's view otherwise; with ``sites`` (one case shown), the
    tenant's admission at every site."""
    admissions = _site_admissions(ctx, case) if sites and ctx is not None else []
    if me.can(Action.SCREENING_READ):
        out = KycCaseOut.model_validate(case)
        if ctx is not None:
            out.tenant_name = names.tenant_name(ctx, case.tenant_id)
        out.sites = admissions
        return out
    view = tenant_case_view(case)
    return KycCaseTenantOut(
        sites=[
            SiteAdmissionOut.model_validate(a.model_dump(exclude={"packs"})) for a in admissions
        ],
        id=view.id,
        tenant_id=view.tenant_id,
        state=view.state,
        status=view.status,
        missing_identification=list(view.missing_identification),
        prohibited_end_uses=list(view.prohibited_end_uses),
        end_uses=list(view.end_uses),
        approved_end_uses=list(view.approved_end_uses),
        end_use_statement=view.end_use_statement,
        identification=view.identification,
        submitted_at=view.submitted_at,
        decided_at=view.decided_at,
        expires_at=view.expires_at,
    )


def _party(p: PartyIn) -> kyc.PartyInput:
    return kyc.PartyInput(
        name=p.name,
        kind=p.kind,
        aliases=tuple(p.aliases),
        countries=tuple(p.countries),
        identifiers=tuple(p.identifiers.items()),
        addresses=tuple(Address(**a.model_dump()) for a in p.addresses),
    )


@router.post("/kyc/cases", status_code=201, response_model=KycCaseView, responses=ERROR_RESPONSES)
def submit_case(body: KycCaseCreate, ctx: Ctx, me: Me) -> KycCaseOut | KycCaseTenantOut:
    """Submit a tenant's case (identity, owners, officers, end uses); it is screened at once
    and then waits for a compliance officer. A tenant gets its view of the case back."""
    submission = kyc.CaseSubmission(
        organization=_party(body.organization),
        end_uses=tuple(body.end_uses),
        end_use_statement=body.end_use_statement,
        owners=tuple(
            kyc.OwnerInput(o.ref, _party(o.party), o.owns, o.percent, o.since, o.until)
            for o in body.owners
        ),
        officers=tuple(kyc.OfficerInput(_party(o.party), o.role, o.of) for o in body.officers),
        identification=dict(body.identification),
        parties=tuple(DeclaredParty(p.ref, _party(p)) for p in body.parties),
        ownership=tuple(
            DeclaredStake(s.owner, s.owns, s.percent, s.since, s.until) for s in body.ownership
        ),
        control=tuple(DeclaredRole(c.party, c.of, c.role) for c in body.control),
    )
    tenant_id = me.acting_tenant(
        resolve_optional(ctx, me, Kind.TENANT, body.tenant_id, Action.KYC_SUBMIT)
    )
    return _case_out(me, kyc.submit_case(ctx, me, tenant_id, submission), ctx)


@router.get("/kyc/cases", response_model=list[KycCaseView], responses=ERROR_RESPONSES)
def list_cases(
    ctx: Ctx, me: Me, state: Annotated[KycState | None, Query()] = None
) -> list[KycCaseOut | KycCaseTenantOut]:
    """Cases, newest first: every case for operator staff, a tenant's own (its view) else."""
    cases = kyc.list_cases(ctx, me, state.value if state else None)
    return [_case_out(me, c, ctx) for c in cases]


@router.get("/kyc/cases/{case_id}", response_model=KycCaseView, responses=ERROR_RESPONSES)
def show_case(case_id: Ref, ctx: Ctx, me: Me) -> KycCaseOut | KycCaseTenantOut:
    case_id = resolve(ctx, me, Kind.KYC_CASE, case_id, Action.KYC_READ)
    return _case_out(me, kyc.get_case(ctx, me, case_id), ctx, sites=True)


def _site_admissions(ctx: ServiceContext, case: KycCase) -> list[SiteAdmissionOfficerOut]:
    """The case's tenant at every site (the case was read under the caller's authority)."""
    return [
        SiteAdmissionOfficerOut(
            site_id=a.site_id,
            country=a.country,
            timezone=a.timezone,
            admitted=a.admitted,
            reason=a.reason,
            rule=a.rule,
            packs=list(a.packs),
        )
        for a in sites_service.admissions_of(ctx, case.tenant_id, ctx.now())
    ]


@router.post("/kyc/cases/{case_id}/approve", response_model=KycCaseView, responses=ERROR_RESPONSES)
def approve_case(
    case_id: Ref, body: KycDecisionIn, ctx: Ctx, me: Me
) -> KycCaseOut | KycCaseTenantOut:
    """Compliance officer: approve (optionally for fewer end uses than declared)."""
    case_id = resolve(ctx, me, Kind.KYC_CASE, case_id, Action.KYC_DECIDE)
    case = kyc.decide_case(
        ctx, me, case_id, approve=True, reason=body.reason, end_uses=body.end_uses
    )
    return _case_out(me, case, ctx)


@router.post("/kyc/cases/{case_id}/reject", response_model=KycCaseView, responses=ERROR_RESPONSES)
def reject_case(
    case_id: Ref, body: KycDecisionIn, ctx: Ctx, me: Me
) -> KycCaseOut | KycCaseTenantOut:
    """Compliance officer: reject a case."""
    case_id = resolve(ctx, me, Kind.KYC_CASE, case_id, Action.KYC_DECIDE)
    return _case_out(me, kyc.decide_case(ctx, me, case_id, approve=False, reason=body.reason), ctx)


@router.post("/kyc/rescreen", response_model=list[RescreenOut], responses=ERROR_RESPONSES)
def rescreen(body: RescreenIn, ctx: Ctx, me: Me) -> list[RescreenOut]:
    """Compliance officer: re-screen every approved or pending case now."""
    return _rescreen_out(rescreening.rescreen_now(ctx, me, body.reason))


def _rescreen_out(results: list[rescreening.Rescreen]) -> list[RescreenOut]:
    return [
        RescreenOut(case_id=r.case_id, tenant_id=r.tenant_id, outcome=r.outcome, reason=r.reason)
        for r in results
    ]


_UPLOAD_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files", "format"],
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "format": {
                        "type": "string",
                        "maxLength": 40,
                        "description": "csl-csv, csl-json, ofac-sdn, bis-dpl, opensanctions",
                    },
                    "label": {"type": "string", "maxLength": 200},
                },
            }
        }
    },
}
MAX_UPLOAD_FILES = 8  # ofac-sdn takes three


@router.post(
    "/lists",
    status_code=201,
    response_model=ListImportOut,
    responses=ERROR_RESPONSES,
    openapi_extra={"requestBody": _UPLOAD_FORM},
)
async def import_list(request: Request, ctx: Ctx, me: Me) -> ListImportOut:
    """Import a list (upload its file, or sdn.csv, alt.csv and add.csv for ofac-sdn), then
    re-screen every approved or pending tenant against it.

    The form is read here, after authentication and the role check (a body declared as
    parameters would be parsed before them): nobody without the right spools an upload."""
    me.scope(Action.LIST_IMPORT)
    cap = ctx.settings.max_upload_bytes
    try:
        form = await request.form(
            max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES, max_part_size=64 * 1024
        )
    except (MultiPartException, ValueError) as error:
        raise InvalidRequest(f"the upload is not a valid form: {error}", field="files") from None
    fmt, label = form.get("format"), form.get("label", "")
    if not isinstance(fmt, str) or not fmt.strip() or len(fmt) > 40:
        raise InvalidRequest("say which format the list is in", field="format")
    if not isinstance(label, str) or len(label) > 200 or not label.isprintable():
        raise InvalidRequest("a label is at most 200 printable characters", field="label")
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not uploads:
        raise InvalidRequest("upload at least one file", field="files")
    contents: dict[str, bytes] = {}
    for upload in uploads:
        data = await upload.read(cap + 1)
        if len(data) > cap:
            raise InvalidRequest(f"{upload.filename} is larger than {cap} bytes", field="files")
        contents[upload.filename or "upload"] = data
    await form.close()
    return _import(ctx, me, contents, fmt.strip(), label)


def _import(ctx: Ctx, me: Me, contents: dict[str, bytes], fmt: str, label: str) -> ListImportOut:
    report, rescreened = rescreening.import_list_and_rescreen(ctx, me, contents, fmt, label=label)
    return ListImportOut(
        snapshot=ListSnapshotOut.model_validate(report.snapshot),
        replaces=report.previous,
        reverts=report.reverts,
        added=report.added,
        removed=report.removed,
        changed=report.changed,
        rescreened=_rescreen_out(rescreened),
    )


@router.get("/lists", response_model=list[ListSnapshotOut], responses=ERROR_RESPONSES)
def list_snapshots(ctx: Ctx, me: Me) -> list[ListSnapshotOut]:
    """Operator staff: the imported snapshots, newest first."""
    return [ListSnapshotOut.model_validate(r) for r in screening_lists.list_snapshots(ctx, me)]


@router.get("/lists/{old_id}/diff/{new_id}", response_model=ListDiffOut, responses=ERROR_RESPONSES)
def diff_lists(old_id: Ref, new_id: Ref, ctx: Ctx, me: Me) -> ListDiffOut:
    """Operator staff: the entries added, removed and changed between two snapshots."""
    old_id = resolve(ctx, me, Kind.LIST, old_id, Action.LIST_READ)
    new_id = resolve(ctx, me, Kind.LIST, new_id, Action.LIST_READ)
    change = screening_lists.diff_snapshots(ctx, me, old_id, new_id)
    return ListDiffOut(
        added=[entry_to_json(e) for e in change.added],
        removed=[entry_to_json(e) for e in change.removed],
        changed=[
            {"entry_id": c.new.entry_id, "name": c.new.name, "fields": list(c.fields)}
            for c in change.changed
        ],
    )


@router.get("/policy", response_model=PolicyView, responses=ERROR_RESPONSES)
def policy(
    ctx: Ctx, me: Me, as_of: Annotated[ReportDay | None, Query()] = None
) -> PolicyOut | TenantPolicyOut:
    """The policy on a day (default: today). Operator staff: the packs and rules in force and
    those that are not. Tenants: the prohibited end uses and the identification to supply."""
    moment = ctx.now()
    if as_of is not None:
        moment = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    effective = kyc.policy_on(ctx, moment)
    if me.can(Action.SCREENING_READ):
        record = effective.record()
        return PolicyOut(
            as_of=record["as_of"],
            packs=record["packs"],
            rules=record["rules"],
            inactive=record["inactive"],
        )
    view = tenant_policy_view(effective)
    return TenantPolicyOut(
        as_of=view.as_of,
        prohibited_end_uses=list(view.prohibited_end_uses),
        identification_required_of_foreign_customers=list(
            view.identification_required_of_foreign_customers
        ),
        identification_required_of_all_customers=list(
            view.identification_required_of_all_customers
        ),
    )


@router.get("/end-uses", response_model=list[EndUseOut])
def end_uses(me: Me) -> list[EndUseOut]:
    """The end-use vocabulary a tenant declares from (prohibited ones are marked)."""
    return [
        EndUseOut(code=e.code, label=e.label, prohibited=e.prohibited, description=e.description)
        for e in END_USES
    ]
