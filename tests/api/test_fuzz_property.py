"""A property over the whole API: no input yields a 5xx, and none breaks the scheduler.

schemathesis reads the app's OpenAPI document and drives hypothesis over every operation,
with inputs that fit the schema (positive) and inputs that do not (negative: wrong types,
out-of-range numbers, missing fields...). Each example is sent in process to the real app
over the demo (SQLite, and PostgreSQL), as a tenant-admin or as the operator-admin. So that
examples get past the first refusals (no such job, end use not approved) to the services,
the database and the scheduler, hypothesis may also anchor an example: its path ids become
real ids of the demo (a job, a lease, a node, a tenant, a case), its body's ``purpose``,
``end_uses``, ``site_id`` and ``tenant_id`` real values, and a job submission something to
run with a gang that fits and any float >= 0 for its duration and walltime; everything else
stays generated. After every write the app accepts, and once more at the end, a scheduler
pass over whatever the examples left behind must run clean (nothing raised, no error
logged) and advance the heartbeat of every site. The number of examples is bounded and the
run derandomized, so the property is the same on every run of a profile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from gpulease.api.app import OPENAPI_URL, create_app
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.tables import SchedulerStatus, Site
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduling import LiveScheduler
from hypothesis_profiles import examples

pytestmark = pytest.mark.slow  # generated requests on both backends: make test, not test-fast
# per backend: 200 under make test (ten times as many nightly, tests/hypothesis_profiles.py)
EXAMPLES = examples(200)
# the writes whose rows the scheduler and the officers' views read: fuzzed more often
WRITE_WEIGHT = {"POST /api/v1/jobs": 8, "POST /api/v1/leases": 4, "POST /api/v1/kyc/cases": 4}
# the end uses the demo approved for each tenant-admin's tenant (the operator's: any)
APPROVED = {
    "admin@inftech.example": ["drug-discovery", "health-research", "financial-services-ai"],
    "admin@bank.example": ["financial-services-ai"],
    "admin@university.example": ["education", "scientific-computing"],
}
PURPOSES = sorted({p for uses in APPROVED.values() for p in uses})


def _known_ids(ops: TestClient, tenants: dict[str, TestClient]) -> dict[str, list[Any]]:
    """Real ids of the demo by parameter name, with a job and a lease of every tenant;
    ``uses``: (tenant id, an end use approved for it)."""
    uses: list[tuple[str, str]] = []
    for email, client in tenants.items():
        tenant_id = client.get("/me").json()["tenant_id"]
        uses += [(tenant_id, use) for use in APPROVED[email]]
        job = {"gpus": 8, "purpose": APPROVED[email][0], "command": "true"}
        assert client.post("/jobs", json=job).status_code == 201
        client.post(
            "/leases",
            json={"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z", "gpus": 8},
        )
    ids = {
        "job_id": [j["id"] for j in ops.get("/jobs").json()],
        "lease_id": [lease["id"] for lease in ops.get("/leases").json()],
        "node_id": [n["id"] for n in ops.get("/nodes").json()[:4]],
        "tenant_id": [t["id"] for t in ops.get("/tenants").json()],
        "case_id": [c["id"] for c in ops.get("/kyc/cases").json()],
        "user_id": [ops.get("/me").json()["user_id"]],
        "site_id": ["jkt1"],
        "end_uses": [[p] for p in PURPOSES],
        "uses": uses,
    }
    return {name: values for name, values in ids.items() if values}


def _often(data: st.DataObject, label: str) -> bool:
    """True three times in four (hypothesis draws 0, its simplest value, most)."""
    return data.draw(st.integers(0, 3), label=label) != 3


def _anchor(case: Any, caller: str, known: dict[str, list[Any]], data: st.DataObject) -> None:
    """Let some of ``case``'s ids and end uses be real ones (drawn by hypothesis)."""
    known = {**known, "purpose": APPROVED.get(caller, PURPOSES)}
    for name in list(case.path_parameters or {}):
        if name in known and _often(data, f"real {name}"):
            case.path_parameters[name] = data.draw(st.sampled_from(known[name]))
    if not isinstance(case.body, dict):
        return
    for name in ("purpose", "end_uses", "site_id", "tenant_id"):
        if name in case.body and _often(data, f"real {name}"):
            case.body[name] = data.draw(st.sampled_from(known[name]))
    if case.operation.label == "POST /api/v1/jobs" and _often(data, "runs"):
        # a job that would be queued: something to run, a gang that fits, an approved use,
        # any finite float >= 0 for its times (requests refuses NaN); the rest as generated
        case.body.setdefault("command", data.draw(st.text(max_size=30), label="command"))
        case.body["gpus"] = data.draw(st.integers(1, 72), label="gpus")
        for name in ("duration_s", "walltime_s"):
            case.body[name] = data.draw(
                st.none() | st.floats(min_value=0, allow_infinity=False), label=name
            )
        case.body.pop("gpus_per_node", None)
        case.body.pop("lease_id", None)
        if caller in APPROVED:
            case.body["purpose"] = data.draw(st.sampled_from(APPROVED[caller]), label="use")
            case.body.pop("tenant_id", None)
        else:  # the operator submits for a tenant
            tenant_id, use = data.draw(st.sampled_from(known["uses"]), label="for")
            case.body.update(tenant_id=tenant_id, purpose=use)


def _heartbeats(ctx: ServiceContext) -> dict[str, int]:
    with ctx.db.transaction(write=False) as tx:
        sites = [s.id for s in tx.all(tx.select(Site))]
        rows = {r.site_id: r.ticks for r in tx.all(tx.select(SchedulerStatus))}
    return {site: rows.get(site, 0) for site in sites}


class _Errors(logging.Handler):
    """The error records logged meanwhile (a failed site pass is logged, not raised)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _scheduler_pass(scheduler: LiveScheduler, errors: _Errors) -> None:
    """One pass must raise nothing, log no error and advance every site's heartbeat."""
    before = _heartbeats(scheduler.ctx)
    errors.records.clear()
    reports = scheduler.tick()
    logged = [errors.format(r) for r in errors.records]
    assert not logged, "\n".join(logged)
    assert len(reports) == len(before)
    after = _heartbeats(scheduler.ctx)
    assert all(after[site] == before[site] + 1 for site in before), (before, after)


@pytest.fixture
def logged_errors() -> Iterator[_Errors]:
    errors = _Errors()
    errors.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        yield errors
    finally:
        root.removeHandler(errors)


def test_no_input_yields_a_server_error_or_breaks_the_scheduler(
    ctx: ServiceContext,
    demo: list[DemoUser],
    api: Callable[[str | None], TestClient],
    logged_errors: _Errors,
) -> None:
    app = create_app(
        ctx=ServiceContext(
            ctx.db,
            settings=ctx.settings.model_copy(update={"run_scheduler": False}),
            clock=ctx.clock,
            cache=ctx.cache,
        )
    )
    schema = schemathesis.openapi.from_asgi(OPENAPI_URL, app)
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        weight = WRITE_WEIGHT.get(operation.label, 1)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies += [operation.as_strategy(generation_mode=mode)] * weight
    cases = st.sampled_from(strategies).flatmap(lambda strategy: strategy)
    callers = [u for u in demo if u.role in ("tenant-admin", "operator-admin")]
    ops = api(next(u.token for u in callers if u.role == "operator-admin"))
    known = _known_ids(ops, {u.email: api(u.token) for u in callers if u.email in APPROVED})
    scheduler = LiveScheduler(ctx, SimulatedExecutor())

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, caller=st.sampled_from(callers), data=st.data())
    def send(case: Any, caller: DemoUser, data: st.DataObject) -> None:
        _anchor(case, caller.email, known, data)
        response = case.call(headers={"Authorization": f"Bearer {caller.token}"})
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} as {caller.email}: "
            f"{response.status_code} {response.text[:300]}"
        )
        if case.method == "POST" and response.status_code in (200, 201):
            _scheduler_pass(scheduler, logged_errors)  # what was just accepted must schedule

    send()
    _scheduler_pass(scheduler, logged_errors)
    assert api(None).get("/health").json()["status"] == "ok"
