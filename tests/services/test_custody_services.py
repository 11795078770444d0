"""Chain of custody and location attestation on SQLite and PostgreSQL, over the demo: the
story of a chip, recording events in order (and refusing them out of order), the executor's
attestations, a node that falls silent or is seen elsewhere drained until an operator
decides, and node agents' signed statements (a forged or replayed one refused)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, Denied, InvalidRequest, NotFound, Unauthenticated
from gpulease.domain.states import NodeState
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.inventory.attestation import Statement, sign
from gpulease.persistence.tables import (
    AuditRecord,
    CustodyEvent,
    GpuAllocation,
    Node,
    NodeAttestation,
)
from gpulease.services import attestation, custody, inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduling import LiveScheduler
from live_support import tick_and_attest

SERIAL = "AIV-NVL72-G000000"  # rack 1, tray 1, slot 0
NODE = "jkt1-r00-n00"


def _audit(ctx: ServiceContext, action: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            tx.select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
        )


def _node(ctx: ServiceContext, node_id: str = NODE) -> Node:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Node, node_id, "node")


def test_the_story_of_a_demo_chip(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    officer: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
) -> None:
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(gpus=72, purpose="financial AI: risk", command="t", duration_s=600),
    )
    [report] = tick_and_attest(scheduler)
    assert report.started == [job.id]
    clock.advance(ctx.settings.attestation_interval_s)
    tick_and_attest(scheduler)  # the executor's first sweep: one interval after the first pass
    with ctx.db.transaction(write=False) as tx:
        used = tx.first(tx.select(GpuAllocation).where(GpuAllocation.job_id == job.id))
    assert used is not None

    story = custody.story(ctx, officer, used.gpu_serial)
    chain = [(e["unit_kind"], e["event"], e["holder"]) for e in story["chain"]]
    nvidia, aivres, indosat = (
        "NVIDIA Corporation",
        "Aivres Systems Inc.",
        "Indosat Ooredoo Hutchison",
    )
    assert chain == [
        ("gpu", "manufactured", nvidia),
        ("gpu", "sold", aivres),
        ("gpu", "shipped", aivres),
        ("gpu", "received", aivres),
        ("gpu", "installed", aivres),
        ("rack", "manufactured", aivres),
        ("rack", "sold", indosat),
        ("rack", "shipped", indosat),
        ("rack", "received", indosat),
        ("rack", "installed", indosat),
    ]
    assert story["holder"] == indosat
    assert story["chain_problems"] == []
    assert all(e["audit_id"] is not None for e in story["chain"])  # each one in the trail
    sales = [e for e in story["chain"] if e["event"] == "sold"]
    assert [(s["from_party"], s["to_party"]) for s in sales] == [
        (nvidia, aivres),
        (aivres, indosat),
    ]
    assert all(s["documents"]["invoice"] for s in sales)
    assert sales[1]["documents"]["export_authorization"].startswith("NLR")
    assert "INF Tech" in sales[1]["documents"]["end_user_statement"]
    assert story["where"]["site_id"] == "jkt1"
    assert story["where"]["city"] == "Jakarta"
    # the scheduler's pass had the simulated executor attest every node
    assert story["attestation"]["site_id"] == "jkt1"
    assert story["attestation"]["agrees"] is True
    assert story["attestation"]["source"] == "executor"
    [ran] = story["jobs"]
    assert (ran["job_id"], ran["tenant"], ran["purpose"]) == (job.id, "INF Tech", job.purpose)
    assert ran["running"] is True

    # every custody event is in the audit trail (hence the ledger): per rack for its chips,
    # one record naming all 32 racks per rack event
    records = _audit(ctx, "custody.record")
    assert len(records) == 32 * 5 + 5
    assert any(used.gpu_serial in (r.after or {}).get("units", []) for r in records)

    assert custody.story(ctx, operator, SERIAL)["gpu"]["serial"] == SERIAL
    with pytest.raises(Denied):
        custody.story(ctx, inftech, SERIAL)  # tenants never read custody
    with pytest.raises(NotFound):
        custody.story(ctx, officer, "AIV-NVL72-G999999")


def test_recording_events_in_order_only(
    ctx: ServiceContext, operator: Principal, officer: Principal, inftech: Principal
) -> None:
    now = ctx.now()
    repair = custody.EventRequest(
        "gpu", SERIAL, "repaired", now, holder="Indosat Ooredoo Hutchison", note="ticket 42"
    )
    row = custody.record_event(ctx, operator, repair)
    assert (row.unit_id, row.event, row.recorded_by) == (SERIAL, "repaired", operator.user_id)
    [record] = [r for r in _audit(ctx, "custody.record") if r.subject_id == SERIAL]
    assert record.after is not None
    assert (record.after["event"], record.after["note"]) == ("repaired", "ticket 42")
    assert [e["event"] for e in custody.story(ctx, officer, SERIAL)["chain"]][-1] == "repaired"

    # out of order: a chip installed in its tray cannot be received again
    with pytest.raises(InvalidRequest) as refused:
        custody.record_event(
            ctx, operator, custody.EventRequest("gpu", SERIAL, "received", now, holder="X")
        )
    assert refused.value.details["field"] == "event"
    assert "cannot be received now" in refused.value.message
    # a rack (named by its serial) sold by someone who does not hold it
    with pytest.raises(InvalidRequest, match="held by 'Indosat Ooredoo Hutchison'"):
        custody.record_event(
            ctx,
            operator,
            custody.EventRequest(
                "rack",
                "AIV-NVL72-0001",
                "sold",
                now,
                from_party="Aivres Systems Inc.",
                to_party="Someone",
                invoice="INV",
            ),
        )
    # a tray has no chain yet: it must be manufactured first
    with pytest.raises(InvalidRequest, match="before it was manufactured"):
        custody.record_event(
            ctx, operator, custody.EventRequest("tray", NODE, "installed", now, holder="I")
        )
    with pytest.raises(NotFound):
        custody.record_event(
            ctx, operator, custody.EventRequest("gpu", "NO-SUCH", "repaired", now, holder="I")
        )
    for who in (officer, inftech):
        with pytest.raises(Denied):
            custody.record_event(ctx, who, repair)
    assert len([r for r in _audit(ctx, "custody.record") if r.subject_id == SERIAL]) == 1


def _alerts(ctx: ServiceContext, who: Principal, **filters: Any) -> list[tuple[str, str]]:
    return [(a.node_id, a.kind) for a in attestation.list_alerts(ctx, who, **filters)]


def test_a_silent_node_is_flagged_and_drained_until_an_operator_clears_it(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    officer: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    tick_and_attest(scheduler)
    with ctx.db.transaction(write=False) as tx:
        assert tx.all(tx.select(NodeAttestation)) == []  # the first sweep waits an interval
    clock.advance(ctx.settings.attestation_interval_s)
    tick_and_attest(scheduler)
    with ctx.db.transaction(write=False) as tx:
        assert len(tx.all(tx.select(NodeAttestation))) == 576
    assert len(_audit(ctx, "attestation.sweep")) == 1
    executor.unseen.add(NODE)  # its attestations stop
    interval = ctx.settings.attestation_interval_s
    clock.advance(ctx.settings.attestation_stale_s - interval)
    tick_and_attest(scheduler)  # not yet stale
    assert _alerts(ctx, officer) == []
    clock.advance(2 * interval)
    tick_and_attest(scheduler)
    assert _alerts(ctx, officer) == [(NODE, "stale")]  # the officer sees it too
    node = _node(ctx)
    assert node.state == "draining"
    assert node.state_reason.startswith("attestation stale: last attested")
    assert _node(ctx, "jkt1-r00-n01").state == "up"
    with pytest.raises(Denied):
        attestation.list_alerts(ctx, inftech)

    # bringing the node up without deciding the alert does not stick
    inventory.set_node_state(ctx, operator, NODE, NodeState.UP, "try")
    clock.advance(interval)
    tick_and_attest(scheduler)
    assert _node(ctx).state == "draining"
    assert _alerts(ctx, officer) == [(NODE, "stale")]  # one open alert, not two

    [alert] = attestation.list_alerts(ctx, officer, state="open")
    with pytest.raises(Denied):
        attestation.clear_alert(ctx, officer, alert.id, "officers do not decide")
    done = attestation.clear_alert(ctx, operator, alert.id, "agent replaced; node inspected")
    assert (done.alert.state, done.node_state) == ("cleared", "up")
    assert _alerts(ctx, officer, state="open") == []
    with pytest.raises(Exception, match="already 'cleared'"):
        attestation.clear_alert(ctx, operator, alert.id, "twice")
    # the executor sees it again: no new alert
    executor.unseen.discard(NODE)
    clock.advance(interval)
    tick_and_attest(scheduler)
    assert _alerts(ctx, officer, state="open") == []
    actions = [r.action for r in _audit(ctx, "attestation.alert")]
    actions += [r.action for r in _audit(ctx, "attestation.clear")]
    assert actions == ["attestation.alert", "attestation.clear"]


def test_a_node_seen_at_another_site_is_drained(
    ctx: ServiceContext,
    clock: ManualClock,
    officer: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    tick_and_attest(scheduler)
    executor.relocated[NODE] = "sgp1"
    clock.advance(ctx.settings.attestation_interval_s)
    tick_and_attest(scheduler)  # the first sweep sees it elsewhere
    [alert] = attestation.list_alerts(ctx, officer)
    assert (alert.node_id, alert.kind, alert.state) == (NODE, "mismatch", "open")
    assert "attested at site sgp1" in alert.detail
    assert _node(ctx).state == "draining"
    story = custody.story(ctx, officer, SERIAL)
    assert story["attestation"]["agrees"] is False
    assert story["open_alerts"] == 1


def test_signed_agent_attestations(
    ctx: ServiceContext, clock: ManualClock, operator: Principal, officer: Principal
) -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw().hex()
    with pytest.raises(Denied):
        attestation.register_key(ctx, officer, NODE, public)
    registered = attestation.register_key(ctx, operator, "AIV-NVL72-0001-T01", public)
    assert registered.node_id == NODE  # named by its serial

    def statement(site: str = "jkt1", nonce: str = "ab" * 8) -> Statement:
        return Statement(NODE, site, clock.now(), nonce)

    first = statement()
    row = attestation.submit(ctx, first.as_dict(), sign(key, first))
    assert (row.site_id, row.source, row.key_id) == ("jkt1", "agent", registered.key_id)
    [record] = _audit(ctx, "attestation.accept")
    assert record.after is not None
    assert record.after["statement"] == first.as_dict()
    assert record.after["signature"] == sign(key, first)

    # forged: signed by another key, or one byte of the statement changed after signing
    clock.advance(1)
    forged = statement()
    with pytest.raises(Unauthenticated):
        attestation.submit(ctx, forged.as_dict(), sign(Ed25519PrivateKey.generate(), forged))
    with pytest.raises(Unauthenticated):
        attestation.submit(ctx, {**forged.as_dict(), "site_id": "jkt2"}, sign(key, forged))
    # replayed: the first statement again
    with pytest.raises(InvalidRequest, match="replay"):
        attestation.submit(ctx, first.as_dict(), sign(key, first))
    assert len(_audit(ctx, "attestation.accept")) == 1

    # a signed statement from elsewhere drains the node at once
    away = statement("sgp1", "cd" * 8)
    attestation.submit(ctx, away.as_dict(), sign(key, away))
    assert [(a.node_id, a.kind) for a in attestation.list_alerts(ctx, officer)] == [
        (NODE, "mismatch")
    ]
    assert _node(ctx).state == "draining"

    # a node with a key that never attests goes stale; nodes with neither are not expected
    with pytest.raises(Conflict):  # one node's key never vouches for another node
        attestation.register_key(ctx, operator, "jkt1-r00-n01", public)
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    attestation.register_key(ctx, operator, "jkt1-r00-n01", other)
    clock.advance(ctx.settings.attestation_stale_s + 1)
    attestation.check(ctx, clock.now())
    found = sorted((a.node_id, a.kind) for a in attestation.list_alerts(ctx, officer))
    assert found == [(NODE, "mismatch"), ("jkt1-r00-n01", "stale")]
    assert _node(ctx, "jkt1-r00-n01").state == "draining"
    assert _node(ctx, "jkt1-r00-n02").state == "up"


def test_a_custody_row_changed_in_sql_is_named(ctx: ServiceContext, officer: Principal) -> None:
    """The audit trail (which the ledger covers) says what each event was: a row changed,
    or added, in SQL behind gpulease's back matches none, and the story names it."""
    with ctx.db.transaction() as tx:
        tx.session.execute(
            update(CustodyEvent)
            .where(CustodyEvent.unit_id == SERIAL, CustodyEvent.event == "sold")
            .values(to_party="Someone Else", holder="Someone Else")
        )
        tx.add(
            CustodyEvent(
                unit_kind="gpu",
                unit_id=SERIAL,
                at=ctx.now(),
                event="repaired",
                holder="Indosat Ooredoo Hutchison",
                location="",
            )
        )
    story = custody.story(ctx, officer, SERIAL)
    unmatched = [(e["event"], e["holder"]) for e in story["chain"] if e["audit_id"] is None]
    assert unmatched == [("sold", "Someone Else"), ("repaired", "Indosat Ooredoo Hutchison")]
    assert len([p for p in story["chain_problems"] if "matches no audit record" in p]) == 2
    # another chip of the same rack: untouched, nothing to say
    other = custody.story(ctx, officer, "AIV-NVL72-G000001")
    assert other["chain_problems"] == []


class HeldReports:
    """An executor's location reports that hold the sweep until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def locations(self, nodes: Mapping[str, str]) -> dict[str, str]:
        self.entered.set()
        assert self.release.wait(30)
        return dict(nodes)


def test_the_sweep_runs_beside_the_pass_never_inside_it(
    ctx: ServiceContext, clock: ManualClock, demo: list[DemoUser], scheduler: LiveScheduler
) -> None:
    """A pass that finds a sweep due starts it and returns without waiting for it; a sweep
    still running when the next one is due makes that one skip, never a second beside it."""
    held = HeldReports()
    scheduler.attestor.reports = held
    scheduler.tick()  # the first sweep is due one interval on
    clock.advance(ctx.settings.attestation_interval_s)
    scheduler.tick()  # returns while the sweep is held
    assert held.entered.wait(30)
    with ctx.db.transaction(write=False) as tx:
        assert tx.all(tx.select(NodeAttestation)) == []
    clock.advance(ctx.settings.attestation_interval_s)
    scheduler.tick()
    assert scheduler.attestor.skipped == 1
    held.release.set()
    assert scheduler.attestor.wait(30)
    with ctx.db.transaction(write=False) as tx:
        assert len(tx.all(tx.select(NodeAttestation))) == 576
