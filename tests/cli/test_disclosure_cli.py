"""``gpulease report disclosure`` in-process against the real app on the demo: a party the
latest case declared outside the tenant's chain is shown with its stake and role."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Cli, fits

from gpulease.domain.clock import ManualClock


def test_disclosure_shows_the_stakes_and_roles_outside_the_chain(
    cli: Cli, tmp_path: Path, clock: ManualClock
) -> None:
    clock.advance(3600)  # a case after the demo's: the latest one
    case = {
        "organization": {"name": "Universitas Teknologi Jakarta", "countries": ["Indonesia"]},
        "end_uses": ["education"],
        "parties": [
            {"ref": "fund", "name": "Kencana Endowment Fund", "countries": ["ID"]},
            {"ref": "lab", "name": "Kencana Robotics Lab", "countries": ["ID"]},
            {"ref": "dean", "name": "Sari Wulandari", "kind": "person", "countries": ["ID"]},
        ],
        "ownership": [{"owner": "fund", "owns": "lab", "percent": "45"}],
        "control": [{"party": "dean", "role": "director", "of": "lab"}],
    }
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    submitted = json.loads(cli("university", "kyc", "submit", str(path), "--json").stdout)
    tenant = submitted["tenant_id"]
    out = cli("officer", "report", "disclosure", tenant).stdout
    fits(out)
    assert "outside the chain: Kencana Endowment Fund: 45 % of Kencana Robotics Lab" in out
    assert "outside the chain: Sari Wulandari: director of Kencana Robotics Lab" in out
    report = json.loads(cli("officer", "report", "disclosure", tenant, "--json").stdout)
    assert {p["name"] for p in report["who"]["parties"]} >= {
        "Kencana Endowment Fund",
        "Kencana Robotics Lab",
        "Sari Wulandari",
    }
