"""Scale-out on a real Slurm: three API servers and two scheduler processes on one
PostgreSQL, the ``slurm`` executor on the throwaway test cluster; the leader is killed with
SIGKILL while Slurm runs its jobs and submissions keep streaming in.

The cluster's four Slurm nodes are named after the demo site's first four nodes
(``jkt1-r00-n00``..``n03``, four GPUs each, each GPU its own GRES type); the site's other
572 nodes are not in Slurm, so they start down as the node sync would put them ("Slurm
reports down": set in the database before the servers start, to spare the first sync 572
audited changes). Each job asks for 4 GPUs and sleeps a second.

After the kill another scheduler takes the lead and:

* adopts the Slurm jobs it finds running (by name): every job started once (``starts`` 1,
  one Slurm job of its name in Slurm's completion file, none of a second run), including
  those that were running at the kill, and each succeeded with Slurm's exit code 0;
* loses no acknowledged submission: every job a server answered 201 for ran to its end;
* runs each job where gpulease placed it: the Slurm node list of each job equals the nodes
  of its GPU allocation rows, and no GPU held two runs at once.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from e2e_support import Server, assert_no_chip_held_twice, conninfo, leader_of, wait_for

from support.slurm_cluster import (
    MISSING_BINARIES,
    SITE_ID,
    SLURM_NODES,
    LocalSlurmCluster,
    SlurmUnavailable,
)

JOB = {"gpus": 4, "purpose": "health research", "command": "sleep 1"}
NOT_IN_SLURM = "slurm-sync: Slurm reports down: not a node of the test cluster"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalSlurmCluster]:
    if MISSING_BINARIES:
        pytest.skip(f"Slurm binaries absent: {', '.join(MISSING_BINARIES)} (install-slurm.sh)")
    base = Path(tempfile.mkdtemp(prefix="slx-"))  # short: job-step socket paths live there
    slurm = LocalSlurmCluster(
        nodes=len(SLURM_NODES),
        gpus_per_node=4,
        base_dir=base / "c",
        node_names=SLURM_NODES,
        slot_types=True,
    )
    try:
        slurm.start()
    except SlurmUnavailable as error:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(str(error))
    try:
        yield slurm
    finally:
        slurm.cancel_all()
        slurm.stop()
        shutil.rmtree(base, ignore_errors=True)


def _submit_stream(
    server: Server, stop: threading.Event, acknowledged: list[str], pause: float
) -> None:
    with server.client("inftech") as client:
        while not stop.is_set():
            try:
                answer = client.post(
                    "/jobs", json=JOB, headers={"Idempotency-Key": uuid.uuid4().hex}
                )
            except httpx.TransportError:
                continue  # not acknowledged: it may or may not exist, and that is allowed
            if answer.status_code == 201:
                acknowledged.append(answer.json()["id"])
            time.sleep(pause)


def _running_in_slurm(slurm: LocalSlurmCluster) -> set[str]:
    out = slurm.run(["squeue", "-h", "-t", "R", "-o", "%j"], check=False).stdout
    return {name for name in out.split() if name.startswith("gpulease-")}


def test_killing_the_leader_while_slurm_runs_its_jobs_adopts_them_and_loses_nothing(
    start_server: Callable[..., Server], e2e_db_url: str, cluster: LocalSlurmCluster
) -> None:
    with psycopg.connect(conninfo(e2e_db_url)) as conn:
        conn.execute(
            "UPDATE nodes SET state = 'down', state_reason = %s "
            "WHERE site_id = %s AND NOT (id = ANY(%s))",
            (NOT_IN_SLURM, SITE_ID, SLURM_NODES),
        )
    slurm = {
        SITE_ID: {
            "partition": cluster.partition,
            "conf": str(cluster.conf_path),
            "slot_type": "s{slot}",
            "jobcomp": str(cluster.jobcomp_path),
        }
    }
    env = {"GPULEASE_EXECUTOR": "slurm", "GPULEASE_SLURM_SITES": json.dumps(slurm)}
    servers = [start_server(**env), start_server(**env), start_server("--no-scheduler", **env)]
    first = wait_for(lambda: leader_of(servers), 60, "a scheduler to lead")
    by_pid = {f":{s.scheduler.pid}": s for s in servers if s.scheduler is not None}
    leading = next(s for suffix, s in by_pid.items() if first.endswith(suffix))

    stop = threading.Event()
    acknowledged: list[str] = []
    clients = [
        threading.Thread(target=_submit_stream, args=(s, stop, acknowledged, 1.0), daemon=True)
        for s in servers
    ]
    for thread in clients:
        thread.start()
    try:
        wait_for(lambda: len(acknowledged) >= 8, 60, "submissions before the kill")
        running = wait_for(lambda: _running_in_slurm(cluster), 60, "Slurm running gpulease jobs")
        assert leading.scheduler is not None
        leading.scheduler.send_signal(signal.SIGKILL)
        leading.scheduler.wait(10)
        successor = wait_for(
            lambda: (name := leader_of(servers)) and name != first and name, 60, "a new leader"
        )
        killed_at = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= killed_at + 8, 60, "submissions after the kill")
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
    assert successor != first
    assert len(set(acknowledged)) == len(acknowledged)

    survivor = next(s for s in servers if s is not leading)
    with survivor.client("inftech") as client:

        def all_ended() -> bool:
            return all(
                client.get(f"/jobs/{job}").json()["state"] in ("succeeded", "failed")
                for job in acknowledged
            )

        wait_for(all_ended, 240, "every acknowledged job to end")

    with psycopg.connect(conninfo(e2e_db_url)) as conn:
        rows = conn.execute(
            "SELECT id, state, starts, exit_code FROM jobs WHERE id = ANY(%s)", (acknowledged,)
        ).fetchall()
        allocations = conn.execute(
            'SELECT gpu_serial, job_id, start, "end" FROM gpu_allocations '
            "WHERE job_id = ANY(%s) ORDER BY gpu_serial, start",
            (acknowledged,),
        ).fetchall()
        placed = conn.execute(
            "SELECT DISTINCT job_id, node_id FROM gpu_allocations WHERE job_id = ANY(%s)",
            (acknowledged,),
        ).fetchall()
    assert len(rows) == len(acknowledged), "an acknowledged job is missing"
    assert {(state, starts, code) for _, state, starts, code in rows} == {("succeeded", 1, 0)}
    assert_no_chip_held_twice(allocations)

    # Slurm's side: one Slurm job per gpulease job, its first run, on gpulease's nodes
    ended = wait_for(
        lambda: (
            (found := cluster.completed_jobs())
            and {f"gpulease-{j}.1" for j in acknowledged} <= {f["Name"] for f in found.values()}
            and found
        ),
        30,
        "Slurm's completion records",
    )
    by_name: dict[str, list[dict[str, str]]] = {}
    for fields in ended.values():
        by_name.setdefault(fields["Name"], []).append(fields)
    nodes_of: dict[str, set[str]] = {}
    for job_id, node_id in placed:
        nodes_of.setdefault(job_id, set()).add(node_id)
    for job_id in acknowledged:
        (record,) = by_name[f"gpulease-{job_id}.1"]  # started once in Slurm too
        assert f"gpulease-{job_id}.2" not in by_name
        assert record["JobState"] == "COMPLETED"
        names = cluster.run(["scontrol", "show", "hostnames", record["NodeList"]]).stdout
        assert set(names.split()) == nodes_of[job_id], job_id
    # the runs Slurm held at the kill were adopted by the new leader, not run again
    assert running <= {f"gpulease-{j}.1" for j in acknowledged}
