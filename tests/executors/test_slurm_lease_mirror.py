"""Leases mirrored as Slurm reservations and kept in step (``services.reservation_sync``)
on the real test cluster: its four Slurm nodes are the first four nodes of the demo site
(``jkt1-r00-n00``..``n03``, four GPUs each; the site's other nodes are not in Slurm, so
Slurm has them down and no reservation gets them).

The demo's three active leases are suspended first (a suspended lease has no reservation),
so the leases these tests make are the only ones mirrored. Every lease change goes through
the lease service (request, approve, amend, cancel, suspend); each sync is the leader's
(``LiveScheduler.tick``) or the sync's own ``sync``, and Slurm's reservations are read
back with ``scontrol``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.states import LeaseState, NodeState
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.persistence.tables import AuditRecord, Lease
from gpulease.services import inventory, leases
from gpulease.services.context import ServiceContext
from gpulease.services.reservation_sync import ACTOR, ReservationSync
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import SlurmSiteSettings
from support.slurm_cluster import SITE_ID, SLURM_NODES, LocalSlurmCluster
from support.slurm_jobs import completion_of, launch_of, slurm_state, wait_for

slow = pytest.mark.slow


@pytest.fixture
def db_backend() -> str:
    """PostgreSQL only: the database side is tested on both in tests/services."""
    return "postgresql"


@pytest.fixture
def now_clock(clock: ManualClock) -> ManualClock:
    """The service's clock at Slurm's (real) time: reservations live in real time."""
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds())
    return clock


def mirroring(slurm: LocalSlurmCluster, *tenants: Principal) -> SlurmExecutor:
    site = SlurmSite(
        SITE_ID,
        partition=slurm.partition,
        conf=slurm.conf_path,
        mirror_leases=True,
        lease_users={str(t.tenant_id): ["root"] for t in tenants},
        runs_user="root",
    )
    return SlurmExecutor([site])


def show(slurm: LocalSlurmCluster) -> dict[str, dict[str, str]]:
    """Slurm's reservations: name -> fields (``scontrol -o show reservation``)."""
    out = slurm.run(["scontrol", "-o", "show", "reservation"], check=False).stdout
    found = {}
    for line in out.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "ReservationName" in fields:
            found[fields["ReservationName"]] = fields
    return found


def hosts(slurm: LocalSlurmCluster, expression: str) -> list[str]:
    return slurm.run(["scontrol", "show", "hostnames", expression]).stdout.split()


def suspend_the_demos_leases(ctx: ServiceContext, operator: Principal) -> None:
    for lease in leases.list_leases(ctx, operator, state="active"):
        leases.decide(ctx, operator, lease.id, LeaseState.SUSPENDED, "not in this test")


def approved(
    ctx: ServiceContext,
    who: Principal,
    operator: Principal,
    start: datetime,
    hours: float,
    gpus: int,
) -> Lease:
    asked = leases.request_lease(
        ctx,
        who,
        leases.LeaseRequest(SITE_ID, start, start + timedelta(hours=hours), gpus=gpus),
    )
    leases.decide(ctx, operator, asked.id, LeaseState.APPROVED, "")
    leases.tick(ctx, ctx.now())
    return leases.get_lease(ctx, operator, asked.id)


def trail(ctx: ServiceContext, lease_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            tx.select(AuditRecord)
            .where(AuditRecord.subject_id == lease_id, AuditRecord.actor == ACTOR)
            .order_by(AuditRecord.id)
        )


@slow
def test_a_lease_is_created_resized_extended_and_dropped_in_slurm(
    ctx: ServiceContext,
    now_clock: ManualClock,
    operator: Principal,
    bank: Principal,
    university: Principal,
    slurm: LocalSlurmCluster,
) -> None:
    suspend_the_demos_leases(ctx, operator)
    executor = mirroring(slurm, bank, university)
    scheduler = LiveScheduler(ctx, executor, name="mirror")
    lease = approved(ctx, bank, operator, now_clock.now(), 2, 8)
    assert lease.state == LeaseState.ACTIVE
    name = f"gpulease-{lease.id}"

    scheduler.tick()  # the leader's first pass syncs the reservations
    held = show(slurm)[name]
    assert hosts(slurm, held["Nodes"]) == SLURM_NODES[:2]  # 8 GPUs: two whole nodes
    assert (held["Users"], held["State"]) == ("root", "ACTIVE")
    assert {"FLEX", "IGNORE_JOBS"} <= set(held["Flags"].split(","))
    assert held["EndTime"] == lease.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    (created,) = trail(ctx, lease.id)
    assert created.action == "lease.reservation.created"
    assert created.after["nodes"] == SLURM_NODES[:2]
    assert created.after["coverage"] == "full"

    sync = scheduler.reservation_sync
    commands = executor.commands
    assert sync.sync(now_clock.now()) == []  # in step: nothing changes, nothing audited
    assert executor.commands - commands == 2  # one sinfo, one read of every reservation
    assert len(trail(ctx, lease.id)) == 1

    # grown to 12 GPUs and two hours longer: a third node, its two first kept
    leases.amend(
        ctx, operator, lease.id, gpus=12, end=lease.end + timedelta(hours=2), reason="more"
    )
    (change,) = sync.sync(now_clock.now())
    assert change.what == "updated"
    held = show(slurm)[name]
    assert hosts(slurm, held["Nodes"]) == SLURM_NODES[:3]
    later = (lease.end + timedelta(hours=2)).astimezone(UTC)
    assert held["EndTime"] == later.strftime("%Y-%m-%dT%H:%M:%S")

    # another tenant's lease over the same hours wants 8 GPUs: one node is left for it
    other = approved(ctx, university, operator, now_clock.now(), 1, 8)
    sync.sync(now_clock.now())
    theirs = show(slurm)[f"gpulease-{other.id}"]
    assert hosts(slurm, theirs["Nodes"]) == [SLURM_NODES[3]]
    assert sync.covers[other.id].coverage.value == "short"
    assert trail(ctx, other.id)[-1].action == "lease.reservation.coverage"
    assert "4 short" in trail(ctx, other.id)[-1].reason

    # shrunk to 6 GPUs: one whole node (rounded down), and the freed ones go to the other
    leases.amend(ctx, operator, lease.id, gpus=6, reason="less")
    sync.sync(now_clock.now())
    assert hosts(slurm, show(slurm)[name]["Nodes"]) == [SLURM_NODES[0]]
    assert sync.covers[lease.id].coverage.value == "rounded_down"
    sync.sync(now_clock.now())  # the other fills up from the freed nodes
    assert hosts(slurm, show(slurm)[f"gpulease-{other.id}"]["Nodes"]) == [
        SLURM_NODES[1],
        SLURM_NODES[3],
    ]
    assert sync.covers[other.id].coverage.value == "full"

    # a node down in gpulease leaves the reservation, replaced by a free one (none: short)
    inventory.set_node_state(ctx, operator, SLURM_NODES[0], NodeState.DOWN, "psu")
    sync.sync(now_clock.now())
    assert hosts(slurm, show(slurm)[name]["Nodes"]) == [SLURM_NODES[2]]

    # suspended: its reservation is dropped (and audited)
    leases.decide(ctx, operator, lease.id, LeaseState.SUSPENDED, "unpaid")
    changes = sync.sync(now_clock.now())
    assert [(c.lease_id, c.what) for c in changes] == [(lease.id, "dropped")]
    assert name not in show(slurm)
    assert trail(ctx, lease.id)[-1].action == "lease.reservation.dropped"


@slow
def test_a_future_lease_is_reserved_ahead_and_dropped_when_cancelled(
    ctx: ServiceContext,
    now_clock: ManualClock,
    operator: Principal,
    bank: Principal,
    slurm: LocalSlurmCluster,
) -> None:
    suspend_the_demos_leases(ctx, operator)
    sync = ReservationSync(ctx, mirroring(slurm, bank))
    start = now_clock.now().replace(microsecond=0) + timedelta(days=1)
    lease = approved(ctx, bank, operator, start, 4, 16)
    assert lease.state == LeaseState.SCHEDULED
    sync.sync(now_clock.now())
    held = show(slurm)[f"gpulease-{lease.id}"]
    assert hosts(slurm, held["Nodes"]) == SLURM_NODES
    assert (held["State"], held["StartTime"]) == ("INACTIVE", start.strftime("%Y-%m-%dT%H:%M:%S"))
    leases.decide(ctx, operator, lease.id, LeaseState.CANCELLED, "plans changed")
    assert [c.what for c in sync.sync(now_clock.now())] == ["dropped"]
    assert show(slurm) == {}


@slow
def test_a_tenants_own_job_lands_in_its_reservation_and_gpuleases_runs_ask_for_it(
    ctx: ServiceContext,
    now_clock: ManualClock,
    operator: Principal,
    bank: Principal,
    university: Principal,
    slurm: LocalSlurmCluster,
    work: Path,
) -> None:
    suspend_the_demos_leases(ctx, operator)
    executor = mirroring(slurm, bank, university)
    # a run of gpulease's already on a node the lease's reservation will take
    go = work / "go"
    before = launch_of(work, f"while [ ! -e {go} ]; do sleep 0.1; done", job="job-r0")
    executor.launch(before)
    slurm_id = executor.slurm_id("job-r0")
    assert slurm_id is not None
    wait_for(lambda: slurm_state(slurm, slurm_id)["JobState"] == "RUNNING", what="the run")

    lease = approved(ctx, bank, operator, now_clock.now(), 1, 8)
    (created,) = ReservationSync(ctx, executor).sync(now_clock.now())
    assert created.what == "created"  # IGNORE_JOBS: the run on its node does not block it
    name = f"gpulease-{lease.id}"
    reserved = hosts(slurm, show(slurm)[name]["Nodes"])
    assert reserved == SLURM_NODES[:2]
    go.touch()
    assert completion_of(executor, "job-r0").exit_code == 0  # and it went on to its end

    # the tenant's own job, on two nodes, asking for the reservation: on its nodes
    out = work / "where"
    job = slurm.run(
        [
            "sbatch", "--parsable", f"--reservation={name}", "-N", "2",
            f"--output={work}/tenant.log",
            "--wrap", f"srun sh -c 'echo $SLURMD_NODENAME' > {out}",
        ]
    ).stdout  # fmt: skip
    wait_for(lambda: out.exists() and len(out.read_text().split()) == 2, what="the tenant's job")
    assert sorted(out.read_text().split()) == reserved  # one task on each reserved node
    assert slurm_state(slurm, int(job.strip()))["Reservation"] == name

    # a run gpulease places on a reserved node and one outside asks for the reservation
    # (FLEX lets it use both) and runs
    launch = launch_of(
        work,
        "echo $SLURM_JOB_RESERVATION",
        nodes=((SLURM_NODES[1], (0,)), (SLURM_NODES[2], (0,))),
        job="job-r1",
    )
    assert f"--reservation={name}" in executor.sbatch_args(executor.sites[0], launch)
    executor.launch(launch)
    done = completion_of(executor, "job-r1")
    assert done.exit_code == 0
    assert name in done.log

    # a run over the nodes of two leases' reservations cannot start: it fails, saying why
    other = approved(ctx, university, operator, now_clock.now(), 1, 8)
    ReservationSync(ctx, executor).sync(now_clock.now())
    assert hosts(slurm, show(slurm)[f"gpulease-{other.id}"]["Nodes"]) == SLURM_NODES[2:]
    across = launch_of(
        work, "true", nodes=((SLURM_NODES[1], (0,)), (SLURM_NODES[2], (0,))), job="job-r2"
    )
    executor.launch(across)
    failed = completion_of(executor, "job-r2")
    assert failed.exit_code == 127
    assert "in 2 lease reservations" in failed.log


# ------------------------------------------------------------------ no Slurm needed
def test_without_an_executor_that_reserves_or_a_site_that_mirrors_nothing_runs(
    ctx: ServiceContext, demo: object
) -> None:
    assert ReservationSync(ctx, SimulatedExecutor()).tick(ctx.now()) == []
    plain = ReservationSync(ctx, SlurmExecutor([SlurmSite(SITE_ID)]))  # mirror_leases off
    assert plain.tick(ctx.now()) == []
    assert plain.due is None  # not even a sinfo


def test_a_failing_slurm_is_logged_counted_and_retried_later(
    ctx: ServiceContext, demo: object, tmp_path: Path
) -> None:
    """``sinfo`` (and every other client) cannot reach its controller."""
    for command in ("sinfo", "scontrol"):
        fake = tmp_path / command
        fake.write_text("#!/bin/sh\necho 'Unable to contact slurm controller' >&2\nexit 1\n")
        fake.chmod(0o755)
    broken = SlurmSite(SITE_ID, bin_dir=tmp_path, mirror_leases=True)
    scheduler = LiveScheduler(ctx, SlurmExecutor([broken]), name="broken")
    scheduler.tick()
    assert scheduler.reservation_sync.failures == 1
    assert scheduler.failed_passes == 0
    scheduler.tick()  # not due again within reservation_sync_s
    assert scheduler.reservation_sync.failures == 1


def test_slurm_user_names_are_checked_in_the_settings() -> None:
    """A name Slurm would split (comma) or misread (space, '=') is refused at start-up."""
    ok = SlurmSiteSettings(mirror_leases=True, lease_users={"t1": ["alice", "svc.gpu-1"]})
    assert ok.lease_users == {"t1": ["alice", "svc.gpu-1"]}
    for bad in ("alice,bob", "al ice", "users=root", ""):
        with pytest.raises(ValidationError, match="is not a user name"):
            SlurmSiteSettings(lease_users={"t1": [bad]})
    with pytest.raises(ValidationError):
        SlurmSiteSettings(runs_user="root,alice")
