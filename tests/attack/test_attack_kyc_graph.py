"""Attacks on the KYC case graph and the screening core, as a hostile tenant sends them.

A tenant admin of the demo (Bank Nusantara Digital, SQLite, the CSL legacy sample imported)
submits case bodies through the in-process API and reads its answers; a compliance officer's
client reads what was screened. Each test states what the KYC work promises:

* a listed owner never gets past screening by dating its stake after the submission day
  (screened today, never re-screened on that day), nor by writing its name with dots
  between the words or letter by letter;
* validating the largest accepted bodies does bounded work (no work per day per stake, no
  ownership chains built to count them), whatever the dates and the shape of the chains, and
  so does the 50 % fixed point of the screening (no round over every party per step);
* a stored case that cannot be screened never stops the scheduler's pass (policy change,
  expiry, retry): it goes before an officer saying why, and the other cases are re-screened;
* another tenant's case, by id or prefix, answers exactly like a missing one.
"""

from __future__ import annotations

import tracemalloc
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpulease.compliance.case_graph import (
    CaseGraph,
    DeclaredParty,
    DeclaredStake,
    PartyDetails,
    validate_graph,
)
from gpulease.compliance.fifty_percent import (
    OFAC_50,
    ListedParty,
    Restriction,
    apply_fifty_percent_rule,
)
from gpulease.compliance.ownership import OwnershipEdge
from gpulease.data import shipped_lists
from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import KycState, TenantStanding
from gpulease.persistence.tables import KycCase, PartyRow, Tenant
from gpulease.services import identity, rescreening, screening_lists
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduling import LiveScheduler

CSL_SAMPLE = shipped_lists() / "csl-legacy-sample.csv.xz"
SDN_US = "200G PSA HOLDINGS LLC"  # an SDN entry of the CSL legacy sample
BANK = "admin@bank.example"
INFTECH = "admin@inftech.example"
OFFICER = "compliance@indosat.example"


@pytest.fixture
def db_backend() -> str:
    """The graph checks are pure; one backend keeps the file fast."""
    return "sqlite"


@pytest.fixture
def lists(ctx: ServiceContext, officer: Principal) -> None:
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")


def _client(raw_api: Any, demo: list[DemoUser], email: str) -> TestClient:
    return raw_api(next(u.token for u in demo if u.email == email))  # type: ignore[no-any-return]


@pytest.fixture
def bank(raw_api: Any, demo: list[DemoUser]) -> TestClient:
    return _client(raw_api, demo, BANK)


@pytest.fixture
def officer_api(raw_api: Any, demo: list[DemoUser]) -> TestClient:
    return _client(raw_api, demo, OFFICER)


def body(**more: Any) -> dict[str, Any]:
    return {
        "organization": {"name": "Bank Nusantara Digital", "countries": ["ID"]},
        "end_uses": ["financial-services-ai"],
        **more,
    }


def case_count(ctx: ServiceContext) -> int:
    with ctx.db.transaction(write=False) as tx:
        return len(tx.all(select(KycCase)))


# --------------------------------------------- a listed owner's stake dated after today
@pytest.mark.parametrize("form", ["graph", "list"])
def test_a_listed_owners_stake_from_a_later_day_is_refused_not_screened_as_absent(
    ctx: ServiceContext,
    clock: ManualClock,
    lists: None,
    bank: TestClient,
    officer_api: TestClient,
    form: str,
) -> None:
    """60 % by an SDN entry from tomorrow: screened today the stake is not held, so the case
    was only 'review' (approvable), and nothing re-screens it on the day the stake starts.
    A case declares the ownership held on the day it is submitted: a later stake is a 422
    naming the field, nothing stored; the same stake held today blocks."""
    today = clock.now().date()
    stake = {"percent": 60, "since": (today + timedelta(days=1)).isoformat()}
    party = {"name": SDN_US, "countries": ["US"]}
    if form == "graph":
        sent = body(parties=[{"ref": "x", **party}], ownership=[{"owner": "x", **stake}])
    else:
        sent = body(owners=[{"ref": "x", "party": party, **stake}])
    before = case_count(ctx)
    answer = bank.post("/kyc/cases", json=sent)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["details"]["field"] == ("ownership" if form == "graph" else "owners") + "[0].since"
    assert error["details"]["refs"] == ["x", "tenant"]
    assert case_count(ctx) == before
    if form == "graph":
        sent["ownership"][0]["since"] = today.isoformat()
    else:
        sent["owners"][0]["since"] = today.isoformat()
    made = bank.post("/kyc/cases", json=sent)
    assert made.status_code == 201, made.text
    case = officer_api.get(f"/kyc/cases/{made.json()['id']}").json()
    assert case["verdict"] == "block"
    assert case["screening"]["blocks"][0]["rule"].endswith("ofac-50")


# ------------------------------------------- ways round the 50 % rule that must not work
X = {"ref": "x", "name": SDN_US, "countries": ["US"]}
BYPASSES: dict[str, dict[str, Any]] = {
    # 49.99 % direct and 0.02 % through an entity X owns half of (itself restricted)
    "two-paths": {
        "parties": [X, {"ref": "a", "name": "Alder Nominees"}],
        "ownership": [
            {"owner": "x", "percent": "49.99"},
            {"owner": "x", "owns": "a", "percent": 50},
            {"owner": "a", "percent": "0.02"},
        ],
    },
    # 30 % bought in 2020 and 30 % more in 2025, both still held
    "split-periods": {
        "parties": [X],
        "ownership": [
            {"owner": "x", "percent": 30, "since": "2020-01-01", "until": "2030-01-01"},
            {"owner": "x", "percent": 30, "since": "2025-01-01"},
        ],
    },
    # X reaches the tenant only through a cross-shareholding
    "cycle": {
        "parties": [X, {"ref": "a", "name": "Alder Holdco"}, {"ref": "b", "name": "Birch Holdco"}],
        "ownership": [
            {"owner": "a", "percent": 100},
            {"owner": "b", "owns": "a", "percent": 50},
            {"owner": "a", "owns": "b", "percent": 50},
            {"owner": "x", "owns": "b", "percent": 50},
        ],
    },
    # half declared in the list form, half as a graph edge of the same ref
    "mixed-forms": {
        "owners": [{"ref": "x", "party": {"name": SDN_US}, "percent": 30}],
        "ownership": [{"owner": "x", "percent": 30}],
    },
    # a party whose ref is 'Tenant' owning the real tenant
    "ref-shadowing-tenant": {
        "parties": [{**X, "ref": "Tenant"}],
        "ownership": [{"owner": "Tenant", "owns": "tenant", "percent": 60}],
    },
}


@pytest.mark.parametrize("shape", sorted(BYPASSES))
def test_a_listed_owner_is_blocked_however_the_stakes_are_arranged(
    ctx: ServiceContext,
    operator: Principal,
    lists: None,
    raw_api: Any,
    demo: list[DemoUser],
    officer_api: TestClient,
    shape: str,
) -> None:
    """50 % or more held by an SDN entry, directly or through restricted entities, written
    in ways meant to hide it: every one is blocked under the OFAC rule."""
    tenant = identity.create_tenant(ctx, operator, name=f"Shape {shape}", country="SG", kind="lab")
    ops = _client(raw_api, demo, "ops@indosat.example")
    sent = body(tenant_id=tenant.id, **BYPASSES[shape])
    made = ops.post("/kyc/cases", json=sent)
    assert made.status_code == 201, made.text
    case = officer_api.get(f"/kyc/cases/{made.json()['id']}").json()
    assert case["verdict"] == "block", case["screening"]["reasons"]
    assert [b["rule"].rsplit("/", 1)[-1] for b in case["screening"]["blocks"]] == ["ofac-50"]


# ------------------------------------------------------- a listed name written apart
@pytest.mark.parametrize(
    "name",
    ["200G.PSA.HOLDINGS.LLC", "200G PSA H O L D I N G S LLC", "200G PSA HOLDINGS.LLC"],
    ids=["dots-between-words", "spelt-letter-by-letter", "dot-before-legal-form"],
)
def test_a_listed_owner_written_with_dots_or_letter_by_letter_is_still_found(
    lists: None, bank: TestClient, officer_api: TestClient, name: str
) -> None:
    """Dots were dropped (``S.A.`` -> ``sa``), so ``200G.PSA.HOLDINGS`` became one word, and
    single letters stayed words: the SDN entry's 60 % owner was screened clear."""
    party = {"ref": "x", "name": name}
    made = bank.post(
        "/kyc/cases", json=body(parties=[party], ownership=[{"owner": "x", "percent": 60}])
    )
    assert made.status_code == 201, made.text
    case = officer_api.get(f"/kyc/cases/{made.json()['id']}").json()
    assert case["verdict"] == "block"
    assert {p["name"]: p["outcome"] for p in case["screening"]["parties"]}[name] == "block"


# ------------------------------------------- the list form's errors name its own fields
OWNER = {"ref": "o", "party": {"name": "Owner Pte"}, "percent": 10}
OFFICER_IN = {"party": {"name": "Tan Example", "kind": "person"}, "role": "director"}


@pytest.mark.parametrize(
    ("more", "field"),
    [
        ({"owners": [{**OWNER, "owns": "nobody"}]}, "owners[0].owns"),
        ({"owners": [{**OWNER, "ref": "tenant"}]}, "owners[0].ref"),
        ({"owners": [OWNER, OWNER]}, "owners[1].ref"),
        ({"owners": [{**OWNER, "party": {"name": " "}}]}, "owners[0].party.name"),
        ({"officers": [OFFICER_IN, {**OFFICER_IN, "of": "nobody"}]}, "officers[1].of"),
        (
            {
                "parties": [{"ref": "p", "name": "P Ltd"}],
                "ownership": [{"owner": "p", "percent": 5}],
                "owners": [{**OWNER, "owns": "p"}, {**OWNER, "ref": "q", "owns": "nobody"}],
            },
            "owners[1].owns",
        ),
    ],
    ids=["dangling-owns", "ref-tenant", "ref-twice", "blank-name", "officer-of", "mixed"],
)
def test_a_refusal_in_the_list_form_names_the_field_the_body_has(
    ctx: ServiceContext, bank: TestClient, more: dict[str, Any], field: str
) -> None:
    """The list form's owners and officers were validated as graph edges and their errors
    named ``ownership[i]``/``parties[i]`` fields the body does not have (i counted over
    both forms): a 422 must name the field the submitter sent."""
    before = case_count(ctx)
    answer = bank.post("/kyc/cases", json=body(**more))
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"]["field"] == field
    assert case_count(ctx) == before


# ------------------------------------------------------- bounded validation work
def _graph(refs: list[str], stakes: list[DeclaredStake]) -> CaseGraph:
    return CaseGraph.build(
        PartyDetails("Org"),
        parties=[DeclaredParty(r, PartyDetails(f"Party {r}")) for r in refs],
        stakes=stakes,
    )


def test_stakes_on_a_thousand_days_are_summed_without_a_pass_per_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 stakes in the tenant, each from its own day (the body's maximum): the 100 %
    check must not test every stake on every day (a million tests per body)."""
    refs = [f"p{i}" for i in range(500)]
    first = date(2000, 1, 1)
    stakes = [
        DeclaredStake(f"p{i % 500}", "tenant", Decimal("0.05"), first + timedelta(days=i))
        for i in range(1000)
    ]
    calls = 0
    held_on = OwnershipEdge.held_on

    def counted(self: OwnershipEdge, as_of: Any) -> bool:
        nonlocal calls
        calls += 1
        return held_on(self, as_of)

    monkeypatch.setattr(OwnershipEdge, "held_on", counted)
    validate_graph(_graph(refs, stakes))
    assert calls <= 10 * len(stakes)
    # the sweep still sees every day: the 1,000th stake of 0.1 % tips one day over 100 %
    over = [DeclaredStake("p0", "tenant", Decimal("50.01"), first + timedelta(days=999))]
    with pytest.raises(InvalidRequest) as refused:
        validate_graph(_graph(refs, [*stakes, *over]))
    assert "2002-09-26" in refused.value.message
    assert "100.01 %" in refused.value.message


def test_counting_the_ownership_chains_of_a_deep_fan_does_not_build_them() -> None:
    """20 owners of the tenant, all owned by a 479-party chain: 9,600 chains, 2.4 million
    links. Validation only needs to know there are at most 10,000: it must not hold them
    all in memory (tens of megabytes per request) to count them."""
    k, tail = 20, 479
    refs = [f"b{i}" for i in range(k)] + [f"t{j}" for j in range(tail)]
    stakes = [DeclaredStake(f"b{i}", "tenant", Decimal(4)) for i in range(k)]
    stakes += [DeclaredStake("t0", f"b{i}", Decimal(100)) for i in range(k)]
    stakes += [DeclaredStake(f"t{j + 1}", f"t{j}", Decimal(100)) for j in range(tail - 1)]
    graph = _graph(refs, stakes)
    tracemalloc.start()
    try:
        validate_graph(graph)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    # one more branch: 10,080 chains, refused as before
    wider = _graph([*refs, "b20"], [*stakes, DeclaredStake("t0", "b20", Decimal(100))])
    wider = CaseGraph(
        wider.organization,
        wider.parties,
        (*wider.stakes, DeclaredStake("b20", "tenant", Decimal(1))),
    )
    with pytest.raises(InvalidRequest) as refused:
        validate_graph(wider)
    assert "more than 10000 chains" in refused.value.message
    assert refused.value.details["field"] == "ownership"


class _Counted(dict[str, dict[str, Decimal]]):
    """An owners map that counts how often a party's owners are read."""

    reads = 0

    def __getitem__(self, key: str) -> dict[str, Decimal]:
        _Counted.reads += 1
        return super().__getitem__(key)


def test_the_fifty_percent_fixed_point_of_a_deep_chain_reads_each_party_a_few_times() -> None:
    """A listed party at the top of a 480-deep chain of 100 % stakes, named so that every
    round over the parties in order moved the restriction one step down: 480 rounds of 480
    parties for every screening and re-screening of the case. The restriction still reaches
    the bottom, reading each party's owners a bounded number of times."""
    depth = 480
    owners = _Counted(
        {f"p{j:03d}": {f"p{j + 1:03d}": Decimal(100)} for j in range(depth - 1)}
        | {"tenant": {"p000": Decimal(60)}}
    )
    top = ListedParty(f"p{depth - 1:03d}", Restriction.SDN, "SDN")
    _Counted.reads = 0
    result = apply_fifty_percent_rule(OFAC_50, owners=owners, listings={top.party: top})
    assert result.level("tenant") is Restriction.SDN
    assert result.level("p000") is Restriction.SDN
    assert _Counted.reads <= 4 * len(owners)


# ------------------------------------------------------------- the scheduler's pass
def test_a_case_that_cannot_be_loaded_does_not_stop_the_scheduler_pass(
    ctx: ServiceContext,
    demo: list[DemoUser],
    scheduler: LiveScheduler,
) -> None:
    """Two approved demo cases under older policy rules; the first one's organisation is
    stored with a kind no longer known (data from before validation). The pass re-screens
    both: the bad one goes before an officer saying why, the other is re-screened, and the
    sites' passes run, on this pass and the next. An approved case that can no longer be
    screened does not keep its approval as "no new hit"."""
    with ctx.db.transaction() as tx:
        cases = tx.all(
            select(KycCase).where(KycCase.state == KycState.APPROVED.value).order_by(KycCase.id)
        )
        assert len(cases) >= 2
        bad, good = cases[0], cases[1]
        for case in cases:
            assert case.screening is not None
            case.screening = {**case.screening, "policy": {"rules": ["old-pack@0/gone"]}}
        tx.require(PartyRow, bad.party_id, "party").kind = "partnership"
        bad_id, good_id = bad.id, good.id
    reports = scheduler.tick()
    assert reports  # the sites' passes ran
    with ctx.db.transaction(write=False) as tx:
        bad = tx.require(KycCase, bad_id, "kyc case")
        good = tx.require(KycCase, good_id, "kyc case")
        assert bad.state == KycState.NEEDS_REVIEW
        assert bad.verdict == "review"
        assert "could not be screened" in bad.state_reason
        assert "partnership" in bad.state_reason
        # its "review" is not the one an officer approved: the tenant stands on it no more
        assert tx.require(Tenant, bad.tenant_id, "tenant").approval == TenantStanding.SUSPENDED
        assert good.screening is not None
        assert good.screening["policy"]["rules"] != ["old-pack@0/gone"]
    assert rescreening.on_policy_change(ctx, ctx.now()) == []  # not taken again
    assert scheduler.tick()


def test_a_policy_change_over_many_cases_is_spread_over_passes(
    ctx: ServiceContext, demo: list[DemoUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every case re-screened inside one pass holds up the leases' and sites' passes behind
    it for as long as thousands of cases take: a pass takes a bounded number, the next
    passes the rest, and then nothing is left."""
    monkeypatch.setattr(rescreening, "RESCREENS_PER_PASS", 1)
    with ctx.db.transaction() as tx:
        cases = tx.all(select(KycCase).where(KycCase.state == KycState.APPROVED.value))
        for case in cases:
            assert case.screening is not None
            case.screening = {**case.screening, "policy": {"rules": ["old-pack@0/gone"]}}
    passes = [rescreening.on_policy_change(ctx, ctx.now()) for _ in range(len(cases) + 1)]
    assert [len(p) for p in passes] == [1] * len(cases) + [0]
    assert len({p[0].case_id for p in passes[:-1]}) == len(cases)


# ----------------------------------------------------------- another tenant's case
def test_another_tenants_case_answers_like_a_missing_one(
    ctx: ServiceContext, raw_api: Any, demo: list[DemoUser], bank: TestClient
) -> None:
    """By its id, its id's prefix, or by naming the other tenant in a submission: the same
    404 as a case or tenant that does not exist, and nothing stored."""
    inftech = _client(raw_api, demo, INFTECH)
    theirs = inftech.get("/kyc/cases").json()[0]["id"]
    for ref in (theirs, theirs[:8], theirs.upper()):
        answer = bank.get(f"/kyc/cases/{ref}")
        missing = bank.get(f"/kyc/cases/kyc-{'0' * (len(ref) - 4)}")
        assert (answer.status_code, answer.json()["code"]) == (
            missing.status_code,
            missing.json()["code"],
        )
    their_tenant = inftech.get("/kyc/cases").json()[0]["tenant_id"]
    before = case_count(ctx)
    sent = bank.post("/kyc/cases", json=body(tenant_id=their_tenant))
    nobody = bank.post("/kyc/cases", json=body(tenant_id="tenant-000000000000"))
    assert (sent.status_code, sent.json()["code"]) == (nobody.status_code, nobody.json()["code"])
    assert case_count(ctx) == before
