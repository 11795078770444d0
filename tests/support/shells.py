"""A shell tenant: wholly owned by one holding, declared by its own approved KYC case (tests
of totals that add up across tenants under one owner)."""

from __future__ import annotations

from decimal import Decimal

from gpulease.compliance.case_graph import TENANT, DeclaredParty, DeclaredStake
from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.domain.access import Principal, Role
from gpulease.services import identity, kyc
from gpulease.services.context import ServiceContext


def shell(ctx: ServiceContext, operator: Principal, officer: Principal, name: str) -> Principal:
    """A tenant wholly owned by one holding, declared by its own case (approved)."""
    tenant = identity.create_tenant(ctx, operator, name=name, country="SG", kind="ai-startup")
    _user, token = identity.create_user(
        ctx,
        operator,
        name=f"{name} admin",
        email=f"admin@{name.lower().replace(' ', '')}.example",
        role=Role.TENANT_ADMIN,
        tenant_id=tenant.id,
    )
    admin = identity.authenticate(ctx, token)
    case = kyc.submit_case(
        ctx,
        admin,
        tenant.id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput(name, countries=("SG",)),
            end_uses=("financial-services-ai",),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
            parties=(
                DeclaredParty(
                    "holding",
                    kyc.PartyInput(
                        "Harbour Holdings Pte Ltd",
                        countries=("SG",),
                        identifiers=(("registration", "SG-HOLD-0001"),),
                    ),
                ),
            ),
            ownership=(DeclaredStake("holding", TENANT, Decimal(100)),),
        ),
    )
    kyc.decide_case(ctx, officer, case.id, approve=True, reason="test: verified")
    return admin
