"""Dispatch across sites: which site a job goes to, and why every other site was not chosen.

Design. A job names one site (no dispatch), a set of sites, or none (every site). The control
plane gives this core one :class:`SiteOption` per candidate site: whether the site admits the
tenant and the job's purpose under the packs in force there (a refusal in words, from
``compliance.admission``), whether the job's shape could ever be placed there (a gang never
spans sites: a 72-GPU gang needs a 72-GPU NVLink domain at that one site), and the capacity
the tenant could start on now (its active leases at the site, then idle GPUs it would
borrow). :func:`dispatch` returns a typed :class:`Dispatch`: the site chosen, on what
capacity, and a reason for every site not chosen ("sgp1: tenant not admitted under pack
...; bkk1: never fits this site: ...").

Order among the sites that admit the job and could place it, soonest start first:

1. it starts now on the tenant's own lease there (free lease GPUs >= the job's);
2. it starts now on borrowed capacity there (idle GPUs >= the job's);
3. it waits for the tenant's lease there (the lease is large enough, but busy);
4. it waits for borrowed capacity there.

Ties: the most headroom (free lease GPUs, then idle GPUs), then the site id. The estimate is
coarse by intent (free GPUs now, not a simulated queue): each site's own scheduler decides
when it starts; dispatch only picks where. Once dispatched, the job stays at its site.

Invariants: pure (no clock, no I/O); the same options give the same decision; every
candidate site appears either as the choice or in ``passed`` with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Start(IntEnum):
    """How soon and on what a job would start at a site (lower is sooner)."""

    NOW_ON_LEASE = 0
    NOW_BORROWED = 1
    WAITS_FOR_LEASE = 2
    WAITS_BORROWED = 3

    @property
    def words(self) -> str:
        return _START_WORDS[self]


_START_WORDS = {
    Start.NOW_ON_LEASE: "starts now on the tenant's lease there",
    Start.NOW_BORROWED: "starts now on idle capacity it borrows there",
    Start.WAITS_FOR_LEASE: "waits for the tenant's lease there to free",
    Start.WAITS_BORROWED: "waits for capacity to borrow there",
}


@dataclass(frozen=True, slots=True)
class SiteOption:
    """What dispatch knows of one candidate site for one job."""

    site_id: str
    country: str
    refusal: str | None  # the site does not admit the tenant or purpose (words); None: admits
    never_fits: str | None  # the shape can never be placed there (words); None: it can
    lease_gpus: int  # GPUs of the tenant's active leases at the site
    lease_free: int  # of those, not used by its running jobs
    idle_gpus: int  # GPUs up and used by nobody at the site


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The decision: the site chosen (None: no site can take the job) and why not the rest."""

    asked: tuple[str, ...]  # the candidate sites, as given
    site_id: str | None
    start: Start | None
    reason: str  # why this site (or why none)
    passed: tuple[tuple[str, str], ...]  # (site, why not), in the order given

    @property
    def refused_everywhere(self) -> bool:
        return self.site_id is None

    def summary(self) -> str:
        """One line: the choice, then every site not chosen with its reason."""
        head = f"{self.site_id}: {self.reason}" if self.site_id else self.reason
        rest = "; ".join(f"{site}: {why}" for site, why in self.passed)
        return f"{head}; not chosen: {rest}" if rest else head

    def record(self) -> dict[str, Any]:
        """JSON-ready, for the job row (``jobs.dispatch``) and its audit record."""
        return {
            "asked": list(self.asked),
            "site_id": self.site_id,
            "start": self.start.name.lower() if self.start is not None else None,
            "reason": self.reason,
            "passed": [{"site_id": s, "reason": why} for s, why in self.passed],
        }


def start_at(gpus: int, option: SiteOption) -> Start:
    if option.lease_free >= gpus:
        return Start.NOW_ON_LEASE
    if option.idle_gpus >= gpus:
        return Start.NOW_BORROWED
    if option.lease_gpus >= gpus:
        return Start.WAITS_FOR_LEASE
    return Start.WAITS_BORROWED


def dispatch(gpus: int, options: Sequence[SiteOption]) -> Dispatch:
    """The site for a job of ``gpus`` GPUs among ``options`` (module docstring)."""
    if gpus < 1:
        raise ValueError("a job has at least one GPU")
    asked = tuple(o.site_id for o in options)
    if len(set(asked)) != len(asked):
        raise ValueError("a site is offered twice")
    passed: dict[str, str] = {}
    eligible: list[tuple[tuple[int, int, int, str], SiteOption, Start]] = []
    for option in options:
        if option.refusal is not None:
            passed[option.site_id] = option.refusal
        elif option.never_fits is not None:
            passed[option.site_id] = option.never_fits
        else:
            start = start_at(gpus, option)
            key = (int(start), -option.lease_free, -option.idle_gpus, option.site_id)
            eligible.append((key, option, start))
    if not eligible:
        return Dispatch(
            asked,
            None,
            None,
            "no site admits this job and could place it",
            tuple((s, passed[s]) for s in asked),
        )
    eligible.sort(key=lambda item: item[0])
    _, chosen, start = eligible[0]
    for _, option, other in eligible[1:]:
        if other > start:
            passed[option.site_id] = f"admitted, but it {other.words}"
        else:
            passed[option.site_id] = (
                f"admitted and it {other.words} too, with less headroom than {chosen.site_id}"
                if (option.lease_free, option.idle_gpus) != (chosen.lease_free, chosen.idle_gpus)
                else f"admitted and it {other.words} too; {chosen.site_id} comes first by id"
            )
    reason = f"admitted; it {start.words} ({_capacity(chosen)})"
    return Dispatch(
        asked,
        chosen.site_id,
        start,
        reason,
        tuple((s, passed[s]) for s in asked if s != chosen.site_id),
    )


def _capacity(option: SiteOption) -> str:
    return (
        f"lease {option.lease_free} of {option.lease_gpus} GPUs free, "
        f"{option.idle_gpus} GPUs idle at the site"
    )
