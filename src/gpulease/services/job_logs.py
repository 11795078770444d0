"""Reading a job's log in bounded chunks: never the whole log at once.

Design. A log is read like a file: ``read_chunk(job, offset, limit)`` answers at most
``limit`` bytes (at most :data:`MAX_CHUNK`, :data:`DEFAULT_CHUNK` unless asked) from byte
``offset``, with the log's current ``size``, the ``next_offset`` to ask for and whether the
log is ``complete`` (the job has ended and nothing more is to be read). A reader follows a
running job by asking again from ``next_offset``.

Where the bytes come from: the log file the local executor writes
(``<data_dir>/logs/<job>.log``, read with ``seek``, never whole) when this server can see
it; otherwise the text stored in the database when a run ended (the simulated executor's
logs, a server on another machine than the scheduler; it is itself bounded, a tail of
1 MiB characters), sliced by bytes of its UTF-8 encoding. Offsets are bytes of one source;
the file, appended to by every run of the job, is the source whenever it exists.

Invariants. ``0 <= offset``; ``1 <= limit <= MAX_CHUNK``; an offset past the end reads
nothing and answers ``next_offset == size``. A chunk never ends inside a UTF-8 character
(the bytes of a character cut by the limit are left for the next chunk), so a reader that
concatenates the chunks' text gets the log's text. The log of a job another tenant owns is
refused exactly like the job itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import JobState
from gpulease.persistence.tables import Job, JobLog
from gpulease.services.context import ServiceContext
from gpulease.services.jobs import get_job, log_path

DEFAULT_CHUNK = 64 << 10
MAX_CHUNK = 1 << 20
ENDED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
UTF8_MAX = 4  # bytes of the longest UTF-8 character


@dataclass(frozen=True, slots=True)
class LogChunk:
    job: Job
    text: str
    offset: int  # where this chunk starts, in bytes
    next_offset: int  # where the next one starts
    size: int  # bytes in the log now
    complete: bool  # the job has ended and nothing is left to read


def read_chunk(
    ctx: ServiceContext,
    actor: Principal,
    job_id: str,
    offset: int = 0,
    limit: int = DEFAULT_CHUNK,
) -> LogChunk:
    """At most ``limit`` bytes of the job's log from byte ``offset``."""
    if offset < 0:
        raise InvalidRequest("offset must be >= 0", field="offset")
    if not 1 <= limit <= MAX_CHUNK:
        raise InvalidRequest(f"limit must be between 1 and {MAX_CHUNK}", field="limit")
    job = get_job(ctx, actor, job_id, Action.JOB_LOGS)
    ended = JobState(job.state) in ENDED
    try:
        with log_path(ctx, job.id).open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = min(offset, size)
            handle.seek(start)
            data = handle.read(limit)
    except FileNotFoundError:
        with ctx.db.transaction(write=False) as tx:
            stored = tx.get(JobLog, job.id)
        whole = stored.text.encode() if stored is not None else b""
        size = len(whole)
        start = min(offset, size)
        data = whole[start : start + limit]
    end = start + len(data)
    if end < size or not ended:
        whole = _whole_characters(data)  # what is cut is read again next time
        if whole or end >= size:  # (a limit shorter than one character still moves on)
            data = whole
            end = start + len(data)
    return LogChunk(
        job=job,
        text=data.decode(errors="replace"),
        offset=start,
        next_offset=end,
        size=size,
        complete=ended and end >= size,
    )


def _whole_characters(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut at its end (a chunk boundary or the point a
    running job has written to so far)."""
    for back in range(1, min(UTF8_MAX, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data  # ASCII: nothing is cut
        if byte >= 0xC0:  # the lead byte of the last character
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= needed else data[:-back]
    return data  # not UTF-8 anyway: decoding replaces it


def text(ctx: ServiceContext, actor: Principal, job_id: str, offset: int = 0) -> str:
    """The text of one bounded chunk of the job's log from byte ``offset``."""
    return read_chunk(ctx, actor, job_id, offset).text
