"""Degraded leased capacity (``metering.degradation``): a site's shortfall of up GPUs against
its active guarantees, shared among the leases, rated as an SLA credit with its evidence.

The literal example: a site of one NVL72 rack (18 trays of 4 GPUs), one lease of all 72
GPUs at 3.50 per GPU-hour; tray 05 is down from 10:00 to 13:00 and nothing replaces it:
4 GPUs x 3 h = 12 GPU-hours credited at the committed rate (multiple 1) = 42.00.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from metering_support import V1, at

from gpulease.metering.degradation import DownHistory, SiteLease, SiteNode, degradations, shares
from gpulease.metering.periods import Period
from gpulease.metering.plans import PlanSchedule
from gpulease.metering.rating import LeaseTerm, LineKind, SlaEvidence, SlaRule, rate_period

MARCH = Period(at("2026-03-01 00:00"), at("2026-04-01 00:00"))
RULE = SlaRule(
    slo_wait=timedelta(hours=1),
    wait_multiple=Decimal(1),
    degraded_multiple=Decimal(1),
    cap_share=Decimal("0.3"),
)


def _rack(site: str, trays: int) -> list[SiteNode]:
    return [SiteNode(f"{site}-n{n:02d}", site, 4) for n in range(trays)]


def _history(changes: list[tuple[str, str, bool]], initial: dict[str, bool]) -> DownHistory:
    history = DownHistory(MARCH)
    for node, down in initial.items():
        history.initial(node, down)
    for node, when, down in changes:
        history.change(node, at(when), down)
    return history


def test_a_tray_down_three_hours_under_a_full_lease_is_credited() -> None:
    nodes = _rack("s1", 18)
    lease = SiteLease("L72", "s1", 72, at("2026-03-01 00:00"), at("2026-04-01 00:00"))
    down = _history(
        [("s1-n05", "2026-03-10 10:00", True), ("s1-n05", "2026-03-10 13:00", False)],
        {n.id: False for n in nodes},
    ).spans()
    [d] = degradations(nodes, down, [lease], MARCH)
    assert (d.lease_id, d.gpus_down, d.start, d.end) == (
        "L72",
        4,
        at("2026-03-10 10:00"),
        at("2026-03-10 13:00"),
    )
    assert "s1-n05" in d.cause
    assert "68 of 72 GPUs up for 72 guaranteed" in d.cause

    term = LeaseTerm("L72", "acme", 72, lease.start, lease.end, rate=Decimal("3.50"))
    rated = rate_period(
        "acme",
        MARCH,
        [],
        [term],
        {"acme": PlanSchedule([V1])},
        RULE,
        SlaEvidence(degradations=[d]),
    )
    [line] = [ln for ln in rated.lines if ln.kind is LineKind.SLA_DEGRADED]
    assert line.gpu_seconds == Decimal(4 * 3 * 3600)
    assert line.unit_price == Decimal("-3.50")
    assert line.amount == Decimal("-42.00")
    [evidence] = line.evidence
    assert "4 GPUs down 2026-03-10T10:00:00+00:00..2026-03-10T13:00:00+00:00" in evidence
    assert "s1-n05" in evidence


def test_spare_capacity_replaces_a_tray_and_no_credit_is_due() -> None:
    nodes = _rack("s1", 19)  # 76 GPUs for a 72-GPU lease: one spare tray
    lease = SiteLease("L72", "s1", 72, MARCH.start, MARCH.end)
    one = _history([("s1-n05", "2026-03-10 10:00", True)], {}).spans()
    assert degradations(nodes, one, [lease], MARCH) == []
    # a second tray down beyond the spare: 4 GPUs short from then to the month's end
    two = _history(
        [("s1-n05", "2026-03-10 10:00", True), ("s1-n06", "2026-03-20 00:00", True)], {}
    ).spans()
    [d] = degradations(nodes, two, [lease], MARCH)
    assert (d.gpus_down, d.start, d.end) == (4, at("2026-03-20 00:00"), MARCH.end)


def test_a_shortfall_is_shared_in_proportion_and_adds_up() -> None:
    nodes = _rack("s1", 18)
    a = SiteLease("A", "s1", 48, MARCH.start, MARCH.end)
    b = SiteLease("B", "s1", 24, MARCH.start, MARCH.end)
    assert shares(4, [a, b]) == {"A": 3, "B": 1}  # 2.67 and 1.33: the larger remainder wins
    assert shares(3, [a, b]) == {"A": 2, "B": 1}
    assert shares(100, [a, b]) == {"A": 48, "B": 24}  # never beyond a lease's GPUs
    down = _history(
        [("s1-n00", "2026-03-02 00:00", True), ("s1-n00", "2026-03-02 06:00", False)], {}
    ).spans()
    found = degradations(nodes, down, [a, b], MARCH)
    assert sorted((d.lease_id, d.gpus_down) for d in found) == [("A", 3), ("B", 1)]
    # B ended before the tray went down: 68 up for A's 48 guaranteed, nothing short
    b_early = SiteLease("B", "s1", 24, MARCH.start, at("2026-03-01 12:00"))
    assert degradations(nodes, down, [a, b_early], MARCH) == []


def test_down_since_before_the_period_and_clock_steps() -> None:
    history = DownHistory(MARCH)
    history.initial("n1", True)  # down before March
    history.change("n1", at("2026-03-03 00:00"), False)
    history.initial("n2", False)
    history.change("n2", at("2026-03-05 00:00"), True)
    history.change("n2", at("2026-03-04 00:00"), False)  # the clock stepped back: no earlier
    history.initial("n3", False)
    history.change("n3", at("2026-03-31 00:00"), True)  # still down at the month's end
    spans = history.spans()
    assert spans["n1"] == [(MARCH.start, at("2026-03-03 00:00"))]
    assert "n2" not in spans  # up again at the same instant: nothing down
    assert spans["n3"] == [(at("2026-03-31 00:00"), MARCH.end)]


def test_evidence_names_a_bounded_number_of_nodes() -> None:
    nodes = _rack("s1", 18)
    lease = SiteLease("L72", "s1", 72, MARCH.start, MARCH.end)
    down = _history([(f"s1-n{i:02d}", "2026-03-10 10:00", True) for i in range(14)], {}).spans()
    [d] = degradations(nodes, down, [lease], MARCH)
    assert d.gpus_down == 56
    assert "s1-n11 and 2 more nodes down (56 GPUs)" in d.cause
    assert "s1-n12" not in d.cause
