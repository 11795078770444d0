"""The local executor with real processes: environment, exit codes, stop, and the orphan a
dead leader leaves behind (stopped before its job is requeued, never a stranger's pid)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from gpulease.executors.base import Launch, NodeSlice
from gpulease.executors.local import LocalExecutor, _alive


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
