"""The host side of a throwaway Slurm cluster (test support): munge, fake GPU devices, free
ports, and process checks that never go by process name (only by pid, its ``/proc`` state
and command line). See ``slurm_cluster.py``."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
NVIDIA_MAJOR = 195
PORT_RANGE = (20000, 32000)


class SlurmError(RuntimeError):
    """Base class of the local Slurm cluster's errors."""


class SlurmUnavailable(SlurmError):
    """Slurm cannot run here at all (binary missing, munge broken, no root for devices)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Slurm is unavailable: {reason}")
        self.reason = reason


class SlurmStartError(SlurmError):
    """The daemons were started but the cluster did not become ready."""


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def pick_port_block(count: int) -> int:
    rng = random.Random()
    low, high = PORT_RANGE
    for _ in range(500):
        base = rng.randrange(low, high - count)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise SlurmStartError(f"no block of {count} free TCP ports in {low}-{high}")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies count as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the parenthesised command name, which may itself contain ')'.
    state = text.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


MUNGED_PID_FILE = Path("/run/munge/munged.pid")
# Test runs on this host that may use munged: a file per controlling pytest process (its pid),
# and ``started``: the pid of the munged a test run started (tests/munge_guard.py)
MUNGE_USERS_DIR = Path(tempfile.gettempdir()) / "gpulease-munge-test-runs"
MUNGE_STARTED = MUNGE_USERS_DIR / "started"


def running_munged(pid_file: Path = MUNGED_PID_FILE) -> int | None:
    """The pid of the munged named by ``pid_file``, if that process is alive and is munged."""
    try:
        pid = int(pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and Path(command.decode()).name == "munged" else None


def stop_munged_started_since(before: int | None, pid_file: Path = MUNGED_PID_FILE) -> None:
    """Stop the munged of ``pid_file`` unless it is the one that ran before (``before``)."""
    pid = running_munged(pid_file)
    if pid is None or pid == before:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


def _range(prefix: str, first: int, last: int) -> str:
    return f"{prefix}{first}" if first == last else f"{prefix}[{first}-{last}]"


def ensure_munge() -> None:
    """Make ``munge -n | unmunge`` work, starting ``munged`` if needed (never stopped here)."""
    if munge_works():
        return
    if not MUNGE_KEY.exists():
        raise SlurmUnavailable(f"{MUNGE_KEY} is missing (run scripts/install-slurm.sh)")
    try:
        MUNGE_RUN_DIR.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(LookupError):
            shutil.chown(MUNGE_RUN_DIR, "munge", "munge")
        MUNGE_RUN_DIR.chmod(0o755)
        result = subprocess.run(["munged", "--force"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SlurmUnavailable(f"cannot start munged: {exc}") from exc
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if munge_works():
            started = running_munged()
            if started is not None:  # for the last test run out to stop (munge_guard)
                with contextlib.suppress(OSError):
                    MUNGE_USERS_DIR.mkdir(parents=True, exist_ok=True)
                    MUNGE_STARTED.write_text(f"{started}\n")
            return
        time.sleep(0.1)
    raise SlurmUnavailable(
        "munge -n | unmunge fails even after starting munged "
        f"(rc={result.returncode}): {result.stderr.strip()}"
    )


def munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if cred.returncode != 0:
            return False
        check = subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return check.returncode == 0


def ensure_devices(gpus: int) -> None:
    """Character devices ``/dev/nvidia0..gpus-1`` (fake GPUs), created when missing."""
    for n in range(gpus):
        path = Path(f"/dev/nvidia{n}")
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            try:
                os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(NVIDIA_MAJOR, n))
            except OSError as exc:
                raise SlurmUnavailable(f"cannot create {path}: {exc}") from exc
            continue
        if not stat.S_ISCHR(mode):
            raise SlurmUnavailable(f"{path} exists but is not a character device")
