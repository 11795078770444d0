"""The executor interface: how a decided run becomes a running process somewhere.

Design. The scheduler decides and commits; only then does it call the executor (side
effects after commit). An executor is told to ``launch`` a run, may be told to ``warn`` it
(a preemption notice) or ``stop`` it, and is ``poll``-ed for runs that ended. A run is named
by ``(job_id, run)`` where ``run`` counts the job's starts, so a late completion of an old run
can never end a newer one. ``active`` lists the runs it holds; the scheduler reconciles that
list with the database every pass (a run the database no longer wants is stopped; a run the
database thinks is running but the executor does not hold is ``adopt``-ed, or requeued if the
executor cannot adopt it, e.g. after the process that ran it died).

An executor that runs work on a cluster with its own idea of its nodes (Slurm) also offers
:class:`NodeStates`, an optional capability: ``services.node_sync`` keeps both sides' node
states in step through it; executors without it (``simulated``, ``local``) are left alone.
It may offer :class:`LeaseReservations` too: leases held as the manager's reservations
(``services.reservation_sync``). An executor may also offer :class:`LocationReports`:
where it sees each node, for location attestation (``services.attestation``: the simulated
and local executors report every node each sweep).

Implementations: ``simulated`` (a run ends after its declared duration; demo and tests),
``local`` (a subprocess on this machine), and later ``slurm`` (sbatch on a real cluster).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from gpulease.domain.states import NodeState


@dataclass(frozen=True, slots=True)
class NodeSlice:
    node_id: str
    slots: tuple[int, ...]  # GPU indices on the node (CUDA_VISIBLE_DEVICES)
    serials: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Launch:
    job_id: str
    run: int
    tenant_id: str
    purpose: str
    command: str | None
    image: str | None
    gpus: int
    slices: tuple[NodeSlice, ...]
    started_at: datetime
    duration_s: float | None
    log_path: Path

    def environment(self) -> dict[str, str]:
        """The ``GPULEASE_*`` variables (and CUDA_VISIBLE_DEVICES) describing the allocation."""
        first = self.slices[0]
        return {
            "CUDA_VISIBLE_DEVICES": ",".join(str(s) for s in first.slots),
            "GPULEASE_JOB_ID": self.job_id,
            "GPULEASE_RUN": str(self.run),
            "GPULEASE_TENANT": self.tenant_id,
            "GPULEASE_PURPOSE": self.purpose,
            "GPULEASE_GPUS": str(self.gpus),
            "GPULEASE_NODES": ",".join(s.node_id for s in self.slices),
            "GPULEASE_NODE_COUNT": str(len(self.slices)),
            "GPULEASE_ALLOCATION": ";".join(
                f"{s.node_id}:{','.join(str(g) for g in s.slots)}" for s in self.slices
            ),
            "GPULEASE_GPU_SERIALS": ",".join(serial for s in self.slices for serial in s.serials),
        }


@dataclass(frozen=True, slots=True)
class Completion:
    job_id: str
    run: int
    exit_code: int
    ended_at: datetime
    log: str


class Executor(Protocol):
    name: str

    def launch(self, launch: Launch) -> None: ...

    def adopt(self, launch: Launch) -> bool: ...

    def warn(self, job_id: str, message: str) -> None: ...

    def stop(self, job_id: str, reason: str) -> None: ...

    def poll(self, now: datetime) -> list[Completion]: ...

    def active(self) -> set[tuple[str, int]]: ...

    def close(self) -> None: ...


@runtime_checkable
class NodeStates(Protocol):
    """Optional: the executor's workload manager has node states of its own.

    ``node_states`` reads them for the given gpulease node ids in bulk (one call per site,
    e.g. one ``sinfo``): node id -> (state, the manager's reason, "" if none); an id the
    executor serves but the manager does not list is ``DOWN``; ids of no site it serves are
    left out. ``set_node_state`` pushes gpulease's state to the manager (drain, down, resume);
    a reason it stores there starts with ``gpulease:`` so that a read can tell gpulease's own
    pushes from the manager's states."""

    def node_states(self, node_ids: Iterable[str]) -> dict[str, tuple[NodeState, str]]: ...

    def set_node_state(self, node_id: str, state: NodeState, reason: str) -> None: ...


@runtime_checkable
class LeaseReservations(Protocol):
    """Optional: the executor's workload manager can hold leases as reservations (Slurm),
    for sites that opt in (``mirrored_sites``); ``services.reservation_sync`` keeps them in
    step with the leases through it.

    ``reservable_nodes`` maps gpulease node ids of those sites to the manager's nodes (what
    a reservation holds; several ids may map to one); ``lease_access`` gives who is let
    into a tenant's reservation at a site, and its flags (false: nobody to let in);
    ``mirror_reservation`` makes the lease's reservation hold exactly the given nodes, window
    and access and says what it did (``created``, ``updated``, ``recreated``,
    ``unchanged``; ``fresh``: trust the last ``reservations`` read instead of reading it
    again); ``drop_reservation`` deletes it (False: there was none);
    ``reservations`` lists every reservation the executor made, as the manager holds them."""

    def mirrored_sites(self) -> list[str]: ...

    def reservable_nodes(self, node_ids: Iterable[str]) -> dict[str, str]: ...

    def lease_access(self, site_id: str, tenant_id: str) -> LeaseAccess: ...

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
    ) -> str: ...

    def drop_reservation(self, lease_id: str) -> bool: ...

    def reservations(self) -> Sequence[HeldReservation]: ...


@dataclass(frozen=True, slots=True)
class LeaseAccess:
    """Who may use a lease's reservation (users and/or accounts), and its flags."""

    users: tuple[str, ...]
    accounts: tuple[str, ...]
    flags: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.users or self.accounts)


class HeldReservation(Protocol):
    """A reservation as the workload manager holds it (``slurm_reservations``)."""

    @property
    def lease_id(self) -> str: ...
    @property
    def site_id(self) -> str: ...
    @property
    def nodes(self) -> tuple[str, ...]: ...


@runtime_checkable
class LocationReports(Protocol):
    """Optional: the executor can say at which site it sees each node.

    ``locations`` takes gpulease node id -> the site the inventory records and answers node
    id -> the site the executor sees it at, for the nodes it sees now (a node it does not see
    is left out: its attestations stop)."""

    def locations(self, nodes: Mapping[str, str]) -> dict[str, str]: ...


class SeenWhereRecorded:
    """:class:`LocationReports` of an executor that runs every node itself (simulated, local):
    each node is where the inventory records it, unless a test or a drill says otherwise
    (``relocated``: seen at another site; ``unseen``: not seen at all)."""

    relocated: dict[str, str]
    unseen: set[str]

    def locations(self, nodes: Mapping[str, str]) -> dict[str, str]:
        relocated: dict[str, str] = getattr(self, "relocated", {})
        unseen: set[str] = getattr(self, "unseen", set())
        return {
            node_id: relocated.get(node_id, site_id)
            for node_id, site_id in nodes.items()
            if node_id not in unseen
        }
