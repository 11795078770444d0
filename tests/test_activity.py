"""What the server processes print (gpulease.activity): a line per busy scheduler pass and
none for an idle one; uvicorn's access line per request, the path quoted. The same lines
from real processes: tests/e2e/test_api_e2e.py."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator

import pytest

from gpulease.activity import log_passes, pass_line, uvicorn_log_config
from gpulease.services.scheduling import PassReport


def test_an_idle_pass_has_no_line() -> None:
    assert pass_line(PassReport("jkt1")) is None
    assert pass_line(PassReport("jkt1", stale=3, changes=40)) is None  # nothing happened


def test_a_busy_pass_counts_what_it_did() -> None:
    report = PassReport(
        "jkt1",
        started=["a", "b", "c"],
        finished=["d"],
        requeued=["e", "f"],
        timed_out=["g"],
        rebuilt="leadership taken",
    )
    assert pass_line(report, 0.0123) == (
        "pass at jkt1 in 12 ms: 3 started, 1 ended, 2 requeued (preempted, held or lost), "
        "1 timed out, state rebuilt (leadership taken)"
    )
    assert pass_line(PassReport("jkt1", failed=["x"])) == "pass at jkt1: 1 failed as invalid"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The ``gpulease`` and uvicorn loggers configured as ``gpulease serve`` does, writing
    to a buffer; the logging configuration is restored afterwards."""
    names = ("gpulease", "uvicorn.access", "uvicorn.error")
    saved = {
        n: (lg.handlers[:], lg.level, lg.propagate) for n in names if (lg := logging.getLogger(n))
    }
    logging.config.dictConfig(uvicorn_log_config())
    buffer = io.StringIO()
    for name in names:
        for handler in logging.getLogger(name).handlers:
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def test_serve_prints_busy_passes_and_access_lines(captured: io.StringIO) -> None:
    log_passes([PassReport("jkt1"), PassReport("sgp1", started=["a"])], 0.002)
    # what uvicorn's protocol logs for a request (the path already quoted by uvicorn)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.7:5123", "GET", "/api/v1/jobs%0Aforged", "1.1", 200
    )
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("gpulease.scheduler: pass at sgp1 in 2 ms: 1 started")
    assert lines[1].endswith('access  10.0.0.7:5123 "GET /api/v1/jobs%0Aforged HTTP/1.1" 200 OK')
