"""The world as the scheduling core sees it: nodes, free GPUs, jobs, lease guarantees.

Design. :class:`SchedulerState` is an in-memory model with explicit transition methods
(``submit``, ``start``, ``stop``, ``begin_preemption``, ``set_node_state``...). Drivers (the
simulator, the live service) call them; the engine only *reads* the state and returns
decisions, which the driver applies with :meth:`SchedulerState.apply`. Every method takes
``now``; nothing reads a clock.

Invariants (checked by the property tests):
* a GPU is held by at most one job (``node_free_mask`` bit clear <=> some job holds it);
* a running job holds exactly ``spec.gpus`` GPUs, all on nodes that were UP when it started;
* only UP nodes count in the free map handed to the placer;
* job status changes follow ``JOB_TRANSITIONS``; node status changes follow
  ``NODE_TRANSITIONS``;
* change journal: every time a job enters or leaves ``queued`` or ``running``, ``changes``
  moves the job to its end with the next ``change_count``. ``changes`` is therefore ordered by
  change number, and a reader that remembers the last number it saw finds every job touched
  since by walking it backwards (the engine's memos sync in O(changes), not O(jobs)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gpulease.domain.errors import Conflict, InvalidRequest, NotFound
from gpulease.domain.models import JobSpec, LeaseGuarantee
from gpulease.domain.states import (
    JOB_TRANSITIONS,
    NODE_TRANSITIONS,
    JobState,
    NodeState,
    transition,
)
from gpulease.inventory.topology import Cluster
from gpulease.scheduler.lease_book import LeaseBook, Share
from gpulease.scheduler.placement import FreeMap, Placement, never_fits

Allocation = tuple[tuple[int, tuple[int, ...]], ...]  # ((node, (gpu indices...)), ...)


@dataclass(slots=True)
class JobRecord:
    """A job's scheduling history. ``attained`` counts GPU-seconds of service of past runs."""

    spec: JobSpec
    seq: int
    status: JobState = JobState.QUEUED
    attained: float = 0.0
    run_time: float = 0.0  # wall seconds of past runs
    run_start: float | None = None
    allocation: Allocation = ()
    preempt_at: float | None = None  # set while a preemption notice runs its grace period
    preempt_reason: str = ""
    # while queued within its tenant's guarantee: since when, without a break (drivers
    # keep it through ``note_guarantees``; the engine serves the oldest claim first)
    guaranteed_since: float | None = None
    borrowed: bool = False  # started on capacity beyond its tenant's guarantee
    shares: tuple[Share, ...] = ()  # whose capacity the current run holds (``capacity``)
    starts: int = 0
    preemptions: int = 0
    first_start: float | None = None
    end_time: float | None = None
    end_reason: str = ""
    history: list[tuple[float, str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.spec.id

    def attained_at(self, now: float) -> float:
        if self.run_start is None:
            return self.attained
        return self.attained + (now - self.run_start) * self.spec.gpus

    def run_time_at(self, now: float) -> float:
        if self.run_start is None:
            return self.run_time
        return self.run_time + (now - self.run_start)

    @property
    def placement(self) -> Placement:
        return tuple((node, len(gpus)) for node, gpus in self.allocation)


class SchedulerState:
    def __init__(
        self,
        cluster: Cluster,
        *,
        leases: Iterable[LeaseGuarantee] = (),
        usage_half_life: float = 7 * 24 * 3600.0,
        keep_history: bool = True,
    ) -> None:
        self.cluster = cluster
        self.node_state = [NodeState.UP] * len(cluster.nodes)
        self.schedulable = [True] * len(cluster.nodes)  # node is UP (read-only for others)
        self._never_fits: dict[tuple[object, ...], str | None] = {}
        self.node_free_mask = [(1 << n.gpus) - 1 for n in cluster.nodes]
        self.node_free = [n.gpus for n in cluster.nodes]
        # Free GPUs on UP nodes only (what the placer may use), kept incrementally.
        self._up_free = list(self.node_free)
        self._rack_up_free = [cluster.rack_gpus(r.index) for r in cluster.racks]
        self._up_free_total = sum(self._up_free)
        # tenant -> [running GPUs, sum of run_start x GPUs] for usage without a scan
        self._tenant_running: dict[str, list[float]] = {}
        # running jobs with a walltime or a preemption deadline -> that moment
        self.deadlines: dict[str, float] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.queued: dict[str, JobRecord] = {}  # insertion-ordered
        self.running: dict[str, JobRecord] = {}
        self.leases: list[LeaseGuarantee] = list(leases)
        self.usage_half_life = usage_half_life
        self._usage: dict[str, tuple[float, float]] = {}  # tenant -> (decayed GPU-s, as of)
        self.keep_history = keep_history
        self._seq = 0
        # job id -> number of its last queued/running membership change, in that order
        self.changes: dict[str, int] = {}
        self.claims: dict[str, float] = {}  # queued job -> guaranteed_since (those set)
        # GPUs of running jobs attributed to each lease and to unleased capacity
        self.book = LeaseBook()
        self.change_count = 0

    # ----------------------------------------------------------------- views
    def free_map(self) -> FreeMap:
        """Free GPUs on UP nodes (draining and down nodes receive nothing)."""
        return FreeMap.of(
            self.cluster, list(self._up_free), list(self._rack_up_free), self._up_free_total
        )

    @property
    def up_free_gpus(self) -> int:
        """Free GPUs on UP nodes (kept incrementally)."""
        return self._up_free_total

    def running_gpus(self, tenant: str) -> int:
        """GPUs the tenant's running jobs hold (kept incrementally)."""
        running = self._tenant_running.get(tenant)
        return int(running[0]) if running else 0

    def job(self, job_id: str) -> JobRecord:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise NotFound(f"no job {job_id!r}", job_id=job_id) from None

    def usage_by_tenant(self, now: float) -> dict[str, float]:
        """Each tenant's GPU-seconds, halved every ``usage_half_life``, running jobs included."""
        usage = {
            tenant: value * 0.5 ** ((now - as_of) / self.usage_half_life)
            for tenant, (value, as_of) in self._usage.items()
        }
        for tenant, (gpus, start_gpus) in self._tenant_running.items():
            if gpus:
                usage[tenant] = usage.get(tenant, 0.0) + now * gpus - start_gpus
        return usage

    # ----------------------------------------------------------- transitions
    def submit(self, spec: JobSpec, *, domain: str = "rack") -> JobRecord:
        if spec.id in self.jobs:
            raise Conflict(f"job {spec.id!r} already exists", job_id=spec.id)
        shape = (spec.gpus, spec.gpus_per_node, spec.topology.segment, spec.topology.mode)
        if shape not in self._never_fits:
            found = never_fits(spec, self.cluster, domain=domain)
            self._never_fits[shape] = found.message if found is not None else None
        message = self._never_fits[shape]
        if message is not None:
            raise InvalidRequest(f"job {spec.id}: {message}", field="gpus")
        record = JobRecord(spec, self._seq)
        self._seq += 1
        self.jobs[spec.id] = record
        self.queued[spec.id] = record
        self._touch(spec.id)
        self._log(record, spec.submit_time, "submitted")
        return record

    def start(
        self,
        job_id: str,
        placement: Placement,
        now: float,
        *,
        borrowed: bool,
        shares: tuple[Share, ...] = (),
    ) -> None:
        record = self.job(job_id)
        if sum(c for _, c in placement) != record.spec.gpus:
            raise Conflict(f"job {job_id}: placement does not hold exactly {record.spec.gpus} GPUs")
        for node, count in placement:
            if self.node_state[node] is not NodeState.UP or self.node_free[node] < count:
                raise Conflict(f"job {job_id}: node {node} cannot take {count} GPUs")
        record.status = transition(JOB_TRANSITIONS, record.status, JobState.RUNNING, subject=job_id)
        allocation: list[tuple[int, tuple[int, ...]]] = []
        for node, count in placement:
            mask = self.node_free_mask[node]
            picked: list[int] = []
            bit = 0
            while len(picked) < count:
                if mask >> bit & 1:
                    picked.append(bit)
                    mask &= ~(1 << bit)
                bit += 1
            self.node_free_mask[node] = mask
            self._add_free(node, -count)
            allocation.append((node, tuple(picked)))
        record.allocation = tuple(allocation)
        record.run_start = now
        record.borrowed = borrowed
        record.shares = shares
        self.book.take(shares)
        record.starts += 1
        if record.first_start is None:
            record.first_start = now
        del self.queued[job_id]
        self.running[job_id] = record
        self._end_claim(record)
        self._touch(job_id)
        tally = self._tenant_running.setdefault(record.spec.tenant, [0.0, 0.0])
        tally[0] += record.spec.gpus
        tally[1] += now * record.spec.gpus
        if record.spec.walltime is not None:
            self.deadlines[job_id] = now + record.spec.walltime - record.run_time
        self._log(record, now, "started" + (" (borrowed)" if borrowed else ""))

    def begin_preemption(self, job_id: str, at: float, reason: str) -> None:
        record = self.job(job_id)
        if record.status is not JobState.RUNNING:
            raise Conflict(f"job {job_id} is {record.status.value}, not running")
        record.preempt_at = at
        record.preempt_reason = reason
        self.deadlines[job_id] = min(at, self.deadlines.get(job_id, at))

    def stop(self, job_id: str, now: float, outcome: JobState, reason: str = "") -> None:
        """End a run: requeue (QUEUED), or finish as SUCCEEDED / FAILED / CANCELLED."""
        record = self.job(job_id)
        was_running = record.status is JobState.RUNNING
        record.status = transition(JOB_TRANSITIONS, record.status, outcome, subject=job_id)
        if was_running:
            self._release(record, now)
        else:
            del self.queued[job_id]
            self._end_claim(record)
        if outcome is JobState.QUEUED:
            record.preemptions += 1
            self.queued[job_id] = record
        else:
            record.end_time = now
            record.end_reason = reason
        self._touch(job_id)
        self._log(record, now, f"{outcome.value}: {reason}" if reason else outcome.value)

    def note_guarantees(self, waiting: Sequence[str], now: float) -> None:
        """``waiting``: the queued jobs now waiting within their tenant's guarantee (the
        engine's ``guaranteed_waiting``). Each keeps the moment its claim began, or begins
        one now; a queued job missing from the list (its tenant's better-ranked jobs took
        the guarantee) loses its claim and starts a new one if it comes back."""
        claims = self.claims
        if claims:
            keep = set(waiting)
            for job_id in [j for j in claims if j not in keep]:
                self._end_claim(self.jobs[job_id])
        for job_id in waiting:
            if job_id not in claims:
                self.claim_since(job_id, now)

    def claim_since(self, job_id: str, since: float) -> None:
        """A queued job has waited within its guarantee since ``since`` (drivers restoring
        a state use it; ``note_guarantees`` otherwise)."""
        record = self.jobs[job_id]
        if record.status is not JobState.QUEUED:
            raise Conflict(f"job {job_id} is {record.status.value}, not queued")
        record.guaranteed_since = since
        self.claims[job_id] = since

    def _end_claim(self, record: JobRecord) -> None:
        if record.guaranteed_since is not None:
            record.guaranteed_since = None
            del self.claims[record.id]

    def set_node_state(self, node: int, target: NodeState, now: float) -> list[str]:
        """Change a node's state; when it goes DOWN, return the running jobs it hit."""
        before = self.node_state[node] is NodeState.UP
        self.node_state[node] = transition(
            NODE_TRANSITIONS, self.node_state[node], target, subject=self.cluster.nodes[node].id
        )
        after = target is NodeState.UP
        self.schedulable[node] = after
        if before != after:
            delta = self.node_free[node] if after else -self.node_free[node]
            self._up_free[node] += delta
            self._rack_up_free[self.cluster.nodes[node].rack] += delta
            self._up_free_total += delta
        if target is not NodeState.DOWN:
            return []
        return [r.id for r in self.running.values() if any(n == node for n, _ in r.allocation)]

    def credit_usage(self, tenant: str, gpu_seconds: float, as_of: float) -> None:
        """Add past service (GPU-seconds ended at ``as_of``) to a tenant's decayed usage.

        Drivers that rebuild a state from a store (the live service) use it to carry fair
        share across rebuilds; it is the same bookkeeping :meth:`stop` does for a run.
        """
        value, since = self._usage.get(tenant, (0.0, as_of))
        decay = 0.5 ** ((as_of - since) / self.usage_half_life)
        self._usage[tenant] = (value * decay + gpu_seconds, as_of)

    def changed_since(self, count: int) -> list[str]:
        """Jobs whose queued/running membership changed after change number ``count``."""
        if count >= self.change_count:
            return []
        touched: list[str] = []
        for job_id, number in reversed(self.changes.items()):
            if number <= count:
                break
            touched.append(job_id)
        return touched

    def withdraw(self, job_id: str) -> None:
        """Take a queued job out of the scheduler's view without ending it (admission no
        longer lets it run: its tenant is held); a driver submits it again when admitted."""
        record = self.job(job_id)
        if record.status is not JobState.QUEUED:
            raise Conflict(f"job {job_id} is {record.status.value}, not queued")
        self._end_claim(record)
        del self.queued[job_id]
        del self.jobs[job_id]
        self._touch(job_id)

    def forget(self, job_ids: Iterable[str]) -> None:
        """Drop ended jobs' records (a long-running driver keeps memory flat). Jobs still
        queued or running are kept; the change journal keeps their last change, so the
        engine's indexes still see them leave."""
        for job_id in job_ids:
            record = self.jobs.get(job_id)
            if record is not None and record.status not in (JobState.QUEUED, JobState.RUNNING):
                del self.jobs[job_id]

    def add_lease(self, lease: LeaseGuarantee) -> None:
        self.leases.append(lease)

    # --------------------------------------------------------------- helpers
    def _release(self, record: JobRecord, now: float) -> None:
        assert record.run_start is not None
        elapsed = now - record.run_start
        record.attained += elapsed * record.spec.gpus
        record.run_time += elapsed
        value, as_of = self._usage.get(record.spec.tenant, (0.0, now))
        decay = 0.5 ** ((now - as_of) / self.usage_half_life)
        self._usage[record.spec.tenant] = (value * decay + elapsed * record.spec.gpus, now)
        for node, gpus in record.allocation:
            for gpu in gpus:
                self.node_free_mask[node] |= 1 << gpu
            self._add_free(node, len(gpus))
        tally = self._tenant_running[record.spec.tenant]
        tally[0] -= record.spec.gpus
        tally[1] -= record.run_start * record.spec.gpus
        self.deadlines.pop(record.id, None)
        self.book.give(record.shares)
        record.shares = ()
        record.allocation = ()
        record.run_start = None
        record.preempt_at = None
        record.preempt_reason = ""
        del self.running[record.id]

    def _touch(self, job_id: str) -> None:
        self.change_count += 1
        changes = self.changes
        changes.pop(job_id, None)
        changes[job_id] = self.change_count

    def _add_free(self, node: int, delta: int) -> None:
        self.node_free[node] += delta
        if self.node_state[node] is NodeState.UP:
            self._up_free[node] += delta
            self._rack_up_free[self.cluster.nodes[node].rack] += delta
            self._up_free_total += delta

    def _log(self, record: JobRecord, now: float, event: str) -> None:
        if self.keep_history:
            record.history.append((now, event))
