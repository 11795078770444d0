"""Leases mirrored as Slurm reservations: created, changed (window, nodes, users, flags)
in what differs only, left alone when equal, deleted, listed; a tenant's own job asking
``--reservation`` runs inside it while a job without it waits. The first tests need no
Slurm: host lists and names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.executors.slurm_reservations import (
    ReservationError,
    expand_hostlist,
    lease_of,
    reservation_name,
)
from support.slurm_cluster import SITE_ID, SLURM_NODES, LocalSlurmCluster
from support.slurm_jobs import site_of, slurm_state, wait_for


# --------------------------------------------------------------- no Slurm needed
def test_host_lists_expand_like_slurms() -> None:
    assert expand_hostlist("jkt1-r00-n[00-02,07],gpu-a") == [
        "jkt1-r00-n00",
        "jkt1-r00-n01",
        "jkt1-r00-n02",
        "jkt1-r00-n07",
        "gpu-a",
    ]
    assert expand_hostlist("r[0-1]-n[8-9]") == ["r0-n8", "r0-n9", "r1-n8", "r1-n9"]
    assert expand_hostlist("") == []


def test_names_derive_from_the_lease_id_and_back() -> None:
    name = reservation_name("gpulease-", "lease-3f2a")
    assert name == "gpulease-lease-3f2a"
    assert lease_of("gpulease-", name) == "lease-3f2a"
    assert lease_of("gpulease-", "maintenance") is None
    with pytest.raises(ValueError, match="cannot name"):
        reservation_name("gpulease-", "lease 1; rm")


def test_nodes_of_two_sites_are_refused() -> None:
    executor = SlurmExecutor([SlurmSite(SITE_ID), SlurmSite("sgp1")])
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="one Slurm site"):
        executor.mirror_reservation(
            "lease-1", ["jkt1-r00-n00", "sgp1-r00-n00"], now, now + timedelta(hours=1), users=["a"]
        )


# ------------------------------------------------------------------ real Slurm
slow = pytest.mark.slow


def held_by_slurm(slurm: LocalSlurmCluster) -> dict[str, str]:
    out = slurm.run(["scontrol", "-o", "show", "reservation"], check=False).stdout
    return {
        line.split()[0].removeprefix("ReservationName="): line
        for line in out.splitlines()
        if line.startswith("ReservationName=")
    }


@slow
def test_a_lease_mirrored_changed_and_dropped(slurm: LocalSlurmCluster) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    now = datetime.now(UTC).replace(microsecond=0)
    later = now + timedelta(days=1)
    try:
        # a future lease on two nodes
        start, end = later, later + timedelta(hours=8)
        assert (
            executor.mirror_reservation(
                "lease-a1", SLURM_NODES[:2], start, end, users=["root"], flags=["maint"]
            )
            == "created"
        )
        (held,) = executor.reservations()
        assert (held.name, held.lease_id, held.site_id) == (
            "gpulease-lease-a1",
            "lease-a1",
            SITE_ID,
        )
        assert (held.nodes, held.start, held.end) == (tuple(SLURM_NODES[:2]), start, end)
        assert (held.users, held.accounts, held.flags) == (("root",), (), frozenset({"MAINT"}))
        assert held.state == "INACTIVE"

        commands = executor.commands
        same = executor.mirror_reservation(
            "lease-a1", list(reversed(SLURM_NODES[:2])), start, end, users=["root"], flags=["MAINT"]
        )
        assert same == "unchanged"
        assert executor.commands == commands + 1  # one show, no update

        # the lease moves, grows to three nodes, loses its flag, gains an account
        start, end = later + timedelta(hours=1), later + timedelta(hours=10)
        changed = executor.mirror_reservation(
            "lease-a1", SLURM_NODES[1:4], start, end, users=["root"], accounts=["acme"]
        )
        assert changed == "updated"
        (held,) = executor.reservations()
        assert (held.nodes, held.start, held.end) == (tuple(SLURM_NODES[1:4]), start, end)
        assert (held.users, held.accounts, held.flags) == (("root",), ("acme",), frozenset())
        assert "Nodes=jkt1-r00-n[01-03]" in held_by_slurm(slurm)["gpulease-lease-a1"]

        # the lease starts now: its start becomes Slurm's now; the account is dropped again
        changed = executor.mirror_reservation(
            "lease-a1", SLURM_NODES[1:4], now - timedelta(minutes=5), end, users=["root"]
        )
        assert changed == "updated"
        (held,) = executor.reservations()
        assert held.state == "ACTIVE"
        assert held.start <= datetime.now(UTC)
        assert held.accounts == ()
        assert (
            executor.mirror_reservation(
                "lease-a1", SLURM_NODES[1:4], now - timedelta(minutes=5), end, users=["root"]
            )
            == "unchanged"  # a started reservation's start is left alone
        )
        # shortened and shrunk while active
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        executor.mirror_reservation("lease-a1", SLURM_NODES[3:], now, end, users=["root"])
        (held,) = executor.reservations()
        assert (held.nodes, held.end) == ((SLURM_NODES[3],), end)

        # the lease now starts later: a started reservation cannot move, so it is made anew
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
        moved = executor.mirror_reservation(
            "lease-a1", SLURM_NODES[3:], start, end + timedelta(hours=3), users=["root"]
        )
        assert moved == "recreated"
        (held,) = executor.reservations()
        assert (held.start, held.state) == (start, "INACTIVE")

        assert executor.drop_reservation("lease-a1")
        assert executor.reservations() == []
        assert "gpulease-lease-a1" not in held_by_slurm(slurm)
        assert not executor.drop_reservation("lease-a1")  # already gone: not an error
    finally:
        executor.drop_reservation("lease-a1")


@slow
def test_reservations_lists_only_gpuleases(slurm: LocalSlurmCluster) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    start = datetime.now(UTC) + timedelta(days=2)
    slurm.run(
        [
            "scontrol", "create", "reservation", "reservationname=site-maintenance",
            f"nodes={SLURM_NODES[0]}", "starttime=now+3days", "duration=60", "users=root",
        ]
    )  # fmt: skip
    try:
        executor.mirror_reservation(
            "lease-b2", [SLURM_NODES[2]], start, start + timedelta(hours=1), accounts=["acme"]
        )
        assert [r.lease_id for r in executor.reservations()] == ["lease-b2"]
        with pytest.raises(ReservationError, match="scontrol create reservation"):
            # overlapping the operator's own reservation on the same node: Slurm refuses
            executor.mirror_reservation(
                "lease-b3",
                [SLURM_NODES[0]],
                start + timedelta(days=1),
                start + timedelta(days=1, hours=5),
                users=["root"],
            )
    finally:
        executor.drop_reservation("lease-b2")
        executor.drop_reservation("lease-b3")
        slurm.run(["scontrol", "delete", "reservationname=site-maintenance"], check=False)


@slow
def test_a_job_asking_the_reservation_runs_inside_it(slurm: LocalSlurmCluster, work: Path) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    now = datetime.now(UTC)
    node = SLURM_NODES[1]
    name = "gpulease-lease-c3"
    executor.mirror_reservation("lease-c3", [node], now, now + timedelta(hours=1), users=["root"])
    try:
        out = work / "where"
        inside = slurm.run(
            [
                "sbatch", "--parsable", f"--reservation={name}", f"--output={work}/in.log",
                "--wrap", f"echo $SLURMD_NODENAME $SLURM_JOB_RESERVATION > {out}",
            ]
        ).stdout  # fmt: skip
        outside = slurm.run(
            ["sbatch", "--parsable", "-w", node, f"--output={work}/out.log", "--wrap", "true"]
        ).stdout  # a job naming the reserved node without the reservation
        wait_for(
            lambda: out.exists() and out.read_text().strip(), what="the job in the reservation"
        )
        assert out.read_text().split() == [node, name]
        job = slurm_state(slurm, int(inside.strip()))
        assert (job["Reservation"], job["NodeList"]) == (name, node)
        waiting = slurm_state(slurm, int(outside.strip()))
        assert waiting["JobState"] == "PENDING"
        assert waiting["Reason"].startswith("ReqNodeNotAvail")  # held for the reservation
    finally:
        slurm.cancel_all()
        executor.drop_reservation("lease-c3")
