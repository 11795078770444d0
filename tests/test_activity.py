"""What the server processes print (gpulease.activity): a line per busy scheduler pass and
none for an idle one; uvicorn's access line per request, the path quoted. The same lines
from real processes: tests/e2e/test_api_e2e.py."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gpulease import activity
from gpulease.activity import log_decision, log_passes, log_request, pass_line, uvicorn_log_config
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


@contextmanager
def configured(fmt: str) -> Iterator[io.StringIO]:
    """The ``gpulease`` and uvicorn loggers configured as ``gpulease serve`` does with
    ``GPULEASE_LOG_FORMAT=fmt``, writing to a buffer; the logging configuration is restored
    afterwards."""
    names = ("gpulease", "gpulease.access", "gpulease.decisions", "uvicorn.access")
    names += ("uvicorn.error",)
    saved = {
        n: (lg.handlers[:], lg.level, lg.propagate) for n in names if (lg := logging.getLogger(n))
    }
    logging.config.dictConfig(uvicorn_log_config(fmt=fmt))
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


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    with configured("text") as buffer:
        yield buffer


def _uvicorn_access_line() -> None:
    """What uvicorn's protocol logs for a request (the path already quoted by uvicorn)."""
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.7:5123", "GET", "/api/v1/jobs%0Aforged", "1.1", 200
    )


def test_json_format_prints_an_object_a_line() -> None:
    with configured("json") as buffer:
        log_passes([PassReport("jkt1"), PassReport("sgp1", started=["a"])], 0.002)
        _uvicorn_access_line()  # off: the request's own line replaces it
        log_request("GET", "/api/v1/jobs/{job_id}", 404, 0.0042, "req-1", "user-7")
        log_decision("start", "jkt1", "job-1", "tenant-2", 8, "own capacity")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == [
        "gpulease.scheduler",
        "gpulease.access",
        "gpulease.decisions",
    ]
    assert lines[0]["message"] == "pass at sgp1 in 2 ms: 1 started"
    assert lines[0]["level"] == "info"
    request = lines[1]
    assert request["request_id"] == "req-1"
    assert request["principal_id"] == "user-7"
    assert request["route"] == "/api/v1/jobs/{job_id}"
    assert (request["status"], request["duration_ms"]) == (404, 4.2)
    assert lines[2]["event"] == "start"
    assert (lines[2]["job_id"], lines[2]["tenant_id"], lines[2]["gpus"]) == ("job-1", "tenant-2", 8)


def test_text_format_keeps_the_terminal_lines_only() -> None:
    with configured("text") as buffer:
        log_request("GET", "/api/v1/jobs", 200, 0.001, "req-1", None)
        log_decision("start", "jkt1", "job-1", "tenant-2", 8, "own capacity")
        _uvicorn_access_line()
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1
    assert "access  10.0.0.7:5123" in lines[0]


def test_serve_prints_busy_passes_and_access_lines(captured: io.StringIO) -> None:
    log_passes([PassReport("jkt1"), PassReport("sgp1", started=["a"])], 0.002)
    _uvicorn_access_line()
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("gpulease.scheduler: pass at sgp1 in 2 ms: 1 started")
    assert lines[1].endswith('access  10.0.0.7:5123 "GET /api/v1/jobs%0Aforged HTTP/1.1" 200 OK')


def test_a_json_line_written_while_a_request_is_served_carries_its_id() -> None:
    with configured("json") as buffer:
        bound = activity.request_id.set("req-9")
        try:
            logging.getLogger("gpulease.jobs").warning("something to look into")
        finally:
            activity.request_id.reset(bound)
        logging.getLogger("gpulease.jobs").warning("outside any request")
    inside, outside = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert inside["request_id"] == "req-9"
    assert "request_id" not in outside


def test_no_access_log_means_no_request_line_in_json_either() -> None:
    config = uvicorn_log_config(fmt="json", access=False)
    assert config["loggers"]["gpulease.access"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"
    with pytest.raises(ValueError, match="log format"):
        uvicorn_log_config(fmt="yaml")
