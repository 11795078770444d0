"""Trace loaders: files on disk -> :class:`Workload`, plus load compression.

Formats (``load_trace(path, fmt)``; ``fmt`` is one of :data:`FORMATS`):

``philly``
    The Microsoft Philly trace as digested by the Sia artifact: CSV with header
    ``timestamp,duration,num_gpus,gpu_time,cluster``. ``timestamp`` is
    ``YYYY-MM-DD HH:MM:SS`` in UTC, ``duration`` is run seconds, ``cluster`` is the virtual
    cluster, used as the tenant (``gpu_time`` is ignored). The job of the N-th data row
    (1-based, header and blank lines not counted) is ``philly-N``; no walltime, no node shape.
``tiresias``
    The job CSV of the Tiresias simulator: ``job_id,num_gpu,submit_time,iterations,
    model_name,duration,interval`` (seconds). Jobs are ``tiresias-<job_id>`` of tenant
    ``default`` with ``purpose = model_name``.
``native``
    gpulease's own format, JSON lines. Blank lines and lines starting with ``#`` are ignored;
    every other line is one object whose ``kind`` is:

    - ``"job"``: ``id`` (str), ``tenant`` (str), ``gpus`` (int), ``submit_time`` (number),
      ``duration`` (number, true run seconds); optional ``gpus_per_node`` (int),
      ``priority`` (``low|normal|high|critical``, default normal), ``walltime`` (number),
      ``preemptible`` / ``requeueable`` (bool, default true), ``checkpoint_interval``
      (number), ``topology`` (``required|preferred|none``, default preferred), ``segment``
      (int), ``purpose`` (str). ``null`` means "absent" for the optional numbers and strings.
    - ``"lease"``: ``lease_id`` (str), ``tenant`` (str), ``gpus`` (int), ``start`` and
      ``end`` (numbers; ``end`` may be ``Infinity``).
    - ``"node"``: ``time`` (number), ``node`` (int index >= 0), ``state``
      (``up|draining|down``).

    Unknown keys are refused (a typo must not silently become a default). The workload's name
    is the file's stem. :func:`dump_native` writes leases, node events, then jobs, each list
    in order, omitting optional fields at their default, so ``load_native(dump_native(w))``
    equals ``w`` exactly when the file is named ``<w.name>.jsonl``.

Every file may be compressed (``.xz``, ``.gz``, by suffix: ``philly.csv.xz``); the name of
the workload is then the stem of the name without that suffix (``philly``).

Invariants: every loader either returns a valid workload or raises :class:`InvalidRequest`
whose message starts with ``<file name> line <n>:`` (or ``<file name>:`` for file-level
problems); no raw Python exception escapes. Job ids are unique within a workload. The CSV
loaders skip, and count in :class:`LoadReport`, rows with ``duration <= 0`` or fewer than
one GPU. Filters (``tenant``, ``min_duration``, ``first``) are applied by one generic
function, :func:`filter_workload`, for every format: keep the tenant's jobs (and leases)
with ``duration >= min_duration``, stable-sort by submit time (ties keep file order), keep
the first N, then shift every time so the first kept job submits at 0.0.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

from gpulease import data
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import (
    JobSpec,
    LeaseGuarantee,
    PriorityClass,
    TopologyMode,
    TopologyRequest,
)
from gpulease.domain.states import NodeState
from gpulease.sim.workload import NodeEvent, TraceJob, Workload

FORMATS: tuple[str, ...] = ("philly", "tiresias", "native")

_PHILLY_COLUMNS = ("timestamp", "duration", "num_gpus", "cluster")
_TIRESIAS_COLUMNS = ("job_id", "num_gpu", "submit_time", "model_name", "duration")
_EPOCH = datetime(1970, 1, 1)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load did: ``records`` jobs read, ``skipped`` unusable rows, ``kept`` after filters."""

    records: int
    skipped: int
    kept: int


def _fail(path: Path, line: int | None, reason: str) -> InvalidRequest:
    where = path.name if line is None else f"{path.name} line {line}"
    return InvalidRequest(f"{where}: {reason}", file=str(path), line=line)


def _stem(path: Path) -> str:
    """The workload's name: the file's name without its compression and format suffixes."""
    return Path(data.plain_name(path)).stem


def _read_text(path: Path) -> str:
    try:  # decompressed by suffix; newlines translated as a text-mode read does
        raw = data.read_bytes(path)
        return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig").read()
    except FileNotFoundError:
        raise _fail(path, None, f"no such file ({path})") from None
    except UnicodeDecodeError as exc:
        raise _fail(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise _fail(path, None, f"cannot read ({exc.strerror or exc})") from None


def _csv_records(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Yield ``(line number, values of columns)`` for every non-blank data row."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise _fail(path, None, f"empty file; expected a header with {','.join(columns)}")
        names = [name.strip() for name in header]
        missing = [c for c in columns if c not in names]
        if missing:
            raise _fail(
                path, 1, f"missing column(s) {', '.join(missing)} (header: {','.join(names)})"
            )
        pick = operator.itemgetter(*(names.index(c) for c in columns))
        for row in reader:
            if not row:
                continue
            if len(row) != len(names):
                raise _fail(path, reader.line_num, f"expected {len(names)} fields, got {len(row)}")
            yield reader.line_num, pick(row)
    except csv.Error as exc:
        raise _fail(path, reader.line_num, f"malformed CSV ({exc})") from None


def _int(path: Path, line: int, name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _fail(path, line, f"{name} {text!r} is not an integer") from None


def _float(path: Path, line: int, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, line, f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _fail(path, line, f"{name} {text!r} is not a finite number")
    return value


def _stamp_seconds(text: str) -> float:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) to Unix seconds; ValueError if it is not that."""
    if len(text) != 19 or text[10] != " ":
        raise ValueError(text)
    return (datetime.fromisoformat(text) - _EPOCH).total_seconds()


def _philly_time(path: Path, line: int, text: str) -> float:
    try:
        return _stamp_seconds(text)
    except ValueError:
        raise _fail(path, line, f"timestamp {text!r} is not YYYY-MM-DD HH:MM:SS") from None


def _where(path: Path, line: int, exc: InvalidRequest) -> InvalidRequest:
    """A model's own validation error, prefixed with where the offending record is."""
    details = {**exc.details, "file": str(path), "line": line}
    return InvalidRequest(f"{path.name} line {line}: {exc.message}", **details)


def _unique_ids(path: Path, jobs: list[tuple[int, TraceJob]]) -> list[TraceJob]:
    seen: dict[str, int] = {}
    for line, job in jobs:
        if (first := seen.setdefault(job.spec.id, line)) != line:
            raise _fail(path, line, f"duplicate job id {job.spec.id!r} (first on line {first})")
    return [job for _, job in jobs]


# One usable CSV row: (line, submit time, duration, gpus, job id, tenant, purpose).
_Row = tuple[int, float, float, int, str, str, str | None]
_PREFERRED = TopologyRequest()  # frozen: one shared instance saves a construction per job


def _csv_workload(path: Path, rows: list[_Row], records: int) -> tuple[Workload, LoadReport]:
    """Shared by the CSV formats: rebase to the earliest row, build the jobs, check ids."""
    origin = min((row[1] for row in rows), default=0.0)  # exact: whole seconds
    jobs: list[tuple[int, TraceJob]] = []
    line = 0
    try:
        for line, submit, duration, gpus, job_id, tenant, purpose in rows:
            spec = JobSpec(job_id, tenant, gpus, submit - origin, topology=_PREFERRED)
            if purpose is not None:
                spec = replace(spec, purpose=purpose)
            jobs.append((line, TraceJob(spec, duration)))
    except InvalidRequest as exc:
        raise _where(path, line, exc) from None
    report = LoadReport(records, records - len(jobs), len(jobs))
    return Workload(_stem(path), _unique_ids(path, jobs)), report


def _read_philly(path: Path) -> tuple[Workload, LoadReport]:
    rows: list[_Row] = []
    records = 0
    for line, (stamp, dur, num_gpus, cluster) in _csv_records(path, _PHILLY_COLUMNS):
        records += 1
        try:  # fast path; on failure the checked parsers below say precisely what is wrong
            submit, duration, gpus = _stamp_seconds(stamp), float(dur), int(num_gpus)
        except ValueError:
            submit = _philly_time(path, line, stamp)
            duration = _float(path, line, "duration", dur)
            gpus = _int(path, line, "num_gpus", num_gpus)
        if not math.isfinite(duration):
            _float(path, line, "duration", dur)
        if not cluster:
            raise _fail(path, line, "cluster is empty")
        if duration > 0 and gpus >= 1:
            rows.append((line, submit, duration, gpus, f"philly-{records}", cluster, None))
    return _csv_workload(path, rows, records)


def _read_tiresias(path: Path) -> tuple[Workload, LoadReport]:
    rows: list[_Row] = []
    records = 0
    for line, (job_id, num_gpu, submit, model, dur) in _csv_records(path, _TIRESIAS_COLUMNS):
        records += 1
        gpus = _int(path, line, "num_gpu", num_gpu)
        submit_time = _float(path, line, "submit_time", submit)
        duration = _float(path, line, "duration", dur)
        if not job_id.strip():
            raise _fail(path, line, "job_id is empty")
        if duration > 0 and gpus >= 1:
            job = f"tiresias-{job_id.strip()}"
            rows.append((line, submit_time, duration, gpus, job, "default", model.strip() or None))
    return _csv_workload(path, rows, records)


class _Fields:
    """Typed access to one JSON object; every complaint names the file and line."""

    def __init__(self, path: Path, line: int, obj: dict[str, Any], allowed: str) -> None:
        self.path, self.line, self.obj = path, line, obj
        unknown = sorted(set(obj) - set(allowed.split()) - {"kind"})
        if unknown:
            raise self.fail(f"unknown field(s) {', '.join(unknown)}")

    def fail(self, reason: str) -> InvalidRequest:
        return _fail(self.path, self.line, reason)

    def _get(self, key: str) -> Any:
        if key not in self.obj:
            raise self.fail(f"missing field {key!r}")
        return self.obj[key]

    def opt(self, getter: Callable[[str], T], key: str) -> T | None:
        """``getter(key)``, or None when the key is absent or null."""
        return None if self.obj.get(key) is None else getter(key)

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key} must be a non-empty string, got {value!r}")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key} {value!r} is not an integer")
        return value

    def number(self, key: str, *, infinite: bool = False) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{key} {value!r} is not a number")
        if math.isnan(value) or (math.isinf(value) and not infinite):
            raise self.fail(f"{key} {value!r} is not a finite number")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self.obj.get(key, True)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {value!r}")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.obj.get(key, default) if default is not None else self._get(key)
        if value not in options:
            raise self.fail(f"{key} {value!r} is not one of {', '.join(options)}")
        return str(value)


_JOB_FIELDS = (
    "id tenant gpus submit_time duration gpus_per_node priority walltime preemptible "
    "requeueable checkpoint_interval topology segment purpose"
)
_PRIORITIES = tuple(p.name.lower() for p in PriorityClass)
_TOPOLOGIES = tuple(m.value for m in TopologyMode)
_NODE_STATES = tuple(s.value for s in NodeState)


def _native_job(f: _Fields) -> TraceJob:
    duration = f.number("duration")
    spec = partial(  # every field read (and checked) before the model validates the whole
        JobSpec,
        id=f.text("id"),
        tenant=f.text("tenant"),
        gpus=f.integer("gpus"),
        submit_time=f.number("submit_time"),
        gpus_per_node=f.opt(f.integer, "gpus_per_node"),
        priority=PriorityClass[f.choice("priority", _PRIORITIES, "normal").upper()],
        walltime=f.opt(f.number, "walltime"),
        preemptible=f.flag("preemptible"),
        requeueable=f.flag("requeueable"),
        checkpoint_interval=f.opt(f.number, "checkpoint_interval"),
        topology=TopologyRequest(
            TopologyMode(f.choice("topology", _TOPOLOGIES, "preferred")),
            f.opt(f.integer, "segment"),
        ),
        purpose=f.opt(f.text, "purpose"),
    )
    try:
        return TraceJob(spec(), duration)
    except InvalidRequest as exc:
        raise _where(f.path, f.line, exc) from None


def _native_lease(f: _Fields) -> LeaseGuarantee:
    args = (f.text("lease_id"), f.text("tenant"), f.integer("gpus"), f.number("start"))
    try:
        return LeaseGuarantee(*args, f.number("end", infinite=True))
    except InvalidRequest as exc:
        raise f.fail(exc.message) from None


def _native_node(f: _Fields) -> NodeEvent:
    node = f.integer("node")
    if node < 0:
        raise f.fail(f"node must be an index >= 0, got {node}")
    return NodeEvent(f.number("time"), node, NodeState(f.choice("state", _NODE_STATES)))


def load_native(path: str | Path) -> Workload:
    """Load a native JSON-lines trace exactly as written (no sorting, no rebasing)."""
    path = Path(path)
    jobs: list[tuple[int, TraceJob]] = []
    leases: list[LeaseGuarantee] = []
    events: list[NodeEvent] = []
    lease_lines: dict[str, int] = {}
    # split on "\n" only: str.splitlines() would also split inside strings holding U+2028
    for line, raw in enumerate(_read_text(path).split("\n"), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise _fail(path, line, f"not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise _fail(path, line, f"expected a JSON object, got {type(obj).__name__}")
        kind = obj.get("kind")
        if kind == "job":
            jobs.append((line, _native_job(_Fields(path, line, obj, _JOB_FIELDS))))
        elif kind == "lease":
            lease = _native_lease(_Fields(path, line, obj, "lease_id tenant gpus start end"))
            if lease.lease_id in lease_lines:
                first = lease_lines[lease.lease_id]
                raise _fail(path, line, f"duplicate lease id {lease.lease_id!r} (line {first})")
            lease_lines[lease.lease_id] = line
            leases.append(lease)
        elif kind == "node":
            events.append(_native_node(_Fields(path, line, obj, "time node state")))
        else:
            raise _fail(path, line, f"kind {kind!r} is not one of job, lease, node")
    return Workload(_stem(path), _unique_ids(path, jobs), leases, events)


def _job_record(job: TraceJob) -> dict[str, Any]:
    s = job.spec
    rec: dict[str, Any] = {
        "kind": "job",
        "id": s.id,
        "tenant": s.tenant,
        "gpus": s.gpus,
        "submit_time": float(s.submit_time),
        "duration": float(job.duration),
    }
    optional: dict[str, Any] = {
        "gpus_per_node": s.gpus_per_node,
        "priority": None if s.priority is PriorityClass.NORMAL else s.priority.name.lower(),
        "walltime": None if s.walltime is None else float(s.walltime),
        "preemptible": None if s.preemptible else False,
        "requeueable": None if s.requeueable else False,
        "checkpoint_interval": s.checkpoint_interval and float(s.checkpoint_interval),
        "topology": None if s.topology.mode is TopologyMode.PREFERRED else s.topology.mode.value,
        "segment": s.topology.segment,
        "purpose": s.purpose,
    }
    rec.update((k, v) for k, v in optional.items() if v is not None)
    return rec


def dump_native(workload: Workload, path: str | Path) -> None:
    """Write ``workload`` as native JSON lines (see the module docstring)."""
    path = Path(path)
    lines = [f"# gpulease native trace: {workload.name}"]
    for x in workload.leases:
        bounds = {"start": float(x.start), "end": float(x.end)}
        lease = {"kind": "lease", "lease_id": x.lease_id, "tenant": x.tenant, "gpus": x.gpus}
        lines.append(json.dumps(lease | bounds, ensure_ascii=False))
    lines += [
        json.dumps({"kind": "node", "time": float(e.time), "node": e.node, "state": e.state.value})
        for e in workload.node_events
    ]
    lines += [json.dumps(_job_record(j), ensure_ascii=False) for j in workload.jobs]
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise _fail(path, None, f"cannot write ({exc.strerror or exc})") from None


class TraceFilters(TypedDict, total=False):
    """The filters every format accepts (see the module docstring)."""

    tenant: str | None
    min_duration: float
    first: int | None


def _retime(workload: Workload, name: str, at: Callable[[float], float]) -> Workload:
    """Move every time ``t`` (submits, lease bounds, node events) to ``at(t)``."""
    return Workload(
        name,
        [
            replace(j, spec=replace(j.spec, submit_time=at(j.spec.submit_time)))
            for j in workload.jobs
        ],
        [replace(x, start=at(x.start), end=at(x.end)) for x in workload.leases],
        [replace(e, time=at(e.time)) for e in workload.node_events],
    )


def filter_workload(workload: Workload, **filters: Unpack[TraceFilters]) -> Workload:
    """Apply the trace filters (module docstring); a tenant with no job at all is an error."""
    tenant, first = filters.get("tenant"), filters.get("first")
    min_duration = filters.get("min_duration", 0.0)
    if first is not None and first < 0:
        raise InvalidRequest(f"first must be >= 0, got {first}", field="first")
    if tenant is not None and all(j.spec.tenant != tenant for j in workload.jobs):
        known = sorted({j.spec.tenant for j in workload.jobs})
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        raise InvalidRequest(
            f"{workload.name}: no job of tenant {tenant!r}; tenants are {shown}", field="tenant"
        )
    jobs = [
        j
        for j in workload.jobs
        if (tenant is None or j.spec.tenant == tenant) and j.duration >= min_duration
    ]
    jobs.sort(key=lambda j: j.spec.submit_time)  # stable: ties keep file order
    leases = [x for x in workload.leases if tenant is None or x.tenant == tenant]
    kept = Workload(workload.name, jobs[:first], leases, list(workload.node_events))
    parts = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in filters.items()
        if v is not None
    ]
    name = f"{workload.name}[{','.join(parts)}]" if parts else workload.name
    offset = kept.jobs[0].spec.submit_time if kept.jobs else 0.0
    return _retime(kept, name, lambda t: t - offset) if offset else replace(kept, name=name)


def read_trace(
    path: str | Path, fmt: str, **filters: Unpack[TraceFilters]
) -> tuple[Workload, LoadReport]:
    """Load a trace of format ``fmt``, apply the filters, and say what was skipped."""
    path = Path(path)
    if fmt == "philly":
        workload, report = _read_philly(path)
    elif fmt == "tiresias":
        workload, report = _read_tiresias(path)
    elif fmt == "native":
        workload = load_native(path)
        report = LoadReport(len(workload.jobs), 0, len(workload.jobs))
    else:
        raise InvalidRequest(
            f"unknown trace format {fmt!r}; use one of {', '.join(FORMATS)}", field="format"
        )
    kept = filter_workload(workload, **filters)
    return kept, replace(report, kept=len(kept.jobs))


def load_trace(path: str | Path, fmt: str, **filters: Unpack[TraceFilters]) -> Workload:
    """:func:`read_trace` without the report."""
    return read_trace(path, fmt, **filters)[0]


def load_philly(path: str | Path, **filters: Unpack[TraceFilters]) -> Workload:
    return load_trace(path, "philly", **filters)


def load_tiresias(path: str | Path) -> Workload:
    return load_trace(path, "tiresias")


def offered_load(workload: Workload, cluster_gpus: int) -> float:
    """Total GPU-seconds / (cluster GPUs x arrival span); refuses a zero span."""
    if cluster_gpus < 1:
        raise InvalidRequest(f"cluster_gpus must be >= 1, got {cluster_gpus}", field="cluster_gpus")
    span = workload.span
    if span <= 0:
        raise InvalidRequest(
            f"{workload.name}: arrival span is 0 (fewer than two distinct submit times), "
            "so the offered load is undefined",
            field="span",
        )
    return workload.gpu_seconds / (cluster_gpus * span)


def compress_to_load(workload: Workload, cluster_gpus: int, load: float) -> Workload:
    """Scale every time relative to the first submit by one factor so the offered load is
    ``load``. Durations and walltimes are unchanged; lease windows and node events are
    scaled with the arrivals so they keep their place in the trace."""
    if not load > 0 or not math.isfinite(load):
        raise InvalidRequest(f"load must be a finite number > 0, got {load}", field="load")
    factor = offered_load(workload, cluster_gpus) / load
    t0 = min(j.spec.submit_time for j in workload.jobs)
    return _retime(workload, f"{workload.name}@load={load:g}", lambda t: t0 + (t - t0) * factor)
