"""Pure domain types the scheduling core consumes: job requests and lease guarantees.

Times in the core are float seconds (Unix epoch in the live service, virtual seconds in the
simulator). Ids are stable strings. Everything here is frozen and validated on creation, so
a malformed request is refused before it reaches a queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from gpulease.domain.errors import InvalidRequest


class TopologyMode(StrEnum):
    """Rack (NVLink domain) locality a job asks for.

    ``required``: the whole job (or each segment) must sit in one rack, or it waits.
    ``preferred``: fewest racks possible, but it may span more rather than wait.
    ``none``: no constraint (the placer still packs tightly).
    """

    REQUIRED = "required"
    PREFERRED = "preferred"
    NONE = "none"


class PriorityClass(IntEnum):
    """Higher classes go first and may preempt preemptible jobs of lower classes."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, text: str) -> PriorityClass:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(p.name.lower() for p in cls)
            raise InvalidRequest(
                f"unknown priority class {text!r}; use one of {names}", field="priority"
            ) from None


@dataclass(frozen=True, slots=True)
class TopologyRequest:
    mode: TopologyMode = TopologyMode.PREFERRED
    segment: int | None = None  # GPUs per segment; each segment inside one rack (Slurm --segment)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A gang job: ``gpus`` GPUs all at once or not at all.

    ``gpus_per_node``: exact GPUs on each node it uses (None: any split, packed tightly).
    ``walltime``: the user's limit in seconds; the scheduler may use it (backfill) and kills
    the job when a run exceeds it. The scheduler never sees the true duration otherwise.
    ``checkpoint_interval``: seconds between checkpoints; progress since the last one is lost
    on preemption or failure (None: nothing is lost).
    """

    id: str
    tenant: str
    gpus: int
    submit_time: float
    gpus_per_node: int | None = None
    priority: PriorityClass = PriorityClass.NORMAL
    walltime: float | None = None
    preemptible: bool = True
    requeueable: bool = True
    checkpoint_interval: float | None = None
    topology: TopologyRequest = field(default_factory=TopologyRequest)
    purpose: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidRequest("job id must not be empty", field="id")
        if self.gpus < 1:
            raise InvalidRequest(f"job {self.id}: gpus must be >= 1, got {self.gpus}", field="gpus")
        gpn = self.gpus_per_node
        if gpn is not None and (gpn < 1 or self.gpus % gpn):
            raise InvalidRequest(
                f"job {self.id}: gpus ({self.gpus}) must be a multiple of gpus_per_node ({gpn})",
                field="gpus_per_node",
            )
        seg = self.topology.segment
        if seg is not None:
            if seg < 1 or self.gpus % seg:
                raise InvalidRequest(
                    f"job {self.id}: gpus ({self.gpus}) must be a multiple of segment ({seg})",
                    field="segment",
                )
            if gpn is not None and seg % gpn:
                raise InvalidRequest(
                    f"job {self.id}: segment ({seg}) must be a multiple of gpus_per_node ({gpn})",
                    field="segment",
                )
        if self.walltime is not None and self.walltime <= 0:
            raise InvalidRequest(f"job {self.id}: walltime must be > 0", field="walltime")
        if self.checkpoint_interval is not None and self.checkpoint_interval <= 0:
            raise InvalidRequest(
                f"job {self.id}: checkpoint_interval must be > 0", field="checkpoint_interval"
            )


@dataclass(frozen=True, slots=True)
class LeaseGuarantee:
    """A lease seen as a quota: ``tenant`` is guaranteed ``gpus`` GPUs during [start, end)."""

    lease_id: str
    tenant: str
    gpus: int
    start: float
    end: float

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise InvalidRequest(f"lease {self.lease_id}: gpus must be >= 1", field="gpus")
        if self.end <= self.start:
            raise InvalidRequest(f"lease {self.lease_id}: end must be after start", field="end")

    def active_at(self, now: float) -> bool:
        return self.start <= now < self.end
