"""Who may do what: roles and the principal behind a request.

Design. Authentication (a bearer token) yields a :class:`Principal`: a user, its role and the
tenant it belongs to (operator staff belong to none). Every service call takes the principal
and asks it; nothing else decides access. Tenant isolation is one rule: a tenant's users see
their own tenant's records and nothing else, and a record of another tenant is reported as
*not found* (never *denied*), so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gpulease.domain.errors import Denied, InvalidRequest, NotFound


class Role(StrEnum):
    OPERATOR_ADMIN = "operator-admin"
    COMPLIANCE_OFFICER = "compliance-officer"
    TENANT_ADMIN = "tenant-admin"
    TENANT_MEMBER = "tenant-member"

    @property
    def is_operator(self) -> bool:
        return self in OPERATOR_ROLES

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InvalidRequest(
                f"unknown role {text!r}; use one of {names}", field="role"
            ) from None


OPERATOR_ROLES: frozenset[Role] = frozenset({Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER})


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    tenant_id: str | None  # None for operator staff

    def __post_init__(self) -> None:
        if self.role.is_operator != (self.tenant_id is None):
            raise InvalidRequest(
                f"user {self.user_id}: operator roles have no tenant, tenant roles need one",
                field="tenant",
            )

    @property
    def is_operator(self) -> bool:
        return self.role.is_operator

    def sees(self, tenant_id: str) -> bool:
        return self.is_operator or self.tenant_id == tenant_id

    def check_visible(self, tenant_id: str, kind: str, record_id: str) -> None:
        """Raise NotFound for a record of another tenant: isolation never reveals existence."""
        if not self.sees(tenant_id):
            raise NotFound(f"no {kind} {record_id!r}", **{f"{kind}_id": record_id})

    def require(self, *roles: Role, action: str) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Denied(f"{action} needs one of the roles {allowed}; you are {self.role.value}")

    def acting_tenant(self, requested: str | None) -> str:
        """The tenant a create acts for: a tenant user's own; an operator must name one."""
        if self.tenant_id is not None:
            if requested is not None and requested != self.tenant_id:
                raise NotFound(f"no tenant {requested!r}", tenant_id=requested)
            return self.tenant_id
        if requested is None:
            raise InvalidRequest("operators must say which tenant this is for", field="tenant_id")
        return requested
