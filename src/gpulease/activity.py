"""What the server processes print while they run, so their terminal shows activity.

* ``gpulease serve``: one line per request, uvicorn's access log (client, method, path,
  status; the path percent-quoted by uvicorn, so a request cannot forge a line), through
  :func:`uvicorn_log_config`, which every worker process applies.
* ``gpulease scheduler`` (and ``serve --scheduler``): one line per scheduler pass that did
  something, :func:`pass_line` (starts, ends, requeues, timeouts, failures, notices, a
  rebuilt state), never a line for an idle pass. :func:`configure` sends the ``gpulease``
  loggers' INFO lines to stderr.

Invariant: an idle pass prints nothing, so an idle server's terminal stays quiet; no line
carries a token, a request body or a query string's secret (uvicorn logs the path and query
only, and tokens travel in the Authorization header).
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger("gpulease.scheduler")

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


def _handlers(level: str) -> dict[str, Any]:
    return {
        "formatters": {
            "plain": {"format": LINE_FORMAT},
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
        },
    }


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's ``log_config``: its errors and one access line per request, and the
    ``gpulease`` loggers (a scheduler loop in the API process included)."""
    config = _handlers(level)
    config["loggers"].update(
        {
            "uvicorn.error": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
        }
    )
    return {"version": 1, "disable_existing_loggers": False, **config}


def configure(level: str = "INFO") -> None:
    """Send the ``gpulease`` loggers' lines to stderr (the scheduler process)."""
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, **_handlers(level)})
