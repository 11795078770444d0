"""Helpers for end-to-end tests: the server subprocess, the CLI runner, waiting.

Test modules import these from here, never from ``conftest`` (with several conftest.py files
in the tree, ``import conftest`` finds whichever was imported first).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

GPULEASE = [sys.executable, "-m", "gpulease.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """An API server, and the scheduler process started beside it (None: no scheduler, or
    the server runs the loop itself with ``--scheduler``)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)
    scheduler: subprocess.Popen[bytes] | None = None

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=30,
        )

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/api/v1/health", timeout=5).json())

    def kill(self, sig: int = signal.SIGTERM) -> None:
        for process in (self.process, self.scheduler):
            if process is not None and process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


# One ledger key directory for every process this test process starts: `init --demo` makes
# a template's signing key there, and each server on a copy of that template finds it, as a
# deployment's servers share the key the operator installed (removed when the tests end).
E2E_KEY_DIR = Path(tempfile.mkdtemp(prefix="gpulease-e2e-keys-"))
atexit.register(shutil.rmtree, E2E_KEY_DIR, True)


def server_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GPULEASE_DATABASE_URL=db_url,
        GPULEASE_DATA_DIR=str(data_dir),
        GPULEASE_LEDGER_KEY_DIR=str(E2E_KEY_DIR),
        GPULEASE_SCHEDULER_INTERVAL_S="0.2",
        GPULEASE_PREEMPTION_GRACE_S="2",
        GPULEASE_LEADER_TTL_S="4",  # a dead leader's lease lapses in 4 s, not 15
    )
    env.update(extra)
    return env


def init_demo(db_url: str, data_dir: Path) -> dict[str, str]:
    """Run ``gpulease init --demo --json``; return tokens by short name."""
    done = subprocess.run(
        [*GPULEASE, "init", "--demo", "--json", "--reset"],
        env=server_env(db_url, data_dir),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    users = json.loads(done.stdout)
    short = {
        "operator-admin": "operator",
        "compliance-officer": "compliance",
        "INF Tech": "inftech",
        "Bank Nusantara Digital": "bank",
        "Universitas Teknologi Jakarta": "university",
    }
    return {short[u["tenant"] or u["role"]]: u["token"] for u in users}


def start(db_url: str, data_dir: Path, tokens: dict[str, str], *args: str, **extra: str) -> Server:
    """``gpulease serve ARGS`` and, as deployed by default, a ``gpulease scheduler`` process
    beside it; with ``--no-scheduler`` the API alone, with ``--scheduler`` the API running
    the loop itself."""
    port = free_port()
    log = data_dir / f"serve-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(db_url, data_dir, **extra)
    scheduler = None
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*GPULEASE, "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        if "--scheduler" not in args and "--no-scheduler" not in args:
            scheduler = subprocess.Popen(
                [*GPULEASE, "scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
    server = Server(f"http://127.0.0.1:{port}", process, log, tokens, scheduler)
    # a guard against a hang, not a measure: a quiet machine serves in about 2 s, a loaded
    # one (a suite beside others) has taken over 60
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for started in (process, scheduler):
            if started is not None and started.poll() is not None:
                server.kill()
                raise AssertionError(f"server exited {started.returncode}: {log.read_text()}")
        try:
            if httpx.get(server.url + "/api/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise AssertionError(f"server did not come up: {log.read_text()}")


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_cli(
    env: Mapping[str, str], *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``gpulease ARGS`` as a user would; with ``check``, exit status 0 is asserted."""
    done = subprocess.run(
        [sys.executable, "-m", "gpulease.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


# ------------------------------------------------------------------ several servers
def conninfo(db_url: str) -> str:
    """libpq's form of a PostgreSQL URL of the servers (``postgresql+psycopg://``)."""
    return db_url.replace("postgresql+psycopg://", "postgresql://", 1)


def leader_of(servers: list[Server]) -> str:
    """The leading scheduler's name as the first server answering says ("" if none)."""
    for server in servers:
        try:
            rows = server.health().get("schedulers") or []
        except httpx.HTTPError:
            continue
        if rows and rows[0].get("leader"):
            return str(rows[0]["leader"])
    return ""


def assert_no_chip_held_twice(rows: list[tuple[str, str, datetime, datetime | None]]) -> None:
    """(GPU serial, job, start, end) rows sorted by serial and start: each run closed, and
    no two runs on one chip at the same moment."""
    previous: dict[str, tuple[str, datetime]] = {}
    for serial, job, start, end in rows:
        assert end is not None, f"{serial}: the run of {job} never closed"
        if serial in previous:
            other, other_end = previous[serial]
            assert other_end <= start, f"{serial}: {other} until {other_end}, {job} from {start}"
        previous[serial] = (job, end)
