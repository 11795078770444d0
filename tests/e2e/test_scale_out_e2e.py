"""Scale-out: several API servers on one PostgreSQL, one scheduler leader at a time.

Three ``gpulease serve`` processes, each with a ``gpulease scheduler`` process beside it (as
deployed), share one database. Clients submit jobs to all three servers without pause; in
the middle of the stream the leading scheduler process is killed with SIGKILL (no goodbye).
Another scheduler takes the lead, and then:

* no acknowledged submission is lost: every job a server answered 201 for exists and runs
  to its end;
* nothing is scheduled twice: each job started once (the new leader adopts the runs it
  finds), and no GPU ever held two runs at the same moment (the allocation rows, the
  record of who used which chip when, never overlap on one chip);
* a retried submission (same ``Idempotency-Key``, to another server) creates nothing new.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import psycopg
from e2e_support import Server, assert_no_chip_held_twice, conninfo, leader_of, wait_for

JOB = {"gpus": 4, "purpose": "health research", "command": "fold", "duration_s": 0.5}


def _submit_stream(
    server: Server, stop: threading.Event, acknowledged: list[str], keys: dict[str, str]
) -> None:
    with server.client("inftech") as client:
        while not stop.is_set():
            key = uuid.uuid4().hex
            try:
                answer = client.post("/jobs", json=JOB, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                continue  # not acknowledged: it may or may not exist, and that is allowed
            if answer.status_code == 201:
                job_id = answer.json()["id"]
                acknowledged.append(job_id)
                keys[key] = job_id
            time.sleep(0.02)


def test_killing_the_leader_mid_stream_loses_nothing_and_schedules_nothing_twice(
    start_server: Callable[..., Server], e2e_db_url: str
) -> None:
    servers = [start_server() for _ in range(3)]
    first = wait_for(lambda: leader_of(servers), 30, "a scheduler to lead")
    by_pid = {f":{s.scheduler.pid}": s for s in servers if s.scheduler is not None}
    leading = next(s for suffix, s in by_pid.items() if first.endswith(suffix))

    stop = threading.Event()
    acknowledged: list[str] = []
    keys: dict[str, str] = {}
    clients = [
        threading.Thread(target=_submit_stream, args=(s, stop, acknowledged, keys), daemon=True)
        for s in servers
    ]
    for thread in clients:
        thread.start()
    try:
        wait_for(lambda: len(acknowledged) >= 30, 30, "submissions before the kill")
        assert leading.scheduler is not None
        leading.scheduler.send_signal(signal.SIGKILL)
        leading.scheduler.wait(10)
        successor = wait_for(
            lambda: (name := leader_of(servers)) and name != first and name, 40, "a new leader"
        )
        killed_at = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= killed_at + 30, 30, "submissions after the kill")
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
    assert successor != first

    # a retry of an acknowledged submission, to another server, creates nothing
    key, job_id = next(iter(keys.items()))
    with servers[2].client("inftech") as client:
        again = client.post("/jobs", json=JOB, headers={"Idempotency-Key": key})
    assert again.json()["id"] == job_id

    survivor = next(s for s in servers if s is not leading)
    with survivor.client("inftech") as client:

        def all_ended() -> bool:
            for job in acknowledged:
                if client.get(f"/jobs/{job}").json()["state"] not in ("succeeded", "failed"):
                    return False
            return True

        wait_for(all_ended, 120, "every acknowledged job to end")
    assert len(set(acknowledged)) == len(acknowledged)

    with psycopg.connect(conninfo(e2e_db_url)) as conn:
        rows = conn.execute(
            "SELECT id, state, starts, exit_code FROM jobs WHERE id = ANY(%s)", (acknowledged,)
        ).fetchall()
        allocations = conn.execute(
            'SELECT gpu_serial, job_id, start, "end" FROM gpu_allocations '
            "WHERE job_id = ANY(%s) ORDER BY gpu_serial, start",
            (acknowledged,),
        ).fetchall()
    assert len(rows) == len(acknowledged), "an acknowledged job is missing"
    assert {(state, starts, code) for _, state, starts, code in rows} == {("succeeded", 1, 0)}
    assert len({job for _, job, _, _ in allocations}) == len(acknowledged)
    assert_no_chip_held_twice(allocations)
