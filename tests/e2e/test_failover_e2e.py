"""Two servers share one database: exactly one leads the scheduler; when it dies, the other
takes over, adopts the running jobs and keeps scheduling. On SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from e2e_support import GPULEASE, Server, server_env, wait_for

# Every wait below returns as soon as its condition holds; the limits only bound a failure.
# They are wide because these tests run first, beside mypy and other servers starting.


def test_exactly_one_leader_and_failover(start_server: Callable[..., Server]) -> None:
    first = start_server("--scheduler")  # each runs the loop in its own process
    wait_for(lambda: first.health()["this_process_leads"], 90, "the first server to lead")
    second = start_server("--scheduler")
    # the second serves the API but does not lead while the first lives
    for _ in range(10):
        assert second.health()["this_process_leads"] is False
        assert first.health()["this_process_leads"] is True

    with second.client("inftech") as inf:
        job = inf.post(
            "/jobs",
            json={"gpus": 72, "purpose": "health research", "command": "fold", "duration_s": 4},
        ).json()
        wait_for(
            lambda: inf.get(f"/jobs/{job['id']}").json()["state"] == "running",
            60,
            "the leader to start the job",
        )

        first.kill(signal.SIGKILL)  # no goodbye: the lock must fall with the process
        wait_for(lambda: second.health()["this_process_leads"], 90, "the second to take over")
        health = second.health()
        assert health["schedulers"][0]["leader"] != ""

        done = wait_for(
            lambda: (
                (j := inf.get(f"/jobs/{job['id']}").json())["state"] in ("succeeded", "failed")
                and j
            ),
            30,
            "the adopted job to finish",
        )
        assert done["state"] == "succeeded"
        assert done["starts"] == 1  # adopted, not restarted
        after = inf.post(
            "/jobs",
            json={"gpus": 8, "purpose": "health research", "command": "fold", "duration_s": 0.5},
        ).json()
        finished = wait_for(
            lambda: (j := inf.get(f"/jobs/{after['id']}").json())["state"] == "succeeded" and j,
            30,
            "a job under the new leader",
        )
        assert finished["exit_code"] == 0


def test_a_scheduler_process_beside_api_only_servers(
    start_server: Callable[..., Server], e2e_db_url: str, e2e_data_dir: Path
) -> None:
    api = start_server("--no-scheduler")
    with api.client("university") as uni:
        job = uni.post(
            "/jobs", json={"gpus": 4, "purpose": "education", "command": "lab", "duration_s": 0.5}
        ).json()
        time.sleep(1.0)
        waiting = uni.get(f"/jobs/{job['id']}").json()
        assert waiting["state"] == "queued"
        assert waiting["wait_reason"] == "waiting for the scheduler's next pass"
        assert api.health()["this_process_leads"] is False
        scheduler = subprocess.Popen(
            [*GPULEASE, "scheduler"],
            env=server_env(e2e_db_url, e2e_data_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            done = wait_for(
                lambda: (j := uni.get(f"/jobs/{job['id']}").json())["state"] == "succeeded" and j,
                30,
                "the scheduler process to run the job",
            )
            assert done["exit_code"] == 0
        finally:
            scheduler.send_signal(signal.SIGTERM)
            assert scheduler.wait(30) == 0
