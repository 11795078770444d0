"""``/api/v1/jobs``: submit, list, show, cancel, logs.

A job may be named by its id, a unique prefix of it or its name (``services.lookup``), a
tenant filter by the tenant's id, prefix or name. Cancelling a job that is already
cancelled answers 200 with the job as it is (a retried cancel changes nothing); cancelling
one that ended otherwise is 409 ``already_ended``.

Submissions, the most frequent request, take a short path: their route is matched first
(``submissions``, included before every router), and its handler (:class:`SubmitRoute`)
answers the common request itself, without FastAPI's dependency solving, and on PostgreSQL
without a worker thread (``services.lean_submit.submit_lean``). Invariant: whatever it does not
answer goes to FastAPI's handler with nothing done, so every request is checked, counted
and answered exactly as the route's declared dependencies say (401, 422, 429 included)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import fields
from typing import Annotated, Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, Query, Request, Response
from fastapi.routing import APIRoute

from gpulease.api.constraints import Ref
from gpulease.api.deps import (
    Ctx,
    IdempotencyKey,
    Me,
    Submitter,
    Submitting,
    auth_failed,
    bearer_token,
    recalled_submitter,
)
from gpulease.api.schemas import (
    ERROR_RESPONSES,
    AllocationOut,
    JobCancel,
    JobCreate,
    JobLogsOut,
    JobOut,
)
from gpulease.domain.access import Action
from gpulease.domain.errors import Unauthenticated
from gpulease.domain.states import JobState
from gpulease.persistence.tables import Job
from gpulease.services import auth_cache, jobs, lean_submit, names
from gpulease.services import job_logs as job_logs_service
from gpulease.services.context import ServiceContext
from gpulease.services.idempotency import Idempotent, key_fits
from gpulease.services.lookup import Kind, resolve, resolve_optional

router = APIRouter(prefix="/jobs", tags=["jobs"])
_SUBMISSION_FIELDS = {f.name for f in fields(jobs.JobSubmission)}
_NOT_STARTED = {"exit_code": None, "started_at": None, "ended_at": None, "preempt_at": None}


def job_out(job: Job, ctx: ServiceContext | None = None, *, allocation: bool = True) -> JobOut:
    """The job's answer; with ``ctx``, its tenant's name beside the id and (unless
    ``allocation`` is False, as in listings) the GPUs it holds."""
    out = JobOut.model_validate(job)
    if ctx is not None:
        out.tenant_name = names.tenant_name(ctx, job.tenant_id)
    if ctx is not None and allocation:
        out.allocation = [
            AllocationOut(node_id=node, slots=slots, gpu_serials=serials)
            for node, slots, serials in jobs.allocation(ctx, job)
        ]
    return out


class SubmitRoute(APIRoute):
    """The submission's route: FastAPI's request handling, except for the common request
    (a JSON body that validates, a bearer token this process keeps), which is handled
    here without FastAPI's dependency solving (a fifth of the request's CPU). Every other
    request goes to FastAPI's handler unchanged, which answers it as it always has (the
    same 401, 422 or 429), and nothing is counted twice: this handler counts nothing
    before it knows it will answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fastapi_handler = super().get_route_handler()

        async def handler(request: Request) -> Response:
            answered = await _submit_common(request)
            return answered if answered is not None else await fastapi_handler(request)

        return handler


async def _submit_common(request: Request) -> Response | None:
    """The common submission, decided as :func:`submit_job`'s dependencies and FastAPI's
    body validation would decide it; None: not the common case (nothing done)."""
    if request.headers.get("content-type") != "application/json":
        return None  # FastAPI's content-type rules decide the rest
    token = bearer_token(request.headers.get("authorization"))
    ctx: ServiceContext = request.app.state.ctx
    if token is None or auth_cache.recall(ctx, token, ctx.now()) is None:
        return None
    try:  # as FastAPI: the body parsed by json.loads, then validated in Python mode
        body = JobCreate.model_validate(json.loads(await request.body()))
    except ValueError:  # not JSON, or invalid (ValidationError): FastAPI's 422
        return None
    key = request.headers.get("idempotency-key")
    if key is not None and not key_fits(key):
        # FastAPI's path refuses it (422) once the token is confirmed: a kept token revoked
        # since gets 401 and uses up nothing of its tenant's budget
        return None
    who = recalled_submitter(request, token)  # checked and counted from here on
    if who is None:
        return None  # expired in between: nothing was counted
    return await _submitted(body, who, key)


async def submit_job(
    body: JobCreate, who: Submitting, idempotency_key: IdempotencyKey = None
) -> Response:
    """Queue a gang job; it starts when the scheduler finds it room (see ``wait_reason``).
    Counted per tenant: 429 past ``submissions_per_minute``."""
    return await _submitted(body, who, idempotency_key)


async def _submitted(body: JobCreate, who: Submitter, idempotency_key: str | None) -> Response:
    # The hot path: the submitter was resolved on the event loop. On PostgreSQL a fresh
    # submission runs there too, without a session (lean_submit.submit_lean);
    # anything else (SQLite, a replay, a credential to re-read, an access to write) runs
    # in one worker thread. Either returns the response's bytes (no second validation).
    submission, idem = _parsed(body, idempotency_key)
    if who.lean is not None and who.note_access_in_memory():
        made = await lean_submit.submit_lean(who.ctx, who.lean, who.credential, submission, idem)
        if made is not None:
            job, tenant_name = made  # a new job: not started, holds no GPUs
            out = JobOut.model_validate(job | _NOT_STARTED | {"tenant_name": tenant_name})
            return _created(out.model_dump_json().encode())
        content = await run_sync(_submit, submission, idem, who, False)
    else:
        content = await run_sync(_submit, submission, idem, who, True)
    return _created(content)


# The submission's route alone, included in the app before every other router: the app
# matches a request against routes in order, and submissions are by far the most frequent.
submissions = APIRouter(prefix="/jobs", tags=["jobs"])
submissions.add_api_route(
    "",
    submit_job,
    methods=["POST"],
    status_code=201,
    response_model=JobOut,
    responses=ERROR_RESPONSES,
    route_class_override=SubmitRoute,
)


def _created(content: bytes) -> Response:
    return Response(content, status_code=201, media_type="application/json")


def _parsed(
    body: JobCreate, idempotency_key: str | None
) -> tuple[jobs.JobSubmission, Idempotent | None]:
    values = body.model_dump()
    submission = jobs.JobSubmission(**{k: v for k, v in values.items() if k in _SUBMISSION_FIELDS})
    return submission, Idempotent.of(idempotency_key, "job.submit", body.model_dump(mode="json"))


def _submit(
    submission: jobs.JobSubmission, idem: Idempotent | None, who: Submitter, note: bool
) -> bytes:
    if note:
        who.note_access()
    try:  # one transaction: the credential is confirmed in it (revoked since: 401)
        job = jobs.submit(who.ctx, who.credential, submission, idem)
    except Unauthenticated:
        auth_failed(who)
        raise
    # A new job holds no GPUs; its tenant's name comes from the process's cache.
    return job_out(job, who.ctx, allocation=False).model_dump_json().encode()


@router.get("", response_model=list[JobOut], responses=ERROR_RESPONSES)
def list_jobs(
    ctx: Ctx,
    me: Me,
    state: Annotated[JobState | None, Query()] = None,
    tenant_id: Annotated[Ref | None, Query(description="operators only")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[JobOut]:
    tenant = resolve_optional(ctx, me, Kind.TENANT, tenant_id, Action.JOB_READ)
    found = jobs.list_jobs(
        ctx, me, state=state.value if state else None, tenant_id=tenant, limit=limit
    )
    return [job_out(job, ctx, allocation=False) for job in found]


@router.get("/{job_id}", response_model=JobOut, responses=ERROR_RESPONSES)
def show_job(job_id: Ref, ctx: Ctx, me: Me) -> JobOut:
    job_id = resolve(ctx, me, Kind.JOB, job_id, Action.JOB_READ)
    return job_out(jobs.get_job(ctx, me, job_id), ctx)


@router.post("/{job_id}/cancel", response_model=JobOut, responses=ERROR_RESPONSES)
def cancel_job(job_id: Ref, ctx: Ctx, me: Me, body: JobCancel | None = None) -> JobOut:
    job_id = resolve(ctx, me, Kind.JOB, job_id, Action.JOB_CANCEL)
    return job_out(jobs.cancel(ctx, me, job_id, body.reason if body else ""), ctx)


@router.get("/{job_id}/logs", response_model=JobLogsOut, responses=ERROR_RESPONSES)
def job_logs(
    job_id: Ref,
    ctx: Ctx,
    me: Me,
    offset: Annotated[int, Query(ge=0, description="byte offset to read from")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=job_logs_service.MAX_CHUNK, description="bytes to read at most")
    ] = job_logs_service.DEFAULT_CHUNK,
) -> JobLogsOut:
    """A bounded chunk of the job's log; follow a running job by asking from ``next_offset``
    until ``complete``."""
    job_id = resolve(ctx, me, Kind.JOB, job_id, Action.JOB_LOGS)
    chunk = job_logs_service.read_chunk(ctx, me, job_id, offset, limit)
    return JobLogsOut(
        job_id=chunk.job.id,
        state=chunk.job.state,
        text=chunk.text,
        offset=chunk.offset,
        next_offset=chunk.next_offset,
        size=chunk.size,
        complete=chunk.complete,
    )
