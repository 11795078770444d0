"""The local executor: each run is a subprocess on this machine.

The job's ``command`` runs under ``/bin/sh -c`` in its own session (process group), with
``CUDA_VISIBLE_DEVICES`` and the ``GPULEASE_*`` variables of :meth:`Launch.environment`; its
standard output and error go to ``<data_dir>/logs/<job>.log``, which the API serves while
it runs. ``stop`` sends SIGTERM to the group, then SIGKILL after ``kill_after_s``.

A run started by another process cannot be adopted (its exit code is not ours to collect),
so after a failover such runs are requeued. So that a requeued run never shares its GPUs
with the orphan the dead leader left running, each run writes ``<job>.pid`` beside its log;
``adopt`` stops that process group first, once ``/proc/<pid>/environ`` proves it is the same
job and run (a recycled pid is left alone).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from gpulease.executors.base import Completion, Launch

LOG_CAP = 1 << 20  # bytes of a finished run's log kept in the database


@dataclass
class _Proc:
    launch: Launch
    process: subprocess.Popen[bytes]
    log: IO[bytes]


class LocalExecutor:
    name = "local"

    def __init__(self, kill_after_s: float = 5.0) -> None:
        self.kill_after_s = kill_after_s
        self._procs: dict[str, _Proc] = {}
        self._failed: list[Completion] = []

    def launch(self, launch: Launch) -> None:
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = launch.log_path.open("wb")
        if not launch.command:
            log.write(b"[gpulease local] this executor runs commands, not images\n")
            log.close()
            self._failed.append(
                Completion(
                    launch.job_id,
                    launch.run,
                    127,
                    datetime.now(UTC),
                    "[gpulease local] this executor runs commands, not images\n",
                )
            )
            return
        env = dict(os.environ) | launch.environment()
        process = subprocess.Popen(
            ["/bin/sh", "-c", launch.command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._procs[launch.job_id] = _Proc(launch, process, log)
        _pid_file(launch).write_text(f"{process.pid}\n")

    def adopt(self, launch: Launch) -> bool:
        if launch.job_id in self._procs:
            return True
        self._stop_orphan(launch)
        return False

    def _stop_orphan(self, launch: Launch) -> None:
        """Stop the process group a dead leader left running for this run, if any."""
        path = _pid_file(launch)
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            return
        marks = {f"GPULEASE_JOB_ID={launch.job_id}", f"GPULEASE_RUN={launch.run}"}
        if marks <= _environ(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.kill_after_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                if _alive(pid):
                    os.killpg(pid, signal.SIGKILL)
            while _alive(pid) and time.monotonic() < deadline + self.kill_after_s:
                time.sleep(0.05)  # SIGKILL is not instant on a loaded machine
            with contextlib.suppress(OSError), launch.log_path.open("ab") as log:
                log.write(b"[gpulease] stopped: the process that ran it is gone; requeued\n")
        path.unlink(missing_ok=True)

    def warn(self, job_id: str, message: str) -> None:
        proc = self._procs.get(job_id)
        if proc is not None:
            proc.log.write(f"[gpulease] {message}\n".encode())
            proc.log.flush()

    def stop(self, job_id: str, reason: str) -> None:
        proc = self._procs.pop(job_id, None)
        if proc is None:
            return
        proc.log.write(f"[gpulease] stopping: {reason}\n".encode())
        proc.log.flush()
        _signal_group(proc.process, signal.SIGTERM)
        try:
            proc.process.wait(self.kill_after_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.process, signal.SIGKILL)
            proc.process.wait()
        proc.log.close()
        _pid_file(proc.launch).unlink(missing_ok=True)

    def poll(self, now: datetime) -> list[Completion]:
        done, self._failed = self._failed, []
        for job_id, proc in list(self._procs.items()):
            code = proc.process.poll()
            if code is None:
                continue
            del self._procs[job_id]
            proc.log.close()
            _pid_file(proc.launch).unlink(missing_ok=True)
            done.append(Completion(job_id, proc.launch.run, code, now, _tail(proc.launch.log_path)))
        return done

    def active(self) -> set[tuple[str, int]]:
        return {(job_id, proc.launch.run) for job_id, proc in self._procs.items()}

    def close(self) -> None:
        for job_id in list(self._procs):
            self.stop(job_id, "executor shutting down")


def _pid_file(launch: Launch) -> Path:
    return launch.log_path.with_suffix(".pid")


def _environ(pid: int) -> set[str]:
    """A live process's environment; read again for a moment while it reads empty (as it
    does while the process is between ``exec`` calls)."""
    for _ in range(20):
        try:
            found = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return set()
        if found or not _alive(pid):
            return set(found.decode(errors="replace").split("\0"))
        time.sleep(0.025)
    return set()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _tail(path: os.PathLike[str]) -> str:
    """The end of a run's log; a log that vanished costs the text, never the completion."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_CAP))
            return handle.read().decode(errors="replace")
    except OSError as error:
        return f"[gpulease local] the log could not be read: {error}\n"
