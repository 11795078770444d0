"""Compliance over HTTP: KYC cases, officer decisions, screening lists, policy, end uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, UploadFile

from gpulease.api.constraints import Line, Ref, ReportDay
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import (
    ERROR_RESPONSES,
    EndUseOut,
    KycCaseCreate,
    KycCaseOut,
    KycDecisionIn,
    ListDiffOut,
    ListImportOut,
    ListSnapshotOut,
    PartyIn,
    RescreenIn,
    RescreenOut,
)
from gpulease.compliance.end_uses import END_USES
from gpulease.compliance.model import Address
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import KycState
from gpulease.services import kyc, screening_lists
from gpulease.services.screening_lists import entry_to_json

router = APIRouter(tags=["compliance"])


def _party(p: PartyIn) -> kyc.PartyInput:
    return kyc.PartyInput(
        name=p.name,
        kind=p.kind,
        aliases=tuple(p.aliases),
        countries=tuple(p.countries),
        identifiers=tuple(p.identifiers.items()),
        addresses=tuple(Address(**a.model_dump()) for a in p.addresses),
    )


@router.post("/kyc/cases", status_code=201, response_model=KycCaseOut, responses=ERROR_RESPONSES)
def submit_case(body: KycCaseCreate, ctx: Ctx, me: Me) -> KycCaseOut:
    """Submit a tenant's case (identity, owners, officers, end uses); it is screened at once
    and then waits for a compliance officer."""
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
    )
    tenant_id = me.acting_tenant(body.tenant_id)
    return KycCaseOut.model_validate(kyc.submit_case(ctx, me, tenant_id, submission))


@router.get("/kyc/cases", response_model=list[KycCaseOut], responses=ERROR_RESPONSES)
def list_cases(
    ctx: Ctx, me: Me, state: Annotated[KycState | None, Query()] = None
) -> list[KycCaseOut]:
    cases = kyc.list_cases(ctx, me, state.value if state else None)
    return [KycCaseOut.model_validate(c) for c in cases]


@router.get("/kyc/cases/{case_id}", response_model=KycCaseOut, responses=ERROR_RESPONSES)
def show_case(case_id: Ref, ctx: Ctx, me: Me) -> KycCaseOut:
    return KycCaseOut.model_validate(kyc.get_case(ctx, me, case_id))


@router.post("/kyc/cases/{case_id}/approve", response_model=KycCaseOut, responses=ERROR_RESPONSES)
def approve_case(case_id: Ref, body: KycDecisionIn, ctx: Ctx, me: Me) -> KycCaseOut:
    """Compliance officer: approve (optionally for fewer end uses than declared)."""
    case = kyc.decide_case(
        ctx, me, case_id, approve=True, reason=body.reason, end_uses=body.end_uses
    )
    return KycCaseOut.model_validate(case)


@router.post("/kyc/cases/{case_id}/reject", response_model=KycCaseOut, responses=ERROR_RESPONSES)
def reject_case(case_id: Ref, body: KycDecisionIn, ctx: Ctx, me: Me) -> KycCaseOut:
    return KycCaseOut.model_validate(
        kyc.decide_case(ctx, me, case_id, approve=False, reason=body.reason)
    )


@router.post("/kyc/rescreen", response_model=list[RescreenOut], responses=ERROR_RESPONSES)
def rescreen(body: RescreenIn, ctx: Ctx, me: Me) -> list[RescreenOut]:
    """Compliance officer: re-screen every approved or pending case now."""
    return _rescreen_out(kyc.rescreen_now(ctx, me, body.reason))


def _rescreen_out(results: list[kyc.Rescreen]) -> list[RescreenOut]:
    return [
        RescreenOut(case_id=r.case_id, tenant_id=r.tenant_id, outcome=r.outcome, reason=r.reason)
        for r in results
    ]


@router.post("/lists", status_code=201, response_model=ListImportOut, responses=ERROR_RESPONSES)
async def import_list(
    ctx: Ctx,
    me: Me,
    files: list[UploadFile],
    format: Annotated[
        Line, Form(max_length=40, description="csl-csv, csl-json, ofac-sdn, bis-dpl, opensanctions")
    ],
    label: Annotated[Line, Form(max_length=200)] = "",
) -> ListImportOut:
    """Import a list (upload its file, or sdn.csv, alt.csv and add.csv for ofac-sdn), then
    re-screen every approved or pending tenant against it."""
    # refused before reading the upload into memory (the service checks again)
    me.require(*screening_lists.IMPORTERS, action="importing a screening list")
    cap = ctx.settings.max_upload_bytes
    contents: dict[str, bytes] = {}
    for upload in files:
        data = await upload.read(cap + 1)
        if len(data) > cap:
            raise InvalidRequest(f"{upload.filename} is larger than {cap} bytes", field="files")
        contents[upload.filename or "upload"] = data
    return _import(ctx, me, contents, format, label)


def _import(ctx: Ctx, me: Me, contents: dict[str, bytes], fmt: str, label: str) -> ListImportOut:
    report, rescreened = kyc.import_list_and_rescreen(ctx, me, contents, fmt, label=label)
    return ListImportOut(
        snapshot=ListSnapshotOut.model_validate(report.snapshot),
        replaces=report.previous,
        added=report.added,
        removed=report.removed,
        changed=report.changed,
        rescreened=_rescreen_out(rescreened),
    )


@router.get("/lists", response_model=list[ListSnapshotOut], responses=ERROR_RESPONSES)
def list_snapshots(ctx: Ctx, me: Me) -> list[ListSnapshotOut]:
    return [ListSnapshotOut.model_validate(r) for r in screening_lists.list_snapshots(ctx, me)]


@router.get("/lists/{old_id}/diff/{new_id}", response_model=ListDiffOut, responses=ERROR_RESPONSES)
def diff_lists(old_id: Ref, new_id: Ref, ctx: Ctx, me: Me) -> ListDiffOut:
    change = screening_lists.diff_snapshots(ctx, me, old_id, new_id)
    return ListDiffOut(
        added=[entry_to_json(e) for e in change.added],
        removed=[entry_to_json(e) for e in change.removed],
        changed=[
            {"entry_id": c.new.entry_id, "name": c.new.name, "fields": list(c.fields)}
            for c in change.changed
        ],
    )


@router.get("/policy", responses=ERROR_RESPONSES)
def policy(
    ctx: Ctx, me: Me, as_of: Annotated[ReportDay | None, Query()] = None
) -> dict[str, object]:
    """The policy packs and rules in force on a day (default: today), and those that are not."""
    moment = ctx.now()
    if as_of is not None:
        moment = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    return kyc.policy_on(ctx, moment).record()


@router.get("/end-uses", response_model=list[EndUseOut])
def end_uses(me: Me) -> list[EndUseOut]:
    """The end-use vocabulary a tenant declares from (prohibited ones are marked)."""
    return [
        EndUseOut(code=e.code, label=e.label, prohibited=e.prohibited, description=e.description)
        for e in END_USES
    ]
