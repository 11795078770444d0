"""``make run``'s launcher (``scripts/run-both.sh``): the API and the scheduler as two
processes; Ctrl-C (SIGINT to the terminal's process group) or TERM stops both, and nothing
is left running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from e2e_support import free_port, server_env, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return state.exists() and state.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_make_run_starts_both_and_stops_both(
    tmp_path: Path,
    stop: signal.Signals,
    demo_template: Callable[[str], tuple[str, dict[str, str]]],
) -> None:
    # the run's demo (made once by `gpulease init --demo`, tests/e2e/conftest.py), copied
    source, _tokens = demo_template("sqlite")
    for suffix in ("", "-wal", "-shm"):
        if Path(source + suffix).exists():
            shutil.copyfile(source + suffix, tmp_path / f"demo.db{suffix}")
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    launcher = tmp_path / "gpulease"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m gpulease.cli "$@"\n')
    launcher.chmod(0o755)
    port = free_port()
    env = server_env(url, tmp_path, GPULEASE_BIN=str(launcher))
    run = subprocess.Popen(
        [str(ROOT / "scripts" / "run-both.sh"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"

        def scheduling() -> bool:
            try:
                health = httpx.get(base + "/health", timeout=2).json()
            except (httpx.TransportError, ValueError):
                return False
            return bool(health["schedulers"]) and health["this_process_leads"] is False

        # the API answers, and a scheduler that is not the API process has passed
        wait_for(scheduling, 60, "the API and a scheduler heartbeat")
        children = _children(run.pid)
        assert len(children) == 2
        if stop == signal.SIGINT:
            os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does
        else:
            run.send_signal(signal.SIGTERM)
        run.wait(60)
        wait_for(lambda: not any(_alive(p) for p in children), 30, "both processes to end")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
