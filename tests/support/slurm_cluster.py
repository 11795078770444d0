"""A throwaway Slurm cluster on one host, for tests and benchmarks of the Slurm executor.

Test support, not product: ``gpulease`` never imports it (tests import it as
``support.slurm_cluster``, benchmarks by path).

Design
------
``LocalSlurmCluster`` runs one ``slurmctld`` and ``nodes`` ``slurmd`` daemons on this host,
each ``slurmd`` pretending to be a separate node (``slurmd -N <name>``) with
``gpus_per_node`` GPUs. Nodes are named ``node1..nodeN`` unless ``node_names`` names them
(e.g. after gpulease node ids, ``jkt1-r00-n00``, so a site maps onto the cluster one to one).
Everything the cluster writes (``slurm.conf``, ``gres.conf``, state,
spool, pid and log files, the ``jobcomp/filetxt`` record of finished jobs) lives under
``base_dir``; nothing under ``/etc/slurm`` is read or written. Client commands (``sbatch``,
``squeue``, ``scontrol``, ``scancel``, ``sinfo``) reach the cluster through ``SLURM_CONF``,
see :attr:`LocalSlurmCluster.env` and :meth:`LocalSlurmCluster.client_env`.

The GPUs are fake: character devices ``/dev/nvidia0..N-1`` (major 195, as the NVIDIA driver
uses) created with ``mknod`` when missing, listed in a ``gres.conf`` with ``AutoDetect=off``.
Without the device files a node registers as INVAL ("gres/gpu count reported lower than
configured"). Jobs see ``CUDA_VISIBLE_DEVICES`` set by Slurm exactly as on a real node.

The daemons run in the foreground (``-D``) as children of this process, in their own
session, so a daemon that dies during start-up is noticed at once (its log tail is put in the
error) and every daemon is reaped, which matters where PID 1 does not reap orphans (as in
these VMs). The cluster is set up as root (``SlurmUser=root``), as the recipe in
``/work/shared/SLURM-LOCAL.md`` was verified.

Invariants
----------
* ``start()`` installs nothing. If a binary (``slurmctld``, ``slurmd``, ``munged``,
  ``sbatch``, plus the clients it uses) is missing, or munge cannot be made to work, or the
  device files cannot be created, it raises :class:`SlurmUnavailable` with the reason
  (``scripts/install-slurm.sh`` installs the packages).
* ``start()`` returns only when ``sinfo`` shows every node ``idle``; nodes that come up
  drained or down while responding are resumed. Otherwise it raises :class:`SlurmStartError`
  after ``start_timeout`` seconds with the node states, the reasons and the log tails, and
  stops whatever it started.
* Ports: ``SlurmctldPort`` is ``port_base`` and node ``K`` listens on ``port_base + K``. The
  block is chosen at random in 20000-32000 (below Linux's ephemeral range) among ports that
  can be bound right now, and the ``ClusterName`` embeds it, so two clusters on one host do
  not clash unless they race for the same block between the check and the daemons' bind.
* ``stop()`` signals only the pids read from the daemons' pid files (falling back to the pid
  of the child it started), and only if that process's command line names this cluster's
  ``slurm.conf``: never by process name. SIGTERM, then SIGKILL after ``stop_timeout``. It is
  idempotent and also runs at interpreter exit. It does not cancel jobs: cancel them first
  (``scancel``) or their ``slurmstepd`` processes outlive the cluster. ``munged`` is a shared
  host service; it is started if needed but never stopped. Device files are left in place.
  ``slurmstepd`` daemonizes away from this process; where PID 1 does not reap orphans it
  lingers as a zombie after its job ends (harmless; :func:`pid_alive` counts zombies as gone).
* :meth:`LocalSlurmCluster.reset` brings a used cluster back to its fresh state for the next
  test: every reservation deleted, every job cancelled and gone from ``squeue``, a dead
  ``slurmd`` restarted, every node ``idle`` (drained or down ones resumed).
* A ``base_dir`` created by the cluster (none given) is deleted by ``stop()``; a given one
  is kept, logs included. Its path must be short (Unix socket paths of job steps live in the
  spool directory and are limited to 108 bytes).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from support.slurm_host import (
    MUNGED_PID_FILE,
    SlurmError,
    SlurmStartError,
    SlurmUnavailable,
    cmdline,
    ensure_devices,
    ensure_munge,
    pick_port_block,
    pid_alive,
    running_munged,
    stop_munged_started_since,
    tail,
)

__all__ = [
    "MUNGED_PID_FILE",
    "LocalSlurmCluster",
    "SlurmError",
    "SlurmStartError",
    "SlurmUnavailable",
    "pid_alive",
    "running_munged",
    "stop_munged_started_since",
]

REQUIRED_BINARIES = (
    "slurmctld",
    "slurmd",
    "munged",
    "munge",
    "unmunge",
    "sbatch",
    "sinfo",
    "scontrol",
)
MISSING_BINARIES = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
# the test site: its nodes are named after gpulease node ids ("<site>-r<rack>-n<node>")
SITE_ID = "jkt1"
SLURM_NODES = [f"{SITE_ID}-r00-n{n:02d}" for n in range(4)]
MAX_BASE_DIR_LEN = 64
_NODE_STATE_FLAGS = "*~#!%$@^-+"
IDLE = ("idle", "plnd")  # "plnd": held for a pending job by backfill, stale once it is gone


def _range(prefix: str, first: int, last: int) -> str:
    return f"{prefix}{first}" if first == last else f"{prefix}[{first}-{last}]"


class LocalSlurmCluster:
    """One ``slurmctld`` and ``nodes`` ``slurmd`` with fake GPUs, all under ``base_dir``."""

    def __init__(
        self,
        nodes: int = 4,
        gpus_per_node: int = 4,
        base_dir: Path | None = None,
        *,
        cpus_per_node: int | None = None,
        port_base: int | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        partition: str = "gpu",
        node_names: Sequence[str] | None = None,
        slurmd_timeout: int = 60,
        message_timeout: int | None = None,
        slot_types: bool = False,
        min_job_age: int = 300,
    ) -> None:
        if nodes < 1 or gpus_per_node < 1:
            raise ValueError("nodes and gpus_per_node must be at least 1")
        names = list(node_names) if node_names is not None else []
        if node_names is not None and (len(names) != nodes or len(set(names)) != nodes):
            raise ValueError("node_names must name each of the nodes once")
        if any(not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", n) for n in names):
            raise ValueError("node names are letters, digits and '-', starting with a letter")
        self._node_names = names or [f"node{k}" for k in range(1, nodes + 1)]
        self.nodes = nodes
        self.gpus_per_node = gpus_per_node
        self.cpus_per_node = cpus_per_node if cpus_per_node is not None else max(2, gpus_per_node)
        self.partition = partition
        self.slurmd_timeout = slurmd_timeout  # a node silent this long is marked down
        # Slurm's MessageTimeout (None: Slurm's 10 s). A node is marked down about
        # 2 x MessageTimeout + SlurmdTimeout after it died (27 s at 10 and 5; 11 s at 2 and 5)
        self.message_timeout = message_timeout
        # seconds a finished job stays in squeue (slurmctld purges older ones every 60 s);
        # short, a test can make squeue forget a job (its jobcomp line remains)
        self.min_job_age = min_job_age
        # each GPU its own GRES type, named after its index (gpu:s0 ... gpu:s3), so a job can
        # ask for exactly the GPUs gpulease chose (--gres=gpu:s1:1,gpu:s3:1)
        self.slot_types = slot_types
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._owns_base_dir = base_dir is None
        self._base_dir: Path | None = base_dir.resolve() if base_dir is not None else None
        self._requested_port_base = port_base
        self._port_base: int | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pids: dict[str, int] = {}
        self._started = False

    # ----------------------------------------------------------------- paths and names
    @property
    def base_dir(self) -> Path:
        if self._base_dir is None:
            raise SlurmError("the cluster has no base directory before start()")
        return self._base_dir

    @property
    def conf_path(self) -> Path:
        return self.base_dir / "etc" / "slurm.conf"

    @property
    def jobcomp_path(self) -> Path:
        """The ``jobcomp/filetxt`` file: one line per finished job."""
        return self.base_dir / "jobcomp.txt"

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "log"

    @property
    def node_names(self) -> list[str]:
        return list(self._node_names)

    @property
    def port_base(self) -> int:
        if self._port_base is None:
            raise SlurmError("ports are chosen by start()")
        return self._port_base

    @property
    def cluster_name(self) -> str:
        return f"gl{self.port_base}"

    def _pid_file(self, daemon: str) -> Path:
        return self.base_dir / "run" / f"{daemon}.pid"

    def _log_file(self, daemon: str) -> Path:
        return self.log_dir / f"{daemon}.log"

    # ----------------------------------------------------------------- client side
    @property
    def env(self) -> dict[str, str]:
        """Variables the client commands need; merge them into the caller's environment."""
        return {"SLURM_CONF": str(self.conf_path)}

    def client_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) without inherited ``SLURM_*``, plus :attr:`env`."""
        source = os.environ if base is None else base
        merged = {k: v for k, v in source.items() if not k.startswith("SLURM_")}
        merged.update(self.env)
        return merged

    def run(
        self, args: Sequence[str], *, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a client command (``["squeue", "-h"]``) against this cluster."""
        return subprocess.run(
            list(args),
            env=self.client_env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def completed_jobs(self) -> dict[int, dict[str, str]]:
        """Finished jobs from the jobcomp file: job id -> fields (``JobState``, ``NodeList``...)."""
        jobs: dict[int, dict[str, str]] = {}
        try:
            text = self.jobcomp_path.read_text(errors="replace")
        except FileNotFoundError:
            return jobs
        for line in text.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if fields.get("JobId", "").isdigit():
                jobs[int(fields["JobId"])] = fields
        return jobs

    @property
    def pids(self) -> dict[str, int]:
        """Daemon name (``slurmctld``, ``slurmd-node1``...) -> pid, as recorded at start."""
        return dict(self._pids)

    # ----------------------------------------------------------------- start
    def start(self) -> Self:
        if self._started:
            return self
        missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
        if missing:
            raise SlurmUnavailable(
                f"missing binaries: {', '.join(missing)} (run scripts/install-slurm.sh)"
            )
        if self._base_dir is None:
            self._base_dir = Path(tempfile.mkdtemp(prefix="slurm-"))
        if len(str(self._base_dir)) > MAX_BASE_DIR_LEN:
            raise ValueError(
                f"base_dir {self._base_dir} is longer than {MAX_BASE_DIR_LEN} characters; "
                "job-step socket paths under it would exceed the 108-byte Unix limit"
            )
        ensure_munge()
        ensure_devices(self.gpus_per_node)
        if self._requested_port_base is not None:
            self._port_base = self._requested_port_base
        else:
            self._port_base = pick_port_block(self.nodes + 1)
        self._write_config()
        self._started = True
        atexit.register(self.stop)
        try:
            self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf_path)])
            self._wait_controller()
            for node in self.node_names:
                argv = ["slurmd", "-D", "-N", node, "-f", str(self.conf_path)]
                self._spawn(f"slurmd-{node}", argv)
            self._wait_nodes_idle()
            for name in self._procs:
                self._pids[name] = self._read_pid(name) or self._procs[name].pid
        except BaseException:
            self.stop()
            raise
        return self

    def _write_config(self) -> None:
        b = self.base_dir
        # a kept base_dir may hold an earlier cluster's state (its ClusterName differs, which
        # slurmctld refuses): the cluster is throwaway, its state starts empty
        shutil.rmtree(b / "state", ignore_errors=True)
        subdirs = ["etc", "state", "run", "log", *(f"spool/{n}" for n in self.node_names)]
        for sub in subdirs:
            (b / sub).mkdir(parents=True, exist_ok=True)
        p = self.port_base
        nodes = ",".join(self.node_names)
        lines = [
            "# Generated by tests/support/slurm_cluster.py: a throwaway local cluster.",
            f"ClusterName={self.cluster_name}",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={p}",
            f"SlurmdPort={p + 1}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"StateSaveLocation={b}/state",
            f"SlurmdSpoolDir={b}/spool/%n",
            f"SlurmctldPidFile={self._pid_file('slurmctld')}",
            f"SlurmdPidFile={b}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={self._log_file('slurmctld')}",
            f"SlurmdLogFile={self.log_dir}/slurmd-%n.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "GresTypes=gpu",
            "ReturnToService=2",
            "MpiDefault=none",
            # heterogeneous jobs are started by backfill only: pass every second, not 30 s
            "SchedulerParameters=bf_interval=1",
            "SlurmdParameters=config_overrides",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.jobcomp_path}",
            "MailProg=/bin/true",
            "MaxJobCount=100000",
            f"MinJobAge={self.min_job_age}",
            "InactiveLimit=0",
            "KillWait=5",
            "SlurmctldTimeout=30",
            f"SlurmdTimeout={self.slurmd_timeout}",
        ]
        if self.message_timeout is not None:
            lines.append(f"MessageTimeout={self.message_timeout}")
        gpus = range(self.gpus_per_node)
        node_gres = ",".join(f"gpu:s{g}:1" for g in gpus) if self.slot_types else f"gpu:{len(gpus)}"
        for k, node in enumerate(self.node_names, start=1):
            lines.append(
                f"NodeName={node} NodeHostname=localhost Port={p + k} "
                f"CPUs={self.cpus_per_node} RealMemory=1000 Gres={node_gres} State=UNKNOWN"
            )
        lines.append(
            f"PartitionName={self.partition} Nodes={nodes} Default=YES MaxTime=INFINITE State=UP"
        )
        self.conf_path.write_text("\n".join(lines) + "\n")
        if self.slot_types:
            gres = [f"NodeName={nodes} Name=gpu Type=s{g} File=/dev/nvidia{g}" for g in gpus]
        else:
            gres = [f"NodeName={nodes} Name=gpu File={_range('/dev/nvidia', 0, len(gpus) - 1)}"]
        gres.insert(0, "AutoDetect=off")
        (b / "etc" / "gres.conf").write_text("\n".join(gres) + "\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = (self.log_dir / f"{name}.stdout").open("ab")
        try:
            self._procs[name] = subprocess.Popen(
                argv,
                env=self.client_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()

    def _check_children(self) -> None:
        for name, proc in self._procs.items():
            rc = proc.poll()
            if rc is not None:
                raise SlurmStartError(
                    f"{name} exited with status {rc} during start-up; log tail:\n"
                    f"{tail(self._log_file(name))}\n{tail(self.log_dir / f'{name}.stdout')}"
                )

    def _wait_controller(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            self._check_children()
            if self._pid_file("slurmctld").exists():
                ping = self.run(["scontrol", "ping"], check=False, timeout=10)
                if ping.returncode == 0 and "UP" in ping.stdout:
                    return
            if time.monotonic() > deadline:
                raise SlurmStartError(
                    f"slurmctld not up after {self.start_timeout:.0f} s; log tail:\n"
                    f"{tail(self._log_file('slurmctld'))}"
                )
            time.sleep(0.1)

    def node_states(self) -> dict[str, str]:
        """Node -> compact ``sinfo`` state (``idle``, ``alloc``, ``drain``, ``unk*``...)."""
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False, timeout=10)
        states: dict[str, str] = {}
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                states[parts[0]] = parts[1]
        return states

    def _wait_nodes_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_resume: dict[str, float] = {}
        states: dict[str, str] = {}
        while True:
            self._check_children()
            states = self.node_states()
            if len(states) == self.nodes and all(s in IDLE for s in states.values()):
                return
            now = time.monotonic()
            for node, state in states.items():
                responding = not state.endswith("*")
                base = state.rstrip(_NODE_STATE_FLAGS)
                if (
                    responding
                    and base in ("drain", "drng", "down")
                    and now - last_resume.get(node, -10.0) > 2.0
                ):
                    last_resume[node] = now
                    self.run(
                        ["scontrol", "update", f"nodename={node}", "state=resume"],
                        check=False,
                        timeout=10,
                    )
            if now > deadline:
                reasons = self.run(["sinfo", "-R", "-h"], check=False, timeout=10).stdout
                tails = "\n".join(
                    f"--- slurmd-{n}:\n{tail(self._log_file(f'slurmd-{n}'), 5)}"
                    for n in self.node_names
                )
                raise SlurmStartError(
                    f"nodes not all idle after {self.start_timeout:.0f} s: {states}; "
                    f"reasons: {reasons.strip() or '(none)'}\n{tails}"
                )
            time.sleep(0.2)

    # ----------------------------------------------------------------- reset
    def reset(self) -> None:
        """Back to a fresh cluster for the next test: jobs cancelled and gone, dead ``slurmd``
        restarted, every node idle, no reservation left."""
        if not self._started:
            raise SlurmError("reset() of a cluster that is not started")
        # munged is a host service several test sessions share; one that started it stops
        # it when it ends (tests/munge_guard.py), under another session's cluster
        ensure_munge()
        out = self.run(["scontrol", "-o", "show", "reservation"], check=False).stdout
        for name in re.findall(r"^ReservationName=(\S+)", out, re.MULTILINE):
            self.run(["scontrol", "delete", f"reservationname={name}"], check=False)
        if not self.cancel_all():
            raise SlurmStartError("jobs still queued after scancel: " + self._squeue())
        for node in self.node_names:
            name = f"slurmd-{node}"
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                self._spawn(name, ["slurmd", "-D", "-N", node, "-f", str(self.conf_path)])
        self._wait_nodes_idle()
        for name in self._procs:
            self._pids[name] = self._read_pid(name) or self._procs[name].pid

    def cancel_all(self, timeout: float | None = None) -> bool:
        """Cancel every job and wait until ``squeue`` lists none (True) or ``timeout``
        (default ``start_timeout``) passes (False). Call it before :meth:`stop`: a job still
        running then leaves its ``slurmstepd`` behind the cluster."""
        self.run(["scancel", "--partition", self.partition], check=False, timeout=10)
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while self.run(["squeue", "-h", "-o", "%i"], check=False, timeout=10).stdout.strip():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _squeue(self) -> str:
        return self.run(["squeue"], check=False, timeout=10).stdout

    def kill_node(self, node: str) -> None:
        """SIGKILL the ``slurmd`` of ``node`` (a node failure); :meth:`reset` restarts it."""
        name = f"slurmd-{node}"
        pid = self._read_pid(name) or self._procs[name].pid
        if self._ours(pid):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._procs[name].wait(timeout=5)

    # ----------------------------------------------------------------- stop
    def _read_pid(self, name: str) -> int | None:
        try:
            text = self._pid_file(name).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _ours(self, pid: int) -> bool:
        return pid_alive(pid) and str(self.conf_path) in cmdline(pid)

    def stop(self) -> None:
        """Stop the daemons (SIGTERM, then SIGKILL) by their pid-file pids; idempotent."""
        if not self._started:
            return
        atexit.unregister(self.stop)
        targets: set[int] = set()
        # Nodes first, then the controller, so the controller does not mark them down.
        names = sorted(self._procs, key=lambda n: n == "slurmctld")
        for name in names:
            pid = self._read_pid(name) or self._pids.get(name) or self._procs[name].pid
            if self._ours(pid):
                targets.add(pid)
        self._signal_all(targets, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and any(pid_alive(p) for p in targets):
            self._reap()
            time.sleep(0.05)
        survivors = {p for p in targets if self._ours(p)}
        self._signal_all(survivors, signal.SIGKILL)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        self._started = False
        if self._owns_base_dir and self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None

    @staticmethod
    def _signal_all(pids: set[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _reap(self) -> None:
        for proc in self._procs.values():
            proc.poll()

    # ----------------------------------------------------------------- context manager
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
