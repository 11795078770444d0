"""The Slurm executor: each run is a Slurm batch job on exactly the nodes gpulease chose.

gpulease decides (leases, compliance, placement); Slurm stays the workload manager that
starts, signals and accounts for the processes. ``GPULEASE_EXECUTOR=slurm`` with one
:class:`SlurmSite` per gpulease site (``GPULEASE_SLURM_SITES``, see ``settings.py``).

Submission (``launch``). One ``sbatch`` per run, the batch script on its standard input
(``#!/bin/sh`` then the job's command), with:

* ``--partition`` of the site, ``--nodelist`` / ``-N`` naming exactly the Slurm nodes mapped
  from gpulease's node ids (:meth:`SlurmSite.slurm_node`), ``--gres`` per node and
  ``--ntasks-per-node=1``. Slurm's GRES accounting keeps each job's GPUs apart from every
  other job's. By default ``--gres=gpu:N``: the count is gpulease's, *which* indices of the
  node Slurm binds (``CUDA_VISIBLE_DEVICES``, set by Slurm) is Slurm's choice. Where the
  site gives each GPU its own GRES type (``slot_type``, e.g. ``s{slot}`` for gres.conf
  lines ``Type=s0 File=/dev/nvidia0``...), the job asks for exactly gpulease's GPUs
  (``--gres=gpu:s1:1,gpu:s3:1``) and Slurm binds those. ``--gres`` applies to every node of
  a job, so nodes asking different ``--gres`` make a heterogeneous job (``sbatch A : B``),
  one component per ``--gres``, which Slurm schedules through its backfill plugin.
* ``--job-name=<prefix><job id>.<run>`` (how runs are found again: ids hold no dot) and
  ``--comment="gpulease job=... run=... tenant=... purpose=..."``; the environment the job
  gets is built from nothing but ``PATH``, ``LANG``, ``HOME`` and :meth:`Launch.environment`
  (``GPULEASE_JOB_ID``, ``GPULEASE_TENANT``, ``GPULEASE_PURPOSE``...). Slurm accounts
  (``--account`` per tenant) need ``slurmdbd``; without it the tenant travels in the comment
  and the environment only.
* ``--output`` = the run's log path (``--open-mode=append``: every run of the job appends, as
  with the ``local`` executor), so ``gpulease job logs`` reads what the job prints. The path
  must be visible to the Slurm nodes (a shared file system on a real cluster).
* ``--no-requeue``: Slurm never restarts a run on its own; gpulease's core requeues.

Tracking. Each ``poll`` makes one ``squeue`` call per site for every job of its partition
(``-t all``: finished jobs stay listed for Slurm's ``MinJobAge``), not one per job: its
state, the batch script's wait status (the exit code) and output file come in that call.
Every job named with the prefix is tracked, whoever submitted it, so a new leader holds the
runs of the old one from its first poll (``active``), and ``adopt`` finds one by name.

Completions that outlive ``squeue``. Where the site names its job-completion file
(``jobcomp``: Slurm's ``JobCompLoc`` with ``JobCompType=jobcomp/filetxt``), a run ``squeue``
no longer lists (it ended more than ``MinJobAge`` ago, e.g. while no scheduler led) is
looked up there (:mod:`gpulease.executors.slurm_jobcomp`, read incrementally): ``poll``
reports its end with its exit code, ``adopt`` takes it (found by name) so the next ``poll``
reports it. Only a run found in neither is lost.

Leases as reservations. ``mirror_reservation`` / ``drop_reservation`` / ``reservations``
keep a Slurm reservation per gpulease lease, named after the lease id, for operators who
let tenants submit to Slurm directly (:mod:`gpulease.executors.slurm_lease_mirror`, over
:mod:`gpulease.executors.slurm_reservations`; ``services.reservation_sync`` keeps them in
step with the leases). A run placed on a reservation's nodes inside its window asks for it
(``--reservation``), or Slurm would keep it off them.

Modules: this one runs the commands and holds the runs; ``slurm_commands`` reads Slurm's
answers (``squeue``, ``sinfo``, states and exit codes); ``slurm_jobcomp`` the
job-completion file; ``slurm_reservations`` and ``slurm_lease_mirror`` the reservations.

Invariants.

* A run ends once: its completion is reported by the ``poll`` that first sees it finished,
  then it is forgotten. ``stop`` (``scancel``) forgets it at once: no completion follows,
  and the cancelled job is not taken for a stray while Slurm winds it down.
* Exit codes: ``COMPLETED`` / ``FAILED`` give the job's own code (``128 + signal`` when a
  signal ended it); ``CANCELLED`` (by anyone but gpulease) ``128 + signal`` (143 for
  ``scancel``'s SIGTERM); ``TIMEOUT`` 124; ``OUT_OF_MEMORY`` 137; ``PREEMPTED`` /
  ``DEADLINE`` 143. A run lost to its node (``NODE_FAIL``, ``BOOT_FAIL``) or gone from Slurm
  altogether (``squeue`` and the job-completion file) is *not* a completion: it leaves
  ``active``, ``adopt`` refuses it, and the core requeues the job ("its run was lost with
  the executor that ran it").
* Only the newest run of a job is kept: an older run still in Slurm (left by a dead leader)
  is cancelled when a newer one is seen.
* ``warn`` writes the message to the log and sends SIGTERM to the whole job (batch shell
  included: ``scancel --signal=TERM --full``); the core decides the grace and calls ``stop``.
* ``launch`` never raises for a run that cannot start (no command, a node no site maps, an
  ``sbatch`` refusal): the run becomes a failed completion (exit 127) with the reason in its
  log, as with ``local``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gpulease.domain.states import NodeState
from gpulease.executors.base import Completion, Launch, NodeSlice
from gpulease.executors.slurm_commands import (
    ACTIVE_STATES,
    LOST_STATES,
    SET_STATE,
    SQUEUE_FIELDS,
    SlurmJob,
    exit_code,
    node_state,
    one_line,
    parse_squeue,
)
from gpulease.executors.slurm_jobcomp import JobCompReader
from gpulease.executors.slurm_lease_mirror import LeaseMirror, Reserved
from gpulease.executors.slurm_site import SlurmSite

__all__ = ["CANNOT_START", "CannotStart", "SlurmExecutor", "SlurmSite"]

logger = logging.getLogger(__name__)

LOG_CAP = 1 << 20  # bytes of a finished run's log handed back (kept in the database)
CANNOT_START = 127
COMMAND_TIMEOUT_S = 30.0
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CannotStart(Exception):
    """A run that cannot be submitted; the message goes to its log."""


@dataclass
class _Run:
    job_id: str
    run: int
    site: SlurmSite
    slurm_id: int
    log_path: Path | None  # None: a run found in Slurm; squeue names its log at the end
    log_start: int | None  # offset of this run's part of the log; None: find its header


class SlurmExecutor(LeaseMirror):
    name = "slurm"

    def __init__(self, sites: Sequence[SlurmSite]) -> None:
        if not sites:
            raise ValueError("the slurm executor needs at least one site (GPULEASE_SLURM_SITES)")
        self.sites = list(sites)
        self._runs: dict[str, _Run] = {}  # by gpulease job id: its newest run
        self._failed: list[Completion] = []
        self.last_seen: dict[str, dict[int, SlurmJob]] = {}  # site -> Slurm id -> job
        self.commands = 0  # client commands run (squeue, sbatch...): for tests and benchmarks
        self.unanswered: dict[str, int] = {}  # site -> polls its Slurm did not answer
        self._stopped: set[int] = set()  # Slurm ids cancelled by stop, until squeue drops them
        self._jobcomp: dict[str, JobCompReader] = {}  # by site id, for sites naming the file
        # gpulease's reservations as last mirrored or read, by site then name: a run placed
        # on their nodes inside their window asks for them (sbatch --reservation)
        self._reserved: dict[str, dict[str, Reserved]] = defaultdict(dict)
        self._shown: dict[str, dict[str, dict[str, str]]] = {}  # as last read, by site

    # ------------------------------------------------------------------------ commands
    def run_command(
        self,
        site: SlurmSite,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command of ``site``; raises on a non-zero exit."""
        program = str(site.bin_dir / argv[0]) if site.bin_dir is not None else argv[0]
        base = dict(env) if env is not None else {"PATH": SAFE_PATH, "LANG": "C.UTF-8"}
        base["TZ"] = "UTC"  # times given to and read from Slurm's clients are UTC
        if site.conf is not None:
            base["SLURM_CONF"] = str(site.conf)
        self.commands += 1
        return subprocess.run(
            [program, *argv[1:]],
            input=stdin,
            env=base,
            capture_output=True,
            text=True,
            check=True,
            timeout=COMMAND_TIMEOUT_S,
            cwd=site.workdir if site.workdir.is_dir() else None,
        )

    def site_of(self, launch: Launch) -> SlurmSite:
        first = launch.slices[0].node_id if launch.slices else ""
        for site in self.sites:
            if first in site.nodes:
                return site
        for site in self.sites:
            if site.claims(first):
                return site
        if len(self.sites) == 1:
            return self.sites[0]
        raise CannotStart(f"no Slurm site is configured for node {first!r}")

    # --------------------------------------------------------------------------- launch
    def launch(self, launch: Launch) -> None:
        """Submit the run; a run that cannot be submitted becomes a failed completion."""
        try:
            self._submit(launch)
        except Exception as error:  # one bad run must not stop the site's scheduler
            if isinstance(error, CannotStart):
                reason = str(error)
            elif isinstance(error, subprocess.CalledProcessError):
                reason = f"sbatch refused it: {(error.stderr or '').strip() or error}"
            else:
                reason = f"it could not be submitted to Slurm: {error!r}"
            logger.warning("run %s/%s could not start: %s", launch.job_id, launch.run, reason)
            text = f"[gpulease slurm] {reason}\n"
            with contextlib.suppress(OSError):
                launch.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _append(launch.log_path, text)
            self._failed.append(
                Completion(launch.job_id, launch.run, CANNOT_START, datetime.now(UTC), text)
            )

    def sbatch_args(self, site: SlurmSite, launch: Launch) -> list[str]:
        """The ``sbatch`` command line of ``launch`` (the script comes on standard input)."""
        if not launch.slices:
            raise CannotStart("the run has no nodes")
        name = site.job_name(launch.job_id, launch.run)
        comment = (
            f"gpulease job={launch.job_id} run={launch.run} tenant={launch.tenant_id} "
            f"purpose={one_line(launch.purpose)}"
        )
        common = [
            f"--partition={site.partition}",
            f"--job-name={name}",
            f"--comment={comment}",
            "--ntasks-per-node=1",
        ]
        inside = self.reservations_on(site, [site.slurm_node(s.node_id) for s in launch.slices])
        if len(inside) > 1:  # sbatch would refuse it: "Required nodes outside of the reservation"
            raise CannotStart(
                f"its nodes are in {len(inside)} lease reservations ({', '.join(inside)}) and "
                "a Slurm job runs in one reservation at most"
            )
        if inside:
            common.append(f"--reservation={inside[0]}")
        argv = [
            "sbatch",
            "--parsable",
            f"--output={launch.log_path}",
            "--open-mode=append",
            "--no-requeue",
            f"--chdir={site.workdir}",
            "--export=ALL",
        ]
        for index, (gres, slices) in enumerate(_by_gres(launch.slices, site.slot_type)):
            if index:
                argv.append(":")
            names = ",".join(site.slurm_node(s.node_id) for s in slices)
            argv += [*common, f"--nodes={len(slices)}", f"--nodelist={names}", f"--gres={gres}"]
        return argv

    def _submit(self, launch: Launch) -> None:
        if not launch.command:
            raise CannotStart("this executor runs commands, not images")
        if "\0" in launch.command:
            raise CannotStart("the command holds a NUL byte")
        site = self.site_of(launch)
        argv = self.sbatch_args(site, launch)
        launch.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_start = _append(launch.log_path, _header(launch.run, site))
        env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": str(site.workdir)}
        env |= {k: v for k, v in launch.environment().items() if k != "CUDA_VISIBLE_DEVICES"}
        script = f"#!/bin/sh\n{launch.command}\n"
        done = self.run_command(site, argv, stdin=script, env=env)
        slurm_id = int(done.stdout.strip().split(";")[0])
        self._runs[launch.job_id] = _Run(
            launch.job_id, launch.run, site, slurm_id, launch.log_path, log_start
        )

    # ------------------------------------------------------------------- after a failover
    def adopt(self, launch: Launch) -> bool:
        """Keep tracking the run if Slurm still has it (by job name); False if it is lost."""
        held = self._runs.get(launch.job_id)
        if held is not None and held.run == launch.run:
            return True
        site = self.site_of(launch)
        name = site.job_name(launch.job_id, launch.run)
        out = self.run_command(
            site,
            [
                "squeue",
                "-h",
                "-t",
                "all",
                f"--partition={site.partition}",
                f"--name={name}",
                "-O",
                SQUEUE_FIELDS,
            ],
        ).stdout
        # the newest Slurm job of that name, one still running first
        found = sorted(
            (job for job in parse_squeue(out).values() if job.name == name),
            key=lambda job: (job.state in ACTIVE_STATES, job.slurm_id),
        )
        if found:
            slurm_id, state = found[-1].slurm_id, found[-1].state
        else:  # ended longer than MinJobAge ago: its end is in the job-completion file
            reader = self.jobcomp_reader(site)
            ended = reader.find_name(name) if reader is not None else None
            if ended is None:
                return False
            slurm_id, state = ended.slurm_id, ended.state
        if state in LOST_STATES:
            return False
        self._runs[launch.job_id] = _Run(
            launch.job_id, launch.run, site, slurm_id, launch.log_path, None
        )
        return True

    def jobcomp_reader(self, site: SlurmSite) -> JobCompReader | None:
        """The reader of the site's job-completion file; None if it names none."""
        if site.jobcomp is None:
            return None
        reader = self._jobcomp.get(site.site_id)
        if reader is None:
            reader = self._jobcomp[site.site_id] = JobCompReader(site.jobcomp, site.job_prefix)
        return reader

    # ------------------------------------------------------------------ while it runs
    def warn(self, job_id: str, message: str) -> None:
        held = self._runs.get(job_id)
        if held is None:
            return
        self._note(held, message)
        self.run_command(held.site, ["scancel", "--signal=TERM", "--full", str(held.slurm_id)])

    def stop(self, job_id: str, reason: str) -> None:
        held = self._runs.pop(job_id, None)
        if held is None:
            return
        self._note(held, f"stopping: {reason}")
        self._stopped.add(held.slurm_id)  # not to be taken for a stray while it winds down
        self.run_command(held.site, ["scancel", str(held.slurm_id)])

    def poll(self, now: datetime) -> list[Completion]:
        """Completions from every site; a site whose Slurm does not answer this time (its
        ``squeue`` failed or timed out) is skipped, never the others: its runs stay active
        and are polled again at the next pass, and none is taken for lost meanwhile."""
        done, self._failed = self._failed, []
        for site in self.sites:
            try:
                done += self._poll_site(site, now)
            except (subprocess.SubprocessError, OSError) as error:
                self.unanswered[site.site_id] = self.unanswered.get(site.site_id, 0) + 1
                logger.warning(
                    "site %s: Slurm did not answer (%s); its runs are polled again next pass",
                    site.site_id,
                    _brief(error),
                )
        return done

    def _poll_site(self, site: SlurmSite, now: datetime) -> list[Completion]:
        out = self.run_command(
            site,
            ["squeue", "-h", "-t", "all", f"--partition={site.partition}", "-O", SQUEUE_FIELDS],
        ).stdout
        seen = parse_squeue(out)
        self.last_seen[site.site_id] = seen
        self._discover(site, seen)
        finished: list[tuple[_Run, SlurmJob]] = []
        for job_id, held in list(self._runs.items()):
            if held.site is not site:
                continue
            job = seen.get(held.slurm_id)
            if job is not None and job.state in ACTIVE_STATES:
                continue
            if job is None:  # gone from squeue: ended longer than MinJobAge ago?
                job = self._ended(site, held)
            if job is None or job.state in LOST_STATES:
                why = "gone from Slurm" if job is None else f"Slurm reports {job.state}"
                logger.warning("run %s/%d lost: %s", job_id, held.run, why)
                self._note(held, f"lost: {why}; the scheduler requeues it")
                del self._runs[job_id]  # leaves active(): the core's reconcile requeues it
                continue
            finished.append((held, job))
        completions = []
        for held, job in finished:
            del self._runs[held.job_id]
            if held.log_path is None and job.stdout.startswith("/"):
                held.log_path = Path(job.stdout)
            code = exit_code(job.state, job.status)
            completions.append(Completion(held.job_id, held.run, code, now, self._log_of(held)))
        return completions

    def _ended(self, site: SlurmSite, held: _Run) -> SlurmJob | None:
        """The run as the job-completion file recorded its end; None if it is not there."""
        reader = self.jobcomp_reader(site)
        if reader is None:
            return None
        record = reader.find(held.slurm_id)
        if record is None or record.name != site.job_name(held.job_id, held.run):
            return None
        logger.info("run %s/%d: its end read from %s", held.job_id, held.run, reader.path)
        return SlurmJob(record.slurm_id, record.state, (record.nodes,), record.name, record.status)

    def _discover(self, site: SlurmSite, seen: Mapping[int, SlurmJob]) -> None:
        """Track the runs Slurm holds that this executor did not submit (a dead leader's);
        cancel a run older than one already held for the same job."""
        self._stopped &= {job.slurm_id for job in seen.values() if job.state in ACTIVE_STATES}
        for job in seen.values():
            if job.state not in ACTIVE_STATES or job.slurm_id in self._stopped:
                continue
            parsed = site.parse_name(job.name)
            if parsed is None:
                continue
            job_id, run = parsed
            held = self._runs.get(job_id)
            if held is not None and held.slurm_id == job.slurm_id:
                continue
            if held is not None and held.run >= run:
                if held.run > run:
                    logger.warning("cancelling stale Slurm job %d (%s)", job.slurm_id, job.name)
                    self.run_command(site, ["scancel", str(job.slurm_id)])
                continue
            if held is not None:  # we hold an older run: that one is the stale one
                self.run_command(held.site, ["scancel", str(held.slurm_id)])
            self._runs[job_id] = _Run(job_id, run, site, job.slurm_id, None, None)

    def active(self) -> set[tuple[str, int]]:
        return {(held.job_id, held.run) for held in self._runs.values()}

    def slurm_id(self, job_id: str) -> int | None:
        """The Slurm job id of the job's run held now (operators, tests)."""
        held = self._runs.get(job_id)
        return None if held is None else held.slurm_id

    def close(self) -> None:
        """Slurm jobs outlive the executor: a new leader adopts them. Nothing to stop."""

    # ------------------------------------------------------------------------ node sync
    def node_states(self, node_ids: Iterable[str]) -> dict[str, tuple[NodeState, str]]:
        """gpulease node id -> (state, reason) as Slurm sees the node it maps to, for the
        given ids (one ``sinfo`` per site): down or failed -> ``DOWN``; drained, draining,
        failing, in maintenance, not responding, booting or unknown -> ``DRAINING``; else
        ``UP``. A node Slurm does not list is ``DOWN``."""
        wanted: dict[str, list[tuple[str, SlurmSite]]] = defaultdict(list)
        for node_id in node_ids:
            site = self._site_of_node(node_id)
            if site is not None:
                wanted[site.site_id].append((node_id, site))
        found: dict[str, tuple[NodeState, str]] = {}
        for site in self.sites:
            if site.site_id not in wanted:
                continue
            out = self.run_command(
                site, ["sinfo", "-h", "-N", f"--partition={site.partition}", "-o", "%N|%t|%E"]
            ).stdout
            slurm: dict[str, tuple[NodeState, str]] = {}
            for line in out.splitlines():
                name, _, rest = line.partition("|")
                state, _, reason = rest.partition("|")
                slurm[name] = (node_state(state), "" if reason == "none" else reason)
            for node_id, _site in wanted[site.site_id]:
                name = site.slurm_node(node_id)
                found[node_id] = slurm.get(name, (NodeState.DOWN, f"Slurm has no node {name}"))
        return found

    def set_node_state(self, node_id: str, state: NodeState, reason: str) -> None:
        """Push gpulease's node state to Slurm: drain (running jobs go on), down, resume."""
        site = self._site_of_node(node_id)
        if site is None:
            raise ValueError(f"no Slurm site is configured for node {node_id!r}")
        argv = ["scontrol", "update", f"nodename={site.slurm_node(node_id)}"]
        argv.append(f"state={SET_STATE[state]}")
        if state != NodeState.UP:
            argv.append(f"reason=gpulease: {one_line(reason) or state.value}")
        self.run_command(site, argv)

    def _site_of_node(self, node_id: str) -> SlurmSite | None:
        for site in self.sites:
            if site.claims(node_id):
                return site
        return self.sites[0] if len(self.sites) == 1 else None

    # ------------------------------------------------------------------------- logs
    def _note(self, held: _Run, line: str) -> None:
        if held.log_path is not None:
            with contextlib.suppress(OSError):
                _append(held.log_path, f"[gpulease] {line}\n")

    def _log_of(self, held: _Run) -> str:
        if held.log_path is None:
            return ""
        try:  # at most the last LOG_CAP bytes are read: Slurm does not cap a job's output
            with held.log_path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                first = max(0, size - LOG_CAP)
                handle.seek(first)
                data = handle.read(LOG_CAP)
        except OSError as error:
            return f"[gpulease slurm] the log could not be read: {error}\n"
        if held.log_start is not None and held.log_start <= size:
            start = max(held.log_start - first, 0)
        else:  # a run found in Slurm: its part starts at its header, if in reach
            start = max(data.rfind(f"[gpulease] run {held.run} submitted to Slurm".encode()), 0)
        return data[start:].decode(errors="replace")


# ----------------------------------------------------------------------------- helpers
def _brief(error: BaseException) -> str:
    """A failed client command in one line: its stderr when it wrote one."""
    stderr = getattr(error, "stderr", None)
    text = stderr.strip() if isinstance(stderr, str) and stderr.strip() else str(error)
    return text.splitlines()[0][:300] if text else type(error).__name__


def _by_gres(
    slices: Iterable[NodeSlice], slot_type: str | None
) -> list[tuple[str, list[NodeSlice]]]:
    """Slices grouped by the ``--gres`` of their node (one ``sbatch`` component each), the
    most GPUs first: ``gpu:N``, or with ``slot_type`` one typed GPU per slot gpulease
    chose (``gpu:s1:1,gpu:s3:1``)."""
    groups: dict[str, list[NodeSlice]] = defaultdict(list)
    for s in slices:
        if slot_type is None:
            gres = f"gpu:{len(s.slots)}"
        else:
            gres = ",".join(f"gpu:{slot_type.format(slot=slot)}:1" for slot in sorted(s.slots))
        groups[gres].append(s)
    return sorted(groups.items(), key=lambda item: -len(item[1][0].slots))


def _header(run: int, site: SlurmSite) -> str:
    return f"[gpulease] run {run} submitted to Slurm (partition {site.partition})\n"


def _append(path: Path, text: str) -> int:
    """Append ``text`` to ``path`` (owner-only when created); the size before it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        size = os.fstat(fd).st_size
        os.write(fd, text.encode(errors="replace"))
    finally:
        os.close(fd)
    return size
