"""Following a job from the CLI: ``--wait`` reports every change of state when not on a
terminal, and ``job logs -f`` prints a running job's output as it comes (a real process run
by the local executor), keeping what a cancelled job wrote."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_support import USERS, Cli
from fastapi.testclient import TestClient

from gpulease.cli.client import ApiClient, Credentials
from gpulease.cli.remote import follow_log
from gpulease.domain.clock import ManualClock
from gpulease.executors.base import Executor
from gpulease.executors.local import LocalExecutor
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduling import LiveScheduler

STAMPED = re.compile(r"^\d\d:\d\d:\d\d (job-[0-9a-f]{12}): (\w+)")


@contextmanager
def scheduling(scheduler: LiveScheduler, clock: ManualClock) -> Iterator[None]:
    """The scheduler making a pass every 0.1 s (the clock a second on each time) while the
    block runs, as a server's scheduler loop would."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                clock.advance(1)
                scheduler.tick()
            except BaseException as error:  # reported after the block
                failures.append(error)
                return
            stop.wait(0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures


def test_wait_prints_a_line_per_state_change_off_a_terminal(
    cli: Cli, scheduler: LiveScheduler, clock: ManualClock
) -> None:
    with scheduling(scheduler, clock):
        run = cli(
            "bank",
            "job",
            "submit",
            "--gpus",
            "8",
            "--purpose",
            "financial-services-ai",
            "--command",
            "python risk.py",
            "--duration",
            "30",
            "--wait",
            "--json",
        )
    job = json.loads(run.stdout)  # standard output keeps the JSON alone
    assert job["state"] == "succeeded"
    lines = run.stderr.splitlines()
    matched = [STAMPED.match(line) for line in lines]
    assert all(matched), lines
    assert {m.group(1) for m in matched if m} == {job["id"]}
    states = [m.group(2) for m in matched if m]
    assert states == ["queued", "running", "succeeded"], lines


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can enter: the run (``nobody`` when tests run as root) looks
    for the file that lets it go on."""
    path = Path(tempfile.mkdtemp(prefix="gpulease-cli-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def local(ctx: ServiceContext) -> Iterator[LiveScheduler]:
    executor: Executor = LocalExecutor(kill_after_s=1, data_dir=ctx.settings.data_dir)
    try:
        yield LiveScheduler(ctx, executor, name="cli-local")
    finally:
        executor.close()


def python_job(body: str) -> str:
    return f"python3 -c {shlex.quote(body)}"


def submit(cli: Cli, command: str) -> str:
    made = cli(
        "bank",
        "job",
        "submit",
        "--gpus",
        "4",
        "--purpose",
        "financial-services-ai",
        "--command",
        command,
        "--json",
    )
    return str(json.loads(made.stdout)["id"])


def client_of(api: Callable[[str | None], TestClient], demo: list[DemoUser]) -> ApiClient:
    token = next(u.token for u in demo if u.email == USERS["bank"])
    return ApiClient(Credentials("http://testserver", token), http=api(None))


def test_logs_follow_prints_output_while_the_job_runs(
    cli: Cli,
    api: Callable[[str | None], TestClient],
    demo: list[DemoUser],
    local: LiveScheduler,
    clock: ManualClock,
    open_dir: Path,
) -> None:
    flag = open_dir / "go-on"
    job_id = submit(
        cli,
        python_job(
            "import os, time\n"
            "print('first line')\n"
            f"while not os.path.exists({str(flag)!r}): time.sleep(0.05)\n"
            "print('second line')\n"
        ),
    )
    seen: list[str] = []
    released_by: list[str] = []

    def write(text: str) -> None:
        seen.append(text)
        if "first line\n" in "".join(seen) and not released_by:
            released_by.append("the first line arrived")  # only now may the job end
            flag.touch()

    def safety() -> None:  # a broken stream must fail the test, not hang it
        if not flag.exists():
            released_by.append("timeout")
            flag.touch()

    timer = threading.Timer(20, safety)
    timer.start()
    try:
        with scheduling(local, clock):
            ended = follow_log(client_of(api, demo), job_id, write, follow=True, poll_s=0.1)
    finally:
        timer.cancel()
    assert released_by == ["the first line arrived"]
    text = "".join(seen)
    assert text.index("first line\n") < text.index("second line\n")
    assert ended
    shown = json.loads(cli("bank", "job", "show", job_id, "--json").stdout)
    assert shown["state"] == "succeeded", text


def test_a_cancelled_jobs_log_keeps_what_it_wrote(
    cli: Cli, local: LiveScheduler, clock: ManualClock
) -> None:
    job_id = submit(
        cli, python_job("import time\nprint('working on it')\nwhile True: time.sleep(0.05)\n")
    )
    with scheduling(local, clock):
        deadline = time.monotonic() + 40  # (a loaded machine is slow)
        while "working on it" not in cli("bank", "job", "logs", job_id).stdout:
            assert time.monotonic() < deadline, "the job's first line never reached its log"
            time.sleep(0.1)
        cli("bank", "job", "cancel", job_id, "--reason", "enough")
        log = ""
        while "[gpulease] stopping" not in log:  # the next pass stops the run
            assert time.monotonic() < deadline, f"the run was not stopped: {log!r}"
            time.sleep(0.1)
            log = cli("bank", "job", "logs", job_id).stdout
    shown = json.loads(cli("bank", "job", "show", job_id, "--json").stdout)
    assert shown["state"] == "cancelled"
    assert "working on it\n" in log
    assert "[gpulease] stopping" in log
