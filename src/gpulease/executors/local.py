"""The local executor: each run is a subprocess on this machine, kept away from the server.

``local`` is for one trusted machine: a demo, a workstation, a lab box. It is not a sandbox
for hostile tenants on a shared host (every run shares one unprivileged user, the network
and the kernel); Slurm is for that.

Isolation. A run is ``/bin/sh -c <command>`` in its own session (process group) with:

* a minimal environment, built from nothing: ``PATH`` (:data:`SAFE_PATH`), ``HOME`` and
  ``TMPDIR`` (its scratch directory), ``LANG=C.UTF-8``, ``PYTHONUNBUFFERED=1`` (a Python
  run's output reaches its log as it prints, not when a buffer fills, and is not lost when
  the run is stopped: a pipe would make it block-buffered) and the variables of
  :meth:`Launch.environment` (``CUDA_VISIBLE_DEVICES``, ``GPULEASE_JOB_ID``,
  ``GPULEASE_RUN``...). Nothing of the server's environment reaches it (no database URL,
  no secrets);
* when the server runs as root, the identity of ``job_user`` (default ``nobody``, resolved
  with :mod:`pwd` at each launch) with its own group and no supplementary groups, and umask
  077. When the server is not root it cannot switch users: the run keeps the server's user
  and the executor says so once in the server's log;
* a fresh scratch directory, its working directory and home, owned by that user:
  ``<scratch_root>/gpulease-<job>.<run>.XXXX`` (the system temporary directory by default),
  removed when the run ends. Never the server's working directory;
* standard input from /dev/null and standard output and error into one pipe that the
  server drains (:class:`~gpulease.executors.log_pump.LogPump`) into
  ``<data_dir>/logs/<job>.log``: at most ``max_log_bytes`` of output per run, then one line
  ``[gpulease] log cut at N bytes`` and the rest discarded; the run is never blocked nor
  killed for printing. The log file is appended to by every run of the job (so offsets a
  reader holds stay valid across a requeue). The data directory and its ``logs``
  directory are made owner-only (0700) and the SQLite database files the server names
  (``private_files``) owner-only (0600): a run as ``job_user`` can open no log (not even
  its own: it only holds the pipe), nor the database.

A run ends when its command exits: what it left running in its session is killed then
(it would hold GPUs the scheduler has handed on). ``stop`` sends SIGTERM to the session,
then SIGKILL after ``kill_after_s``. A run that cannot start (an image instead of a
command, a NUL byte in the command, an unknown ``job_user``, any ``OSError``) never raises
out of ``launch``: it becomes a failed completion (exit 127) with the reason in its log.

A run started by another process cannot be adopted (its exit code is not ours to collect),
so after a failover such runs are requeued. So that a requeued run never shares its GPUs
with the orphan the dead leader left running, each run writes ``<job>.pid`` beside its log
``adopt`` stops that process group first, once ``/proc/<pid>/environ`` proves it is the
same job and run (a recycled pid is left alone), and removes the orphan's scratch directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpulease.executors.base import Completion, Launch, SeenWhereRecorded
from gpulease.executors.log_pump import LogPump

logger = logging.getLogger(__name__)

LOG_CAP = 1 << 20  # bytes of a finished run's log handed back (kept in the database)
DEFAULT_MAX_LOG_BYTES = 16 << 20  # bytes of a run's output kept on disk
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CANNOT_START = 127  # the exit code of a run that could not be started
SETTLE_S = 2.0  # after a run's session is gone, how long its output may take to drain
SCRATCH_PREFIX = "gpulease-"


class CannotStart(Exception):
    """A run that cannot be started; the message goes to its log."""


@dataclass(frozen=True, slots=True)
class RunAs:
    """The identity a run takes: a user to switch to, or ``None`` ids (the server's own)."""

    name: str
    uid: int | None = None
    gid: int | None = None


@dataclass
class _Proc:
    launch: Launch
    process: subprocess.Popen[bytes]
    pump: LogPump
    log_start: int  # the log's size when this run started: its own output follows
    scratch: Path


class LocalExecutor(SeenWhereRecorded):
    name = "local"

    def __init__(
        self,
        kill_after_s: float = 5.0,
        *,
        job_user: str = "nobody",
        data_dir: Path | None = None,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        private_files: Iterable[Path] = (),
        scratch_root: Path | None = None,
    ) -> None:
        self.kill_after_s = kill_after_s
        self.job_user = job_user
        self.max_log_bytes = max_log_bytes
        self.scratch_root = scratch_root or Path(tempfile.gettempdir())
        self.switches_user = os.geteuid() == 0
        self._procs: dict[str, _Proc] = {}
        self._failed: list[Completion] = []
        if not self.switches_user:
            logger.warning(
                "the server is not root: local jobs run as its own user %s, not as %r; "
                "`local` is for a single trusted machine",
                pwd.getpwuid(os.geteuid()).pw_name,
                job_user,
            )
        if data_dir is not None:
            _private_dir(data_dir)
            _private_dir(data_dir / "logs")
        for path in private_files:
            _private_file(path)

    # --------------------------------------------------------------------------- launch
    def launch(self, launch: Launch) -> None:
        """Start the run; a run that cannot start becomes a failed completion, never an
        exception (one bad command must not stop the scheduler of the whole site)."""
        try:
            self._start(launch)
        except Exception as error:  # anything at all: the run fails, the executor goes on
            reason = str(error) if isinstance(error, CannotStart) else repr(error)
            if not isinstance(error, CannotStart):
                reason = f"the command could not be started: {reason}"
            logger.warning("run %s/%s could not start: %s", launch.job_id, launch.run, reason)
            self._fail(launch, reason)

    def _start(self, launch: Launch) -> None:
        _private_dir(launch.log_path.parent)
        if not launch.command:
            raise CannotStart("this executor runs commands, not images")
        run_as = self.run_as()
        scratch = self._make_scratch(launch, run_as)
        try:
            log_fd = os.open(
                launch.log_path,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                log_start = os.fstat(log_fd).st_size
                read_fd, write_fd = os.pipe()  # neither end is inherited by the run...
                try:
                    process = subprocess.Popen(
                        ["/bin/sh", "-c", launch.command],
                        stdin=subprocess.DEVNULL,
                        stdout=write_fd,  # ...but this one, as its stdout and stderr
                        stderr=subprocess.STDOUT,
                        env=self.environment(launch, scratch),
                        cwd=scratch,
                        start_new_session=True,
                        umask=0o077,
                        **_identity(run_as),
                    )
                except BaseException:
                    os.close(read_fd)
                    raise
                finally:
                    os.close(write_fd)
            except BaseException:
                os.close(log_fd)
                raise
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        name = f"{launch.job_id}/{launch.run}"
        pump = LogPump(read_fd, log_fd, self.max_log_bytes, name)
        self._procs[launch.job_id] = _Proc(launch, process, pump, log_start, scratch)
        try:
            _pid_file(launch).write_text(f"{process.pid}\n")
        except OSError as error:  # the run goes on; only a failover could not find it
            logger.warning("run %s: no pid file (%s)", name, error)

    def run_as(self) -> RunAs:
        """The identity of the next run: ``job_user`` when the server is root."""
        if not self.switches_user:
            return RunAs(pwd.getpwuid(os.geteuid()).pw_name)
        try:
            entry = pwd.getpwnam(self.job_user)
        except KeyError:
            raise CannotStart(
                f"there is no user {self.job_user!r} to run jobs as (GPULEASE_JOB_USER)"
            ) from None
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def environment(self, launch: Launch, scratch: Path) -> dict[str, str]:
        """The run's whole environment: nothing inherited from the server."""
        home = str(scratch)
        return {
            "PATH": SAFE_PATH,
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        } | launch.environment()

    def _make_scratch(self, launch: Launch, run_as: RunAs) -> Path:
        # mode 0700, a name no other run shares
        scratch = Path(tempfile.mkdtemp(prefix=_scratch_prefix(launch), dir=self.scratch_root))
        if run_as.uid is not None and run_as.gid is not None:
            try:
                os.chown(scratch, run_as.uid, run_as.gid)
            except OSError:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
        return scratch

    def _fail(self, launch: Launch, reason: str) -> None:
        text = f"[gpulease local] {reason}\n"
        with contextlib.suppress(OSError), launch.log_path.open("ab") as log:
            log.write(text.encode(errors="replace"))
        self._failed.append(
            Completion(launch.job_id, launch.run, CANNOT_START, datetime.now(UTC), text)
        )

    # ------------------------------------------------------------------- after a failover
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
        for scratch in self.scratch_root.glob(f"{_scratch_prefix(launch)}*"):
            self._remove_scratch(scratch)
        path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ while it runs
    def warn(self, job_id: str, message: str) -> None:
        proc = self._procs.get(job_id)
        if proc is not None:
            proc.pump.note(message)

    def stop(self, job_id: str, reason: str) -> None:
        proc = self._procs.pop(job_id, None)
        if proc is None:
            return
        proc.pump.note(f"stopping: {reason}")
        _signal_group(proc.process.pid, signal.SIGTERM)
        _wait_unreaped(proc.process, self.kill_after_s)
        _signal_group(proc.process.pid, signal.SIGKILL)  # the stubborn, and what is left
        proc.process.wait()
        self._release(proc)

    def poll(self, now: datetime) -> list[Completion]:
        done, self._failed = self._failed, []
        for job_id, proc in list(self._procs.items()):
            if not _exited(proc.process):
                continue
            # still unreaped, so its process group id cannot have been reused
            _signal_group(proc.process.pid, signal.SIGKILL)
            code = proc.process.wait()
            del self._procs[job_id]
            self._release(proc)
            log = _tail(proc.launch.log_path, proc.log_start)
            done.append(Completion(job_id, proc.launch.run, code, now, log))
        return done

    def active(self) -> set[tuple[str, int]]:
        return {(job_id, proc.launch.run) for job_id, proc in self._procs.items()}

    def close(self) -> None:
        for job_id in list(self._procs):
            self.stop(job_id, "executor shutting down")

    def _release(self, proc: _Proc) -> None:
        """After the run's process is reaped: its output, pid file and scratch go."""
        proc.pump.finish(SETTLE_S)
        proc.pump.close()
        _pid_file(proc.launch).unlink(missing_ok=True)
        self._remove_scratch(proc.scratch)

    def _remove_scratch(self, path: Path) -> None:
        """Remove a run's scratch directory, only ever one this executor would have made."""
        if path.parent == self.scratch_root and path.name.startswith(SCRATCH_PREFIX):
            shutil.rmtree(path, ignore_errors=True)  # does not follow the run's symlinks


def _identity(run_as: RunAs) -> dict[str, Any]:
    """``Popen`` arguments switching to ``run_as`` (none when it is the server's user)."""
    if run_as.uid is None or run_as.gid is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


def _private_dir(path: Path) -> None:
    """Create ``path`` owner-only, or make it so if it is ours and others can enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_uid == os.geteuid() and status.st_mode & 0o077:
        path.chmod(0o700)


def _private_file(path: Path) -> None:
    """Make an SQLite database (and its journal, WAL and shared-memory files) owner-only."""
    for each in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        with contextlib.suppress(OSError):
            status = each.stat()
            if status.st_uid == os.geteuid() and status.st_mode & 0o077:
                each.chmod(status.st_mode & 0o700)
                logger.warning("%s was readable by other users; made owner-only", each)


def _scratch_prefix(launch: Launch) -> str:
    return f"{SCRATCH_PREFIX}{launch.job_id}.{launch.run}."  # ids hold no dot


def _pid_file(launch: Launch) -> Path:
    return launch.log_path.with_suffix(".pid")


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """True once the run's main process has exited, without reaping it."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return process.poll() is not None


def _wait_unreaped(process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _exited(process):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


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


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _tail(path: Path, start: int) -> str:
    """The end of this run's part of the log (from ``start``), at most :data:`LOG_CAP`
    bytes; a log that vanished costs the text, never the completion."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(start, size - LOG_CAP) if size >= start else 0)
            return handle.read(LOG_CAP).decode(errors="replace")
    except OSError as error:
        return f"[gpulease local] the log could not be read: {error}\n"
