"""What the server processes print while they run, so their terminal shows activity.

* ``gpulease serve``: one line per request, uvicorn's access log (client, method, path,
  status; the path percent-quoted by uvicorn, so a request cannot forge a line), through
  :func:`uvicorn_log_config`, which every worker process applies.
* ``gpulease scheduler`` (and ``serve --scheduler``): one line per scheduler pass that did
  something, :func:`pass_line` (starts, ends, requeues, timeouts, failures, notices, a
  rebuilt state), never a line for an idle pass. :func:`configure` sends the ``gpulease``
  loggers' INFO lines to stderr.

Two formats (``GPULEASE_LOG_FORMAT``): ``text``, the lines above for a terminal, and
``json``, one JSON object a line for a log pipeline: every ``gpulease`` logger's line, one
line per request (``gpulease.access``, written by ``api.metrics``: method, route template,
status, duration, request id, principal id; uvicorn's access line is off) and one per
scheduler decision (``gpulease.decisions``, :func:`log_decision`: start, preempt, requeue,
timeout, finish, with job id, tenant id, GPUs and reason). The two JSON-only loggers stay
silent in ``text``, so a terminal keeps one line per request and per busy pass.

Invariant: an idle pass prints nothing, so an idle server's terminal stays quiet; no line
carries a token, a request body or a query string's secret (uvicorn logs the path and query
only, tokens travel in the Authorization header, and the JSON request line names the route
template, never the raw path or query).
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("gpulease.scheduler")
access_log = logging.getLogger("gpulease.access")  # json: a line per request
decision_log = logging.getLogger("gpulease.decisions")  # json: a line per decision
FORMATS = ("text", "json")
# the request being served (set by ``api.metrics``): every JSON line written meanwhile,
# in the event loop or the worker thread the route runs in, carries it
request_id: ContextVar[str | None] = ContextVar("gpulease_request_id", default=None)

LINE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
ACCESS_FORMAT = '%(asctime)s access  %(client_addr)s "%(request_line)s" %(status_code)s'


class PassFigures(Protocol):
    """What a site's pass report tells (``services.scheduling.PassReport``)."""

    site_id: str
    started: list[str]
    finished: list[str]
    requeued: list[str]
    timed_out: list[str]
    notices: list[str]
    failed: list[str]
    rebuilt: str
    divergences: list[str]


def pass_line(report: PassFigures, seconds: float | None = None) -> str | None:
    """One line for a site's pass that changed something; None for an idle pass."""
    counts = [
        (len(report.started), "started"),
        (len(report.finished), "ended"),
        (len(report.requeued), "requeued (preempted, held or lost)"),
        (len(report.timed_out), "timed out"),
        (len(report.failed), "failed as invalid"),
        (len(report.notices), "preemption notices"),
        (len(report.divergences), "divergences found"),
    ]
    parts = [f"{n:,} {what}" for n, what in counts if n]
    if report.rebuilt:
        parts.append(f"state rebuilt ({report.rebuilt})")
    if not parts:
        return None
    took = f" in {seconds * 1000:,.0f} ms" if seconds is not None else ""
    return f"pass at {report.site_id}{took}: {', '.join(parts)}"


def log_passes(reports: Sequence[PassFigures], seconds: float | None = None) -> None:
    for report in reports:
        line = pass_line(report, seconds)
        if line is not None:
            log.info(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the
    record's ``fields`` (``extra={"fields": {...}}``) as keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            line["request_id"] = current
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def log_request(
    method: str,
    route: str,
    status: int,
    seconds: float,
    request_id: str,
    principal_id: str | None,
) -> None:
    """The request's line (json format only: ``text`` leaves it to uvicorn's access line)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    access_log.info(
        "%s %s %d",
        method,
        route,
        status,
        extra={
            "fields": {
                "event": "request",
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": request_id,
                "principal_id": principal_id,
            }
        },
    )


def decisions_logged() -> bool:
    """Decision lines are wanted (json format): a pass builds them only then."""
    return decision_log.isEnabledFor(logging.INFO)


def log_decision(
    event: str, site_id: str, job_id: str, tenant_id: str | None, gpus: int | None, reason: str
) -> None:
    """One scheduler decision: start, notice, preempt, timeout, finish."""
    decision_log.info(
        "%s %s",
        event,
        job_id,
        extra={
            "fields": {
                "event": event,
                "site_id": site_id,
                "job_id": job_id,
                "tenant_id": tenant_id,
                "gpus": gpus,
                "reason": reason,
            }
        },
    )


def _handlers(level: str, fmt: str = "text") -> dict[str, Any]:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(FORMATS)}")
    json_lines = fmt == "json"
    plain: dict[str, Any] = (
        {"()": "gpulease.activity.JsonFormatter"} if json_lines else {"format": LINE_FORMAT}
    )
    json_only = level if json_lines else "WARNING"  # text: no line per request or decision
    return {
        "formatters": {
            "plain": plain,
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": ACCESS_FORMAT},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "gpulease": {"handlers": ["stderr"], "level": level, "propagate": False},
            "gpulease.access": {"level": json_only},
            "gpulease.decisions": {"level": json_only},
        },
    }


def uvicorn_log_config(
    level: str = "INFO", fmt: str = "text", access: bool = True
) -> dict[str, Any]:
    """uvicorn's ``log_config``: its errors and one access line per request (uvicorn's in
    ``text``, ``gpulease.access`` in ``json``; none when ``access`` is off), and the
    ``gpulease`` loggers (a scheduler loop in the API process included)."""
    config = _handlers(level, fmt)
    if not access:
        config["loggers"]["gpulease.access"]["level"] = "WARNING"
    config["loggers"].update(
        {
            "uvicorn.error": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {
                "handlers": ["access"],
                "level": level if fmt == "text" else "WARNING",
                "propagate": False,
            },
        }
    )
    return {"version": 1, "disable_existing_loggers": False, **config}


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Send the ``gpulease`` loggers' lines to stderr (the scheduler process)."""
    logging.config.dictConfig(
        {"version": 1, "disable_existing_loggers": False, **_handlers(level, fmt)}
    )
