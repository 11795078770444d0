"""The Slurm executor's side of leases mirrored as reservations (a mixin of
:class:`~gpulease.executors.slurm.SlurmExecutor`, kept apart to keep that module whole in
the head): the primitives ``mirror_reservation``, ``drop_reservation`` and
``reservations`` over :mod:`gpulease.executors.slurm_reservations`, and what the
reservation sync (``services.reservation_sync``) asks of a site: whether it mirrors its
leases, which Slurm node each gpulease node is, and who is let into a tenant's reservation.

Runs gpulease places on reserved nodes. A Slurm reservation keeps every job that does not
ask for it off its nodes, gpulease's own runs included. So the executor remembers its
reservations (as last mirrored or read: the sync reads them every ``reservation_sync_s``,
and a new leader's first pass does before it launches) and a run whose nodes include a
reservation's, inside its window, asks for it (``sbatch --reservation=...``,
:meth:`LeaseMirror.reservations_on`). For that to work the site names ``runs_user`` (the
user gpulease submits as), which every reservation then lets in, with the ``FLEX`` flag so
that a run over reserved and other nodes may use both. A run spanning the nodes of two
reservations cannot start (Slurm runs a job in one reservation at most; ``sbatch`` refuses
it): it fails at launch with that reason in its log. Its nodes were chosen by gpulease,
whose placement does not see reservations (leases are quotas, not nodes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gpulease.executors import slurm_reservations as resv
from gpulease.executors.base import LeaseAccess
from gpulease.executors.slurm_reservations import SlurmReservation

if TYPE_CHECKING:
    import subprocess

    from gpulease.executors.slurm_site import SlurmSite


@dataclass(frozen=True, slots=True)
class Reserved:
    """A gpulease reservation as the executor last saw it."""

    nodes: frozenset[str]  # Slurm node names
    start: datetime
    end: datetime


class LeaseMirror:
    """Reservation methods of :class:`~gpulease.executors.slurm.SlurmExecutor`, which
    provides what is declared here."""

    sites: list[SlurmSite]
    _reserved: dict[str, dict[str, Reserved]]
    _shown: dict[str, dict[str, dict[str, str]]]  # site -> its reservations as last read

    if TYPE_CHECKING:

        def run_command(
            self,
            site: SlurmSite,
            argv: Sequence[str],
            *,
            stdin: str | None = None,
            env: Mapping[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]: ...

        def _site_of_node(self, node_id: str) -> SlurmSite | None: ...

    def mirror_reservation(
        self,
        lease_id: str,
        node_ids: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        users: Sequence[str] = (),
        accounts: Sequence[str] = (),
        flags: Iterable[str] = (),
        fresh: bool = False,
    ) -> str:
        """Make the lease's Slurm reservation (named after ``lease_id``) hold exactly
        these gpulease nodes, window (aware datetimes), users and/or accounts and flags:
        created, updated in what differs, or left alone (``slurm_reservations.mirror``).
        The nodes must all be of one site. Returns what was done. ``fresh``: the caller
        has just called :meth:`reservations` (nothing else changes them meanwhile), so the
        reservation is taken from that read, not read again."""
        found = [self._site_of_node(node_id) for node_id in node_ids]
        site = found[0] if found else None
        if site is None or any(other is not site for other in found):
            raise ValueError(f"the nodes of lease {lease_id} are not all of one Slurm site")
        name = resv.reservation_name(site.job_prefix, lease_id)
        nodes = [site.slurm_node(node_id) for node_id in node_ids]
        known = self._shown.get(site.site_id) if fresh else None
        done = resv.mirror(
            self._runner(site), name, nodes, start, end, users, accounts, flags, known=known
        )
        self._reserved[site.site_id][name] = Reserved(frozenset(nodes), start, end)
        if known is not None:  # what this read said of it is stale now
            self._shown[site.site_id].pop(name, None)
        return done

    def drop_reservation(self, lease_id: str) -> bool:
        """Delete the lease's reservation from every site holding one; False if none did."""
        dropped = False
        for site in self.sites:
            name = resv.reservation_name(site.job_prefix, lease_id)
            self._reserved[site.site_id].pop(name, None)
            dropped |= resv.drop(self._runner(site), name)
        return dropped

    def reservations(self) -> list[SlurmReservation]:
        """gpulease's reservations (named with a site's prefix), every site, by name."""
        found = []
        for site in self.sites:
            out = self.run_command(site, ["scontrol", "-o", "show", "reservation"]).stdout
            held = []
            shown = resv.parse_reservations(out)
            self._shown[site.site_id] = {
                name: fields
                for name, fields in shown.items()
                if resv.lease_of(site.job_prefix, name) is not None
            }
            for name, fields in shown.items():
                if resv.lease_of(site.job_prefix, name) is not None:
                    held.append(resv.to_reservation(site.site_id, site.job_prefix, fields))
            self._reserved[site.site_id] = {
                r.name: Reserved(frozenset(r.nodes), r.start, r.end) for r in held
            }
            found += held
        return sorted(found, key=lambda r: (r.site_id, r.name))

    def reservations_on(
        self,
        site: SlurmSite,
        slurm_nodes: Iterable[str],
        now: datetime | None = None,
    ) -> list[str]:
        """The names of gpulease's reservations of ``site`` (as last mirrored or read)
        holding any of these Slurm nodes at ``now``, sorted."""
        moment = now or datetime.now(UTC)
        wanted = set(slurm_nodes)
        return sorted(
            name
            for name, held in self._reserved[site.site_id].items()
            if held.start <= moment < held.end and held.nodes & wanted
        )

    # ------------------------------------------------------------- the sync's view
    def mirrored_sites(self) -> list[str]:
        """The sites whose leases are mirrored as reservations (``mirror_leases``)."""
        return [site.site_id for site in self.sites if site.mirror_leases]

    def reservable_nodes(self, node_ids: Iterable[str]) -> dict[str, str]:
        """gpulease node id -> the Slurm node it maps to (what a reservation holds), for
        the ids of sites that mirror leases."""
        found = {}
        for node_id in node_ids:
            site = self._site_of_node(node_id)
            if site is not None and site.mirror_leases:
                found[node_id] = site.slurm_node(node_id)
        return found

    def lease_access(self, site_id: str, tenant_id: str) -> LeaseAccess:
        """Who is let into a reservation of ``tenant_id``'s lease at the site: the tenant's
        ``lease_users`` and its ``lease_account``; with either, gpulease's ``runs_user`` too,
        and the ``FLEX`` flag (a run gpulease places across reserved and other nodes asks
        for the reservation and may use both). Flag ``IGNORE_JOBS`` always: the nodes are
        reserved though runs are on them (Slurm refuses otherwise, and runs without a time
        limit would block every future reservation); those runs go on. Neither users nor
        account: nobody to let in (empty)."""
        site = next((s for s in self.sites if s.site_id == site_id), None)
        if site is None:
            return LeaseAccess((), (), ())
        users = list(site.lease_users.get(tenant_id, ()))
        accounts = [site.lease_account.format(tenant_id=tenant_id)] if site.lease_account else []
        if not users and not accounts:
            return LeaseAccess((), (), ())
        flags: tuple[str, ...] = ("IGNORE_JOBS",)  # runs already there go on
        if site.runs_user:
            flags = ("FLEX", "IGNORE_JOBS")
            if site.runs_user not in users:
                users.append(site.runs_user)
        return LeaseAccess(tuple(users), tuple(accounts), flags)

    def _runner(self, site: SlurmSite) -> resv.Run:
        return lambda argv: self.run_command(site, argv).stdout
