"""Whose capacity a run holds, as data: a start's :class:`Share` s and the :class:`LeaseBook`.

Leases are quotas (a number of GPUs over a window, ``quota``), not named chips, so "whose
GPUs" is an attribution the core makes at each start (``scheduler.capacity.attribute``) and
the drivers record with the run's allocations. A :class:`LeaseBook` counts, for every lease,
the GPUs attributed to it by running jobs (its holder's guaranteed GPUs and the GPUs it
lends), and the borrowed GPUs attributed to unleased capacity. :func:`grant` splits one
start into shares (the rules: ``scheduler.capacity``'s docstring).

Invariants: a start's shares add up to its GPUs; a guaranteed share names a lease of the
job's own tenant; a lent share names another tenant's lease and that tenant. Imports
nothing of the scheduler: the state and the decisions hold these values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from gpulease.domain.models import LeaseGuarantee
from gpulease.metering.usage import CapacityClass


@dataclass(frozen=True, slots=True)
class Share:
    """``gpus`` of one run attributed to one source of capacity."""

    gpus: int
    capacity: CapacityClass
    lease_id: str | None = None  # guaranteed: the tenant's own lease
    lender_lease_id: str | None = None  # borrowed from another tenant's idle lease
    lender_tenant: str | None = None

    @property
    def lease_key(self) -> str | None:
        """The lease whose room this share takes (None: unleased capacity)."""
        return self.lease_id if self.capacity is CapacityClass.GUARANTEED else self.lender_lease_id


@dataclass(slots=True)
class LeaseBook:
    """GPUs attributed to each lease by running jobs, and borrowed GPUs on unleased capacity."""

    held: dict[str, int] = field(default_factory=dict)
    unleased: int = 0

    def take(self, shares: Iterable[Share]) -> None:
        self._add(shares, 1)

    def give(self, shares: Iterable[Share]) -> None:
        self._add(shares, -1)

    def _add(self, shares: Iterable[Share], sign: int) -> None:
        for share in shares:
            key = share.lease_key
            if key is None:
                if share.capacity is CapacityClass.BORROWED:
                    self.unleased += sign * share.gpus
                continue
            left = self.held.get(key, 0) + sign * share.gpus
            if left:
                self.held[key] = left
            else:
                self.held.pop(key, None)

    def copy(self) -> LeaseBook:
        return LeaseBook(dict(self.held), self.unleased)


def ordered(leases: Iterable[LeaseGuarantee], now: float) -> list[LeaseGuarantee]:
    return sorted((x for x in leases if x.active_at(now)), key=lambda x: (x.start, x.lease_id))


def grant(
    tenant: str,
    gpus: int,
    *,
    borrowed: bool,
    leases: Sequence[LeaseGuarantee],
    book: LeaseBook,
    site_gpus: int,
) -> tuple[Share, ...]:
    """The shares of one start of ``gpus`` GPUs for ``tenant`` (module doc); ``leases``:
    those active now, earliest first; ``book`` is not changed."""
    shares: list[Share] = []
    left = gpus
    if not borrowed:
        own = [x for x in leases if x.tenant == tenant]
        for lease in own:
            room = max(0, lease.gpus - book.held.get(lease.lease_id, 0))
            n = min(room, left)
            if n:
                shares.append(Share(n, CapacityClass.GUARANTEED, lease_id=lease.lease_id))
                left -= n
        if left and own:
            first = own[0].lease_id
            if shares and shares[0].lease_id == first:
                shares[0] = replace(shares[0], gpus=shares[0].gpus + left)
            else:
                shares.insert(0, Share(left, CapacityClass.GUARANTEED, lease_id=first))
            left = 0
    else:
        unleased = site_gpus - sum(x.gpus for x in leases) - book.unleased
        n = min(max(0, unleased), left)
        if n:
            shares.append(Share(n, CapacityClass.BORROWED))
            left -= n
        for lease in leases:
            if not left:
                break
            if lease.tenant == tenant:
                continue
            room = max(0, lease.gpus - book.held.get(lease.lease_id, 0))
            n = min(room, left)
            if n:
                shares.append(
                    Share(
                        n,
                        CapacityClass.BORROWED,
                        lender_lease_id=lease.lease_id,
                        lender_tenant=lease.tenant,
                    )
                )
                left -= n
    if left:  # a guaranteed start of a tenant without a lease, or a full book: unleased
        if shares and shares[0].capacity is CapacityClass.BORROWED and shares[0].lease_key is None:
            shares[0] = replace(shares[0], gpus=shares[0].gpus + left)
        else:
            shares.insert(0, Share(left, CapacityClass.BORROWED))
    return tuple(shares)
