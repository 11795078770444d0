"""Benchmark: what ``api.metrics.RequestObserver`` adds to every request, in CPU per request.

The same trivial ASGI app (answers 201 with a short body, as a submission does) is called
N times directly on one event loop: bare, then wrapped in the observer (route histogram,
request counter, request id, the log line's level check; ``text`` format: no line
written), then wrapped with the JSON request line on (written to a discarded stream). The
three run interleaved in rounds, in the same process, and the best round of each is kept:
the machine is shared, so the least disturbed round is the one that tells.

    python benchmarks/bench_request_observer.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from gpulease.activity import JsonFormatter
from gpulease.api.metrics import RequestObserver


class _Route:
    path_format = "/api/v1/jobs"


async def submission(scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = _Route()
    await send(
        {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"json")]}
    )
    await send({"type": "http.response.body", "body": b'{"id": "job-1"}'})


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/jobs",
        "headers": [(b"authorization", b"Bearer x"), (b"x-request-id", b"client-1")],
    }


async def _noop_receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _noop_send(message: Any) -> None:
    return None


async def _run(app: ASGIApp, n: int) -> float:
    began = time.process_time()
    for _ in range(n):
        await app(_scope(), _noop_receive, _noop_send)
    return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    access = logging.getLogger("gpulease.access")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    access.addHandler(handler)
    access.propagate = False
    observed = RequestObserver(submission)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, app, level in (
            ("bare app", submission, logging.WARNING),
            ("observer, text format", observed, logging.WARNING),
            ("observer, json line", observed, logging.INFO),
        ):
            access.setLevel(level)
            handler.stream = io.StringIO()
            took = asyncio.run(_run(app, args.requests))
            best[name] = min(best.get(name, float("inf")), took)
    bare = best["bare app"]
    print(f"{args.requests:,} requests, best of {args.rounds} rounds, CPU per request:")
    for name, took in best.items():
        extra = "" if name == "bare app" else f"  (+{(took - bare) / args.requests * 1e6:.1f} us)"
        print(f"  {name:<24} {took / args.requests * 1e6:7.1f} us{extra}")


if __name__ == "__main__":
    main()
