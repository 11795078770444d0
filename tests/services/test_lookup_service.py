"""Finding records by name or unique id prefix (``services.lookup``), scoped to the caller."""

from __future__ import annotations

import secrets

import pytest

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Ambiguous, Denied, InvalidRequest, NotFound
from gpulease.persistence.tables import Tenant
from gpulease.services import jobs, tenant_summary
from gpulease.services.context import ServiceContext
from gpulease.services.lookup import MIN_PREFIX, Kind, resolve


def _job(ctx: ServiceContext, who: Principal, name: str) -> str:
    purpose = "financial AI"
    submission = jobs.JobSubmission(gpus=4, purpose=purpose, command="true", name=name)
    return jobs.submit(ctx, who, submission).id


def _tenant_id(ctx: ServiceContext, name: str) -> str:
    with ctx.db.transaction(write=False) as tx:
        (found,) = tx.all(tx.select(Tenant).where(Tenant.name == name))
        return found.id


def _add_tenants(ctx: ServiceContext, *rows: tuple[str, str]) -> None:
    """Tenants with ids of the test's choosing (to make prefixes collide on purpose)."""
    with ctx.db.transaction() as tx:
        for tenant_id, name in rows:
            tx.add(Tenant(id=tenant_id, name=name, country="SG", kind="lab", created_at=ctx.now()))


def _random_prefix(kind: str, length: int) -> str:
    return f"{kind}-{secrets.token_hex(length)[:length]}"


def test_a_tenant_by_name_exact_or_any_case_and_by_prefix(
    ctx: ServiceContext, operator: Principal
) -> None:
    inf = _tenant_id(ctx, "INF Tech")
    assert resolve(ctx, operator, Kind.TENANT, "INF Tech") == inf
    assert resolve(ctx, operator, Kind.TENANT, "  inf tech ") == inf
    assert resolve(ctx, operator, Kind.TENANT, inf) == inf
    assert resolve(ctx, operator, Kind.TENANT, inf[: len("tenant-") + MIN_PREFIX]) == inf
    assert resolve(ctx, operator, Kind.TENANT, inf.removeprefix("tenant-")[:8]) == inf
    with pytest.raises(NotFound) as caught:
        resolve(ctx, operator, Kind.TENANT, "INF Techno")
    assert caught.value.message == "no tenant 'INF Techno'"


def test_exact_case_wins_and_equal_names_are_ambiguous(
    ctx: ServiceContext, operator: Principal
) -> None:
    _add_tenants(ctx, ("tenant-aaaaaa000001", "Acme"), ("tenant-aaaaaa000002", "ACME"))
    assert resolve(ctx, operator, Kind.TENANT, "ACME") == "tenant-aaaaaa000002"
    assert resolve(ctx, operator, Kind.TENANT, "Acme") == "tenant-aaaaaa000001"
    with pytest.raises(Ambiguous) as caught:
        resolve(ctx, operator, Kind.TENANT, "acme")
    assert [c["id"] for c in caught.value.details["candidates"]] == [
        "tenant-aaaaaa000001",
        "tenant-aaaaaa000002",
    ]
    with pytest.raises(Ambiguous) as caught:
        resolve(ctx, operator, Kind.TENANT, "tenant-aaaaaa")
    assert "type more characters" in caught.value.message
    assert len(caught.value.details["candidates"]) == 2
    assert resolve(ctx, operator, Kind.TENANT, "tenant-aaaaaa0000021"[:-1]) == (
        "tenant-aaaaaa000002"
    )


def test_a_short_prefix_is_refused_whatever_exists(
    ctx: ServiceContext, operator: Principal, bank: Principal
) -> None:
    inf = _tenant_id(ctx, "INF Tech")
    for who in (operator, bank):
        for ref in (inf[: len("tenant-") + MIN_PREFIX - 1], "tenant-00000", "tenant-"):
            with pytest.raises(InvalidRequest) as caught:
                resolve(ctx, who, Kind.TENANT, ref)
            assert f"at least {MIN_PREFIX} characters" in caught.value.message


def test_another_tenants_records_are_never_matched_nor_listed(
    ctx: ServiceContext, inftech: Principal, bank: Principal
) -> None:
    theirs = _job(ctx, inftech, "train")
    mine = _job(ctx, bank, "train")
    # the same name in two tenants: each sees only its own, so no ambiguity
    assert resolve(ctx, bank, Kind.JOB, "train") == mine
    assert resolve(ctx, inftech, Kind.JOB, "TRAIN") == theirs
    # another tenant's name, prefix or tenant: the very answer of a reference to nothing
    prefix = theirs[: len("job-") + 8]
    for ref, kind in (
        (prefix, Kind.JOB),
        ("INF Tech", Kind.TENANT),
        (_tenant_id(ctx, "INF Tech")[:14], Kind.TENANT),
    ):
        with pytest.raises(NotFound) as foreign:
            resolve(ctx, bank, kind, ref)
        assert foreign.value.message == f"no {kind.value} {ref!r}"
        assert foreign.value.details == {f"{kind.value}_id": ref}
    random = _random_prefix("job", 8)
    with pytest.raises(NotFound) as missing:
        resolve(ctx, bank, Kind.JOB, random)
    assert missing.value.message == f"no job {random!r}"


def test_an_ambiguity_lists_only_visible_candidates(
    ctx: ServiceContext, inftech: Principal, bank: Principal
) -> None:
    mine = {_job(ctx, bank, "sweep"), _job(ctx, bank, "sweep")}
    hidden = _job(ctx, inftech, "sweep")
    with pytest.raises(Ambiguous) as caught:
        resolve(ctx, bank, Kind.JOB, "sweep")
    listed = {c["id"] for c in caught.value.details["candidates"]}
    assert listed == mine
    assert hidden not in caught.value.message


def test_a_role_that_may_never_act_is_refused_before_any_lookup(
    ctx: ServiceContext, bank: Principal
) -> None:
    with pytest.raises(Denied):
        resolve(ctx, bank, Kind.LEASE, "lease-abcdef", Action.LEASE_DECIDE)


def test_users_by_email_and_nodes_by_serial(
    ctx: ServiceContext, operator: Principal, bank: Principal
) -> None:
    assert resolve(ctx, operator, Kind.USER, "ADMIN@bank.example") == bank.user_id
    assert resolve(ctx, bank, Kind.USER, "admin@bank.example") == bank.user_id
    with pytest.raises(NotFound):  # staff are out of a tenant's sight
        resolve(ctx, bank, Kind.USER, "ops@indosat.example")
    assert resolve(ctx, bank, Kind.NODE, "aiv-nvl72-0001-t01") == "jkt1-r00-n00"


def test_tenant_summaries_say_standing_and_kyc_state(
    ctx: ServiceContext, operator: Principal, bank: Principal
) -> None:
    everyone = tenant_summary.summaries(ctx, operator)
    assert [s.tenant.name for s in everyone] == sorted(s.tenant.name for s in everyone)
    (own,) = tenant_summary.summaries(ctx, bank)
    assert own.tenant.id == bank.tenant_id
    assert own.standing == "approved"
    assert own.kyc_state == "approved"
    assert own.users >= 1
    with pytest.raises(NotFound):
        tenant_summary.summaries(ctx, bank, _tenant_id(ctx, "INF Tech"))
