"""Slurm's job-completion file (``JobCompType=jobcomp/filetxt``), read for the end of
gpulease's runs that ``squeue`` no longer lists.

Why. ``squeue`` lists a finished job for ``MinJobAge`` seconds only (300 by default). A run
that ended while no scheduler led (a failover that took longer, a scheduler stopped for an
upgrade) is gone from ``squeue`` when the next leader looks: without another record it is
taken for lost and run again. ``slurmctld`` appends one line per finished job (one per
component of a heterogeneous job) to the site's ``JobCompLoc``::

    JobId=7 UserId=... Name=gpulease-job-1.2 JobState=FAILED ... NodeList=n1 ...
    [HetJobId=7 HetJobOffset=0] DerivedExitCode=0:0 ExitCode=3:0

``ExitCode`` is ``<exit status>:<signal>`` of the batch script. The file must be readable
from the scheduler's host (a shared file system, or the scheduler on the controller).

Design and invariants.

* Incremental: :meth:`JobCompReader.refresh` reads from the offset it stopped at, complete
  lines only (a line being written is read on the next refresh), so each byte is parsed
  once. ``refresh`` costs one ``stat`` when nothing was appended.
* Bounded: a reader starts :data:`TAIL_BYTES` before the end of the file (older lines
  cannot concern a run a scheduler still holds: gpulease's jobs stay in ``squeue`` for
  ``MinJobAge``, a leaderless gap is minutes); a refresh reads at most :data:`TAIL_BYTES`
  (when more was appended since, it skips to that far before the end and logs it); it keeps
  at most :data:`MAX_RECORDS` records, only of jobs named with the site's prefix, oldest
  dropped first.
* A file that shrank or was replaced (log rotation: another inode) is read again from its
  start.
* A heterogeneous job is one record under its ``HetJobId``, its leader's line (offset 0)
  winning: the same merge as ``squeue``'s rows.
* Lines are parsed by key; keys before the free-text fields (``JobId``, ``Name``,
  ``JobState``) take their first occurrence, ``ExitCode`` (the last field) its last, so a
  working directory holding ``" ExitCode=..."`` cannot change a record's id or name.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TAIL_BYTES = 8 << 20  # at most this much of the file is read at once (~20,000 lines)
MAX_RECORDS = 100_000  # gpulease jobs remembered per site
_FIELD = re.compile(r"(?:^|\s)(\w+)=(\S*)")


@dataclass(frozen=True, slots=True)
class JobCompRecord:
    """A finished job as the job-completion file records it."""

    slurm_id: int  # the heterogeneous job's id for a heterogeneous job
    name: str
    state: str  # COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL...
    status: int  # a wait status built from ExitCode (exit status << 8 | signal)
    nodes: str
    end_time: str  # as slurmctld wrote it (its local time)


def parse_line(line: str) -> JobCompRecord | None:
    """One line of the file; None if it is not a job's (or is cut)."""
    fields: dict[str, str] = {}
    exit_field = ""
    for key, value in _FIELD.findall(line):
        if key == "ExitCode":
            exit_field = value
        fields.setdefault(key, value)
    job_id, het_id = fields.get("JobId", ""), fields.get("HetJobId", "")
    if not job_id.isdigit() or "JobState" not in fields or not exit_field:
        return None
    rc, _, sig = exit_field.partition(":")
    status = (int(rc) & 0xFF) << 8 | (int(sig) & 0x7F) if rc.isdigit() and sig.isdigit() else 0
    return JobCompRecord(
        int(het_id) if het_id.isdigit() else int(job_id),
        fields.get("Name", ""),
        fields["JobState"].split("+")[0],
        status,
        fields.get("NodeList", ""),
        fields.get("EndTime", ""),
    )


class JobCompReader:
    """The records of one site's job-completion file, of jobs named with ``prefix``."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self._offset: int | None = None  # None: not opened yet (start near the end)
        self._inode: tuple[int, int] | None = None
        # by Slurm id and by job name, the line written last winning (a slurmctld started
        # afresh numbers jobs from 1 again); each bounded, oldest dropped first
        self._by_id: OrderedDict[int, JobCompRecord] = OrderedDict()
        self._by_name: OrderedDict[str, JobCompRecord] = OrderedDict()
        self.bytes_read = 0  # for tests and benchmarks

    def find(self, slurm_id: int) -> JobCompRecord | None:
        """The record of Slurm job ``slurm_id``, after reading what was appended."""
        self.refresh()
        return self._by_id.get(slurm_id)

    def find_name(self, name: str) -> JobCompRecord | None:
        """The newest record of a job named ``name``, after reading what was appended."""
        self.refresh()
        return self._by_name.get(name)

    def refresh(self) -> None:
        try:
            with self.path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                size, inode = stat.st_size, (stat.st_dev, stat.st_ino)
                if self._offset is None:
                    start = max(0, size - TAIL_BYTES)
                elif inode != self._inode or size < self._offset:
                    start = 0  # rotated or truncated: a new file
                elif size - self._offset > TAIL_BYTES:
                    logger.warning(
                        "jobcomp %s: %d bytes appended since the last read; reading the last %d",
                        self.path,
                        size - self._offset,
                        TAIL_BYTES,
                    )
                    start = size - TAIL_BYTES
                else:
                    start = self._offset
                self._inode = inode
                if start == size:
                    self._offset = start
                    return
                # a start that is not where the last read stopped may be mid-line: read
                # from the byte before it and drop up to the first newline
                jumped = 0 < start != self._offset
                handle.seek(start - 1 if jumped else start)
                data = handle.read(min(size - start, TAIL_BYTES) + (1 if jumped else 0))
        except FileNotFoundError:
            return  # not written yet: no job has finished since it was configured
        except OSError as error:
            logger.warning("jobcomp %s cannot be read: %s", self.path, error)
            return
        self.bytes_read += len(data)
        begin = data.find(b"\n") + 1 if jumped else 0
        cut = data.rfind(b"\n") + 1  # complete lines only; the rest is read next time
        if cut <= begin and len(data) >= TAIL_BYTES:
            cut = len(data)  # no line end in a whole read: not a job's line, skip it
        self._offset = (start - 1 if jumped else start) + max(cut, begin)
        for line in data[begin:cut].decode(errors="replace").split("\n"):
            if f"Name={self.prefix}" not in line:
                continue
            record = parse_line(line)
            if record is not None and record.name.startswith(self.prefix):
                self._keep(record, "HetJobOffset=" not in line or "HetJobOffset=0 " in line)

    def _keep(self, record: JobCompRecord, leader: bool) -> None:
        held = self._by_id.get(record.slurm_id)
        if not leader and held is not None and held.name == record.name:
            return  # another component of a heterogeneous job whose line is there
        self._by_id[record.slurm_id] = record
        self._by_id.move_to_end(record.slurm_id)
        self._by_name[record.name] = record
        self._by_name.move_to_end(record.name)
        for index in (self._by_id, self._by_name):
            while len(index) > MAX_RECORDS:
                index.popitem(last=False)
