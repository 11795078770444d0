"""``/ui/usage`` in-process on the demo (SQLite and PostgreSQL): the metered GPU-hours of a
month by tenant and day, as SVG charts and a table, for each role; a tenant sees its own
usage only and never another tenant's name."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal

from fastapi.testclient import TestClient

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.services import jobs
from gpulease.services.context import ServiceContext
from gpulease.services.metering import TenantUsage
from gpulease.services.scheduling import LiveScheduler
from gpulease.web.usage_views import usage_view

SVG = "{http://www.w3.org/2000/svg}"


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, re.S)]


def _row(html: str, name: str) -> list[str]:
    found = re.search(rf"<tr data-tenant=[^>]*><td>{re.escape(name)}</td>(.*?)</tr>", html, re.S)
    assert found is not None, name
    return re.findall(r'<td class="num">([^<]*)</td>', found.group(1))


def test_the_month_by_tenant_and_day_for_each_role(
    viewers: dict[str, TestClient],
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    bank: Principal,
    inftech: Principal,
) -> None:
    for who, gpus in ((bank, 8), (inftech, 72)):
        jobs.submit(
            ctx,
            who,
            jobs.JobSubmission(
                gpus=gpus, purpose="financial-services-ai: risk", command="x", duration_s=1800
            ),
        )
    scheduler.tick()
    clock.advance(3600)
    scheduler.tick()  # both ended after half an hour: closed allocations
    staff = viewers["operator"].get("/ui/usage", params={"month": "2026-03"})
    assert staff.status_code == 200, staff.text
    assert _row(staff.text, "INF Tech")[0] == "36.0"  # guaranteed GPU-hours
    assert _row(staff.text, "Bank Nusantara Digital")[3] == "4.0"  # total
    bars, lines = _svgs(staff.text)
    titles = ["".join(t.itertext()) for t in bars.iter(f"{SVG}title")]
    assert any(t.startswith("INF Tech: 36 GPU-h") for t in titles)
    assert len(list(lines.iter(f"{SVG}polyline"))) == 2
    assert "03-02" in "".join("".join(t.itertext()) for t in lines.iter(f"{SVG}text"))

    own = viewers["bank"].get("/ui/usage", params={"month": "2026-03"})
    assert own.status_code == 200, own.text
    assert _row(own.text, "Bank Nusantara Digital")[3] == "4.0"
    assert "INF Tech" not in own.text
    foreign = viewers["bank"].get("/ui/usage", params={"tenant": inftech.tenant_id})
    assert foreign.status_code == 404
    assert "INF Tech" not in foreign.text
    member = viewers["member"].get("/ui/usage", params={"month": "2026-03"})
    assert member.status_code == 200
    assert _row(member.text, "Universitas Teknologi Jakarta")[3] == "0.0"
    assert "INF Tech" not in member.text
    assert "Bank Nusantara" not in member.text
    for bad in ("2026-13", "1999-12", "0000-01", "march"):
        assert viewers["operator"].get("/ui/usage", params={"month": bad}).status_code == 422
    empty = viewers["operator"].get("/ui/usage", params={"month": "2026-05"})
    assert empty.status_code == 200
    assert "no data in this period" in empty.text


def test_many_tenants_fold_into_other_tenants() -> None:
    totals = [
        TenantUsage(f"t{i:02}", Decimal(3600 * (i + 1)), Decimal(0), Decimal(0), Decimal(0))
        for i in range(15)
    ]
    view = usage_view(
        "2026-03", totals, [("03-01", totals)], {f"t{i:02}": f"Tenant {i}" for i in range(15)}
    )
    assert [r.name for r in view.rows[:2]] == ["Tenant 14", "Tenant 13"]
    assert len(view.lines) == 12
    assert view.lines[-1].name == "other tenants"
    assert view.lines[-1].values == (Decimal("10.0"),)  # 1 + 2 + 3 + 4 hours
    assert view.total == Decimal(120)
