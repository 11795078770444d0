"""Fixtures over the demo installation (Jakarta, 32 NVL72 racks, three tenants with leases),
loaded by the root conftest for every folder (``pytest_plugins``).

* ``demo`` (root conftest): the demo's users with tokens, as of ``clock.now()``;
* ``operator``, ``inftech``, ``bank``, ``university``: their principals;
* ``officer``: the compliance officer;
* ``outsider``: the admin of a fourth tenant that holds no lease (approved through KYC);
* ``executor`` / ``scheduler``: a SimulatedExecutor and a LiveScheduler over ``ctx``.
"""

from __future__ import annotations

import pytest

from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.domain.access import Principal, Role
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.services import demo as demo_service
from gpulease.services import identity, kyc
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler


def _principal(ctx: ServiceContext, users: list[demo_service.DemoUser], email: str) -> Principal:
    token = next(u.token for u in users if u.email == email)
    return identity.authenticate(ctx, token)


@pytest.fixture
def operator(ctx: ServiceContext, demo: list[demo_service.DemoUser]) -> Principal:
    return _principal(ctx, demo, "ops@indosat.example")


@pytest.fixture
def inftech(ctx: ServiceContext, demo: list[demo_service.DemoUser]) -> Principal:
    return _principal(ctx, demo, "admin@inftech.example")


@pytest.fixture
def bank(ctx: ServiceContext, demo: list[demo_service.DemoUser]) -> Principal:
    return _principal(ctx, demo, "admin@bank.example")


@pytest.fixture
def university(ctx: ServiceContext, demo: list[demo_service.DemoUser]) -> Principal:
    return _principal(ctx, demo, "admin@university.example")


@pytest.fixture
def officer(ctx: ServiceContext, demo: list[demo_service.DemoUser]) -> Principal:
    return _principal(ctx, demo, "compliance@indosat.example")


@pytest.fixture
def outsider(ctx: ServiceContext, operator: Principal, officer: Principal) -> Principal:
    tenant = identity.create_tenant(ctx, operator, name="Lease-less Labs", country="SG", kind="lab")
    _user, token = identity.create_user(
        ctx,
        operator,
        name="Labs admin",
        email="admin@labs.example",
        role=Role.TENANT_ADMIN,
        tenant_id=tenant.id,
    )
    admin = identity.authenticate(ctx, token)
    # the same approval procedure as every tenant: submitted, screened, approved by an officer
    case = kyc.submit_case(
        ctx,
        admin,
        tenant.id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput("Lease-less Labs", countries=("SG",)),
            end_uses=("financial-services-ai", "scientific-computing"),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
        ),
    )
    kyc.decide_case(ctx, officer, case.id, approve=True, reason="test: verified")
    return admin


@pytest.fixture
def executor() -> SimulatedExecutor:
    return SimulatedExecutor()


@pytest.fixture
def scheduler(ctx: ServiceContext, executor: SimulatedExecutor) -> LiveScheduler:
    return LiveScheduler(ctx, executor, name="test-scheduler")
