"""End-to-end fixtures: a real ``gpulease serve`` (uvicorn) in a subprocess, over HTTP.

``demo_server`` is one server per test module and backend (SQLite file, or a PostgreSQL
database of the module's own), initialised with ``gpulease init --demo --json`` exactly as
a newcomer would, with the simulated executor and a fast scheduler pass (0.2 s).
``start_server`` starts more servers on a database (leader failover, local executor).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

GPULEASE = [sys.executable, "-m", "gpulease.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=30,
        )

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/api/v1/health", timeout=5).json())

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GPULEASE_DATABASE_URL=db_url,
        GPULEASE_DATA_DIR=str(data_dir),
        GPULEASE_SCHEDULER_INTERVAL_S="0.2",
        GPULEASE_PREEMPTION_GRACE_S="2",
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
    port = free_port()
    log = data_dir / f"serve-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*GPULEASE, "serve", "--port", str(port), *args],
            env=server_env(db_url, data_dir, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log, tokens)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(server.url + "/api/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise AssertionError(f"server did not come up: {log.read_text()}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def e2e_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of this module's own on each backend (created empty, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'gpulease.db'}"
        return
    conninfo = str(request.getfixturevalue("postgres_server"))
    name = f"gpulease_e2e_{os.getpid()}_{secrets.token_hex(4)}"
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            f"postgresql+psycopg://{params.get('user', 'postgres')}@"
            f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{name}"
        )
    finally:
        with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def e2e_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-data")


@pytest.fixture(scope="module")
def demo_tokens(e2e_db_url: str, e2e_data_dir: Path) -> dict[str, str]:
    return init_demo(e2e_db_url, e2e_data_dir)


@pytest.fixture(scope="module")
def demo_server(
    e2e_db_url: str, e2e_data_dir: Path, demo_tokens: dict[str, str]
) -> Iterator[Server]:
    server = start(e2e_db_url, e2e_data_dir, demo_tokens)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def start_server(
    e2e_db_url: str, e2e_data_dir: Path, demo_tokens: dict[str, str]
) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(*args: str, **extra: str) -> Server:
        server = start(e2e_db_url, e2e_data_dir, demo_tokens, *args, **extra)
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()
