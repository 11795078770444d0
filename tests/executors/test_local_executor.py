"""The local executor with real processes: environment, exit codes, stop, the orphan a
dead leader leaves behind (stopped before its job is requeued, never a stranger's pid), the
run's isolation from the server (user, environment, logs, database), the log cap, and runs
that cannot start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpulease.executors.base import Completion, Launch, NodeSlice
from gpulease.executors.local import LocalExecutor, _alive
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.services.setup import make_executor
from gpulease.settings import Settings


def launch_of(tmp_path: Path, command: str, job: str = "job-1", run: int = 1) -> Launch:
    return Launch(
        job_id=job,
        run=run,
        tenant_id="t",
        purpose="education",
        command=command,
        image=None,
        gpus=4,
        slices=(NodeSlice("n0", (0, 1, 2, 3), ("s0", "s1", "s2", "s3")),),
        started_at=datetime.now(UTC),
        duration_s=None,
        log_path=tmp_path / "logs" / f"{job}.log",
    )


def wait_done(executor: LocalExecutor, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = executor.poll(datetime.now(UTC))
        if done:
            return [c.exit_code for c in done]
        time.sleep(0.05)
    raise AssertionError("the run did not end")


def test_environment_exit_code_and_log(tmp_path: Path) -> None:
    executor = LocalExecutor()
    launch = launch_of(tmp_path, 'echo "$CUDA_VISIBLE_DEVICES $GPULEASE_GPU_SERIALS"; exit 5')
    executor.launch(launch)
    assert launch.log_path.with_suffix(".pid").exists()
    assert wait_done(executor) == [5]
    assert "0,1,2,3 s0,s1,s2,s3" in launch.log_path.read_text()
    assert not launch.log_path.with_suffix(".pid").exists()


def test_an_orphan_of_a_dead_leader_is_stopped_before_requeue(tmp_path: Path) -> None:
    dead_leader = LocalExecutor()
    launch = launch_of(tmp_path, "exec sleep 120")
    dead_leader.launch(launch)
    pid = int(launch.log_path.with_suffix(".pid").read_text())
    assert _alive(pid)
    successor = LocalExecutor(kill_after_s=5)
    assert successor.adopt(launch) is False  # cannot adopt: requeue
    assert not _alive(pid)  # but the orphan no longer holds the GPUs
    assert "the process that ran it is gone" in launch.log_path.read_text()


def test_a_recycled_pid_is_left_alone(tmp_path: Path) -> None:
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        launch = launch_of(tmp_path, "true", job="job-2")
        launch.log_path.parent.mkdir(parents=True)
        launch.log_path.with_suffix(".pid").write_text(f"{stranger.pid}\n")
        assert LocalExecutor().adopt(launch) is False
        assert _alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_a_vanished_log_costs_the_text_not_the_completion(tmp_path: Path) -> None:
    executor = LocalExecutor()
    launch = launch_of(tmp_path, "sleep 0.3; exit 0", job="job-3")
    executor.launch(launch)
    launch.log_path.unlink()  # an operator cleaning up, a full disk...
    assert wait_done(executor) == [0]


# ------------------------------------------------------------------ isolation of the run
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="switching a job to the unprivileged job user needs root"
)


def wait_for_run(executor: LocalExecutor, timeout: float = 30.0) -> list[Completion]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = executor.poll(datetime.now(UTC))
        if done:
            return done
        time.sleep(0.05)
    raise AssertionError("the run did not end")


@pytest.fixture
def open_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A server directory others may traverse (as a real one often is, unlike pytest's
    0700 temp dirs), holding a real SQLite database and the data dir; the server's
    environment carries the database URL and a secret."""
    root = Path(tempfile.mkdtemp(prefix="gpulease-site-"))
    root.chmod(0o755)
    url = f"sqlite:///{root / 'gpulease.db'}"
    db = Database(url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    monkeypatch.setenv("GPULEASE_DATABASE_URL", url)
    monkeypatch.setenv("GPULEASE_TEST_SECRET", "hunter2-server-secret")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_root
def test_a_job_cannot_read_other_logs_the_database_nor_the_servers_environment(
    open_site: Path,
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{open_site / 'gpulease.db'}",
        data_dir=open_site / "var",
        executor="local",
    )
    executor = make_executor(settings)
    assert isinstance(executor, LocalExecutor)
    try:
        logs = settings.data_dir / "logs"
        other = launch_of(open_site, "echo other-tenant-secret", job="job-other")
        other = replace(other, log_path=logs / "job-other.log")
        executor.launch(other)
        assert [c.exit_code for c in wait_for_run(executor)] == [0]
        assert "other-tenant-secret" in other.log_path.read_text()

        database = open_site / "gpulease.db"
        nosy = replace(
            launch_of(open_site, "", job="job-nosy"),
            command=(
                f"id -un; echo cwd=$(pwd) home=$HOME; "
                f"cat {other.log_path}; echo cat-log=$?; "
                f"cat {database} | head -c 16; echo; "
                f"test -r {database}; echo read-db=$?; "
                f"ls {settings.data_dir}; echo ls-data=$?; "
                "echo '--- env'; env; echo '--- end'"
            ),
            log_path=logs / "job-nosy.log",
        )
        executor.launch(nosy)
        assert [c.exit_code for c in wait_for_run(executor)] == [0]
        text = nosy.log_path.read_text()
    finally:
        executor.close()
    user, places = text.splitlines()[:2]
    assert user == "nobody"
    cwd, home = (part.split("=", 1)[1] for part in places.split())
    assert cwd == home
    assert Path(cwd).parent == Path(tempfile.gettempdir())
    assert not Path(cwd).exists()  # the scratch dir goes with the run
    assert "other-tenant-secret" not in text
    assert "cat-log=1" in text
    assert "SQLite format" not in text
    assert "read-db=1" in text
    assert "ls-data=2" in text
    assert text.count("Permission denied") >= 3
    env = text.split("--- env\n", 1)[1].split("--- end", 1)[0]
    names = {line.split("=", 1)[0] for line in env.splitlines() if "=" in line}
    assert "GPULEASE_DATABASE_URL" not in names
    assert "hunter2-server-secret" not in text
    assert {"PATH", "HOME", "LANG", "GPULEASE_JOB_ID", "GPULEASE_RUN"} <= names
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3" in env


def test_a_command_that_cannot_start_fails_its_run_not_the_executor(tmp_path: Path) -> None:
    executor = LocalExecutor()
    bad = launch_of(tmp_path, "echo before\0after", job="job-nul")
    executor.launch(bad)  # Popen refuses the NUL byte: no exception out of launch
    [failed] = wait_for_run(executor)
    assert (failed.job_id, failed.exit_code) == ("job-nul", 127)
    assert "null byte" in failed.log
    assert "null byte" in bad.log_path.read_text()
    good = launch_of(tmp_path, "echo still-working", job="job-next")
    executor.launch(good)
    assert [c.exit_code for c in wait_for_run(executor)] == [0]
    assert "still-working" in good.log_path.read_text()


@needs_root
def test_an_unknown_job_user_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    executor = LocalExecutor(job_user="no-such-user-gpulease")
    launch = launch_of(tmp_path, "echo never", job="job-who")
    executor.launch(launch)
    [failed] = wait_for_run(executor)
    assert failed.exit_code == 127
    assert "no-such-user-gpulease" in failed.log
    assert "never" not in launch.log_path.read_text()


CAP = 10_000
NOTICE = f"[gpulease] log cut at {CAP} bytes\n"


def test_a_log_is_cut_at_the_cap_and_the_job_runs_to_its_end(tmp_path: Path) -> None:
    executor = LocalExecutor(max_log_bytes=CAP)
    # 200 MB on stdout and stderr, then its own exit code: it was neither killed nor blocked
    launch = launch_of(
        tmp_path, "yes out | head -c 100000000; yes err | head -c 100000000 >&2; exit 7"
    )
    executor.launch(launch)
    [done] = wait_for_run(executor, timeout=120)
    assert done.exit_code == 7
    data = launch.log_path.read_bytes()
    assert len(data) <= CAP + len(NOTICE) + 1
    assert data.endswith(NOTICE.encode())
    assert data.count(b"out\n") == CAP // 4
    assert NOTICE in done.log


def test_a_job_printing_forever_keeps_running_with_its_log_capped(tmp_path: Path) -> None:
    executor = LocalExecutor(max_log_bytes=CAP, kill_after_s=2)
    launch = launch_of(tmp_path, "yes forever", job="job-forever")
    executor.launch(launch)
    try:
        deadline = time.monotonic() + 30
        while NOTICE not in launch.log_path.read_text():
            assert time.monotonic() < deadline, "the log was never cut"
            time.sleep(0.05)
        for _ in range(20):  # it keeps printing, the pump keeps draining
            assert executor.poll(datetime.now(UTC)) == []
            time.sleep(0.05)
        assert executor.active() == {("job-forever", 1)}
        assert launch.log_path.stat().st_size <= CAP + len(NOTICE) + 1
    finally:
        executor.stop("job-forever", "test over")
    text = launch.log_path.read_text()
    assert text.endswith("[gpulease] stopping: test over\n")
    assert len(text) <= CAP + len(NOTICE) + 100


def test_a_requeued_run_appends_and_reports_only_its_own_output(tmp_path: Path) -> None:
    executor = LocalExecutor()
    executor.launch(launch_of(tmp_path, "echo first-run", job="job-again", run=1))
    wait_for_run(executor)
    second = launch_of(tmp_path, "echo second-run", job="job-again", run=2)
    executor.launch(second)
    [done] = wait_for_run(executor)
    assert done.log == "second-run\n"
    assert second.log_path.read_text() == "first-run\nsecond-run\n"
