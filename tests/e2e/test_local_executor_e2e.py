"""The local executor through the real server: commands run as subprocesses with their GPU
allocation in the environment; exit codes, logs and cancellation are real."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from e2e_support import Server, wait_for


def _wait_state(client: httpx.Client, job_id: str, states: set[str]) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (j := client.get(f"/jobs/{job_id}").json())["state"] in states and j,
            30,
            f"{job_id} to reach {states}",
        )
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_local_executor_runs_commands(start_server: Callable[..., Server]) -> None:
    server = start_server(GPULEASE_EXECUTOR="local")
    with server.client("bank") as bank:
        ok = bank.post(
            "/jobs",
            json={
                "gpus": 8,
                "gpus_per_node": 4,
                "purpose": "financial AI: credit scoring",
                "command": 'echo "gpus=$CUDA_VISIBLE_DEVICES nodes=$GPULEASE_NODE_COUNT '
                'job=$GPULEASE_JOB_ID purpose=$GPULEASE_PURPOSE"',
            },
        ).json()
        bad = bank.post(
            "/jobs",
            json={
                "gpus": 1,
                "purpose": "financial AI: credit scoring",
                "command": "echo failing >&2; exit 3",
            },
        ).json()
        done = _wait_state(bank, ok["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded", done
        text = bank.get(f"/jobs/{ok['id']}/logs").json()["text"]
        assert f"gpus=0,1,2,3 nodes=2 job={ok['id']} purpose=financial AI: credit scoring" in text
        failed = _wait_state(bank, bad["id"], {"succeeded", "failed"})
        assert failed["state"] == "failed"
        assert failed["exit_code"] == 3
        assert "failing" in bank.get(f"/jobs/{bad['id']}/logs").json()["text"]

        # the job runs as an unprivileged user: it tells its pid through its log
        long = bank.post(
            "/jobs",
            json={
                "gpus": 4,
                "purpose": "financial AI: credit scoring",
                "command": "echo pid=$$; exec sleep 120",
            },
        ).json()
        _wait_state(bank, long["id"], {"running"})
        said = wait_for(
            lambda: "\n" in (t := bank.get(f"/jobs/{long['id']}/logs").json()["text"]) and t,
            20,
            "the command to print its pid",
        )
        pid = int(said.split("pid=", 1)[1].split()[0])
        assert _alive(pid)
        bank.post(f"/jobs/{long['id']}/cancel", json={"reason": "no longer needed"})
        wait_for(lambda: not _alive(pid), 20, "the cancelled process to be stopped")
        time.sleep(0.5)
        assert bank.get(f"/jobs/{long['id']}").json()["state"] == "cancelled"
