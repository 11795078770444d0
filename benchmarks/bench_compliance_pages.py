"""Benchmark: what the compliance pages cost, in CPU per request and bytes sent.

The demo is built on a throwaway SQLite file, the shipped CSL sample imported, and two cases
submitted for review: a small one (a listed 60 % owner, a director) and a large one (200
declared parties, each holding 0.4 % of the tenant, a director per ten). Each page is then
requested N times in-process (the real app through Starlette's TestClient, with a session
cookie as a browser sends it) as the compliance officer and as a tenant. CPU is the
process's (``time.process_time``), the median of the N; bytes are the body as sent.

    python benchmarks/bench_compliance_pages.py [--requests 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient

from gpulease.api.app import create_app
from gpulease.compliance.case_graph import TENANT, DeclaredParty, DeclaredRole, DeclaredStake
from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.data import locate, shipped_lists
from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.services import demo, identity, kyc, screening_lists
from gpulease.services.context import ServiceContext
from gpulease.settings import Settings
from gpulease.web.session import SESSION_COOKIE

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _case(ctx: ServiceContext, operator: Principal, name: str, size: int) -> str:
    tenant = identity.create_tenant(ctx, operator, name=name, country="SG", kind="lab")
    parties = [DeclaredParty("inst", kyc.PartyInput("54th Research Institute of China"))]
    stakes = [DeclaredStake("inst", TENANT, Decimal(10))]
    roles = []
    for i in range(size):
        parties.append(DeclaredParty(f"p{i}", kyc.PartyInput(f"Holder {i} Pte Ltd")))
        stakes.append(DeclaredStake(f"p{i}", TENANT, Decimal("0.4")))
        if i % 10 == 0:
            roles.append(DeclaredRole(f"p{i}", TENANT, "director"))
    case = kyc.submit_case(
        ctx,
        operator,
        tenant.id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput(name, countries=("SG",)),
            end_uses=("scientific-computing",),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
            parties=tuple(parties),
            ownership=tuple(stakes),
            control=tuple(roles),
        ),
    )
    return case.id


def _measure(client: TestClient, path: str, n: int) -> tuple[float, int]:
    client.get(path)  # warm: templates compiled, policy packs loaded
    cpu: list[float] = []
    size = 0
    for _ in range(n):
        began = time.process_time()
        answer = client.get(path)
        cpu.append(time.process_time() - began)
        size = len(answer.content)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(cpu), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        db = Database(url)
        migrate.upgrade(db)
        ctx = ServiceContext(
            db, settings=Settings(database_url=url, data_dir=Path(tmp)), clock=ManualClock(START)
        )
        tokens = {u.tenant or u.role: u.token for u in demo.create_demo(ctx)}
        operator = identity.authenticate(ctx, tokens["operator-admin"])
        officer = identity.authenticate(ctx, tokens["compliance-officer"])
        found = locate(shipped_lists() / "csl-legacy-sample.csv")
        assert found is not None
        screening_lists.import_list(ctx, officer, found, "csl-csv")
        small = _case(ctx, operator, "Small Case Labs", 0)
        large = _case(ctx, operator, "Large Case Holdings", 200)
        app = create_app(ctx=ctx)
        pages = {
            "compliance-officer": (
                "/ui/compliance",
                f"/ui/compliance/cases/{small}",
                f"/ui/compliance/cases/{large}",
                "/ui/compliance/policy?as_of=2026-11-10",
            ),
            "INF Tech": ("/ui/compliance", "/ui/compliance/policy"),
        }
        print(f"{'page':<45} {'reader':<10} {'CPU ms':>8} {'bytes':>9}")
        for key, paths in pages.items():
            with TestClient(app, follow_redirects=False) as client:
                client.cookies.set(SESSION_COOKIE, tokens[key], domain="testserver.local")
                for path in paths:
                    cpu, size = _measure(client, path, args.requests)
                    shown = path.replace(small, "<small>").replace(large, "<200 parties>")
                    reader = "officer" if key == "compliance-officer" else "tenant"
                    print(f"{shown:<45} {reader:<10} {cpu * 1000:8.1f} {size:9,}")
        db.dispose()


if __name__ == "__main__":
    main()
