"""Prometheus metrics: what each process counts, and the fleet's gauges at scrape time.

Two kinds of figures (docs/operations.md lists every family):

* **Process figures**, kept in memory by the process that sees the event, in
  ``prometheus_client``'s default registry: API latency and requests by route template
  (``api.metrics`` observes them), scheduler pass and step latency and decisions
  (:func:`observe_pass`, :func:`observe_step`), the queue wait before every start by tenant
  (:func:`observe_waits`, a histogram: from submission for a first start, from the requeue
  for a restart, :func:`start_waits`), screening decisions by outcome
  (:func:`count_screening`). An increment costs a dict lookup and a lock: the submission
  path adds nothing more.
* **Fleet figures** (GPUs allocated / idle / down per rack and tenant, queue length and
  oldest wait by tenant, lease utilisation, each site's scheduler heartbeat), computed when
  scraped by :class:`FleetCollector` from a few aggregate reads of the live rows
  (``persistence.fleet_figures``: never a scan of history), kept for ``metrics_cache_s`` so
  any number of scrapers cost one read per period.

Processes. The API and the scheduler are separate processes (``make run``). The fleet
figures come from the database, so any API process serves them at ``/metrics``. The
scheduler's own figures (pass and step latency, decisions) live in the scheduler process:
it serves them on a port of its own (``GPULEASE_SCHEDULER_METRICS_PORT``,
:class:`MetricsServer`), a second scrape target. With the loop inside the API
process (``serve --scheduler``) they share its registry and ``/metrics`` shows them.

Labels are bounded: a route's template (never its raw path), a site, rack, tenant or lease
id (rows of the fleet), an outcome or decision kind (enums). Tenant ids are labels, so a
scrape is authenticated (``metrics_token``; ``api.metrics``).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpulease.activity import PassFigures
from gpulease.domain.clock import Clock
from gpulease.domain.states import NodeState
from gpulease.persistence.db import Database
from gpulease.persistence.fleet_figures import FleetFigures, read_fleet
from gpulease.persistence.metering_reads import last_run_ends
from gpulease.persistence.tables import Job

log = logging.getLogger("gpulease.metrics")

# Latency buckets: a request or a pass takes milliseconds to seconds.
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_SECONDS = Histogram(
    "gpulease_http_request_duration_seconds",
    "API request latency by method and route template",
    ["method", "route"],
    buckets=SECONDS,
)
HTTP_REQUESTS = Counter(
    "gpulease_http_requests",
    "API requests by method, route template and status",
    ["method", "route", "status"],
)
PASS_SECONDS = Histogram(
    "gpulease_scheduler_pass_seconds", "A scheduler pass over every site", buckets=SECONDS
)
SITE_PASS_SECONDS = Histogram(
    "gpulease_scheduler_site_pass_seconds", "One site's share of a pass", ["site"], buckets=SECONDS
)
STEP_SECONDS = Histogram(
    "gpulease_scheduler_step_seconds",
    "The scheduling core's step (Scheduler.step) for one site",
    ["site"],
    buckets=SECONDS,
)
DECISIONS = Counter(
    "gpulease_scheduler_decisions",
    "Jobs started, finished, requeued (preempted, held, lost), timed out, failed",
    ["site", "kind"],
)
# Queue waits: seconds to days.
WAITS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0,
         7 * 86400.0)  # fmt: skip
QUEUE_WAIT_SECONDS = Histogram(
    "gpulease_queue_wait_seconds",
    "Time a job waited queued before each start, by tenant: since its submission for the "
    "first, since it was requeued (preempted, held, node lost) for a restart",
    ["tenant"],
    buckets=WAITS,
)
FAILED_PASSES = Counter("gpulease_scheduler_failed_passes", "Scheduler passes that failed")
SCREENINGS = Counter(
    "gpulease_screening_decisions",
    "Screening decisions by kind (adhoc, kyc) and outcome",
    ["kind", "outcome"],
)


def observe_pass(seconds: float) -> None:
    PASS_SECONDS.observe(seconds)


def observe_site_pass(report: PassFigures, seconds: float) -> None:
    SITE_PASS_SECONDS.labels(report.site_id).observe(seconds)
    for kind, jobs in (
        ("started", report.started),
        ("finished", report.finished),
        ("requeued", report.requeued),
        ("timed_out", report.timed_out),
        ("notice", report.notices),
        ("failed", report.failed),
    ):
        if jobs:
            DECISIONS.labels(report.site_id, kind).inc(len(jobs))


def observe_waits(starts: Iterable[tuple[str, datetime | None, datetime]]) -> None:
    """Each start's wait: (tenant, started at, queued since) of the committed starts."""
    for tenant, started, since in starts:
        if started is not None:
            QUEUE_WAIT_SECONDS.labels(tenant).observe(max(0.0, (started - since).total_seconds()))


def start_waits(
    db: Database, started: Sequence[Job]
) -> list[tuple[str, datetime | None, datetime]]:
    """(tenant, started at, queued since) of committed starts (their job rows): a first
    start waited since its submission, a restart since its previous run ended (the latest
    end of the job's closed allocation rows: a preemption, a hold, a node lost). One read,
    only when the pass restarted jobs; if it fails, restarts are not observed this time."""
    out: list[tuple[str, datetime | None, datetime]] = []
    again: list[Job] = []
    for job in started:
        if job.starts <= 1:
            out.append((job.tenant_id, job.started_at, job.submitted_at))
        else:
            again.append(job)
    if not again:
        return out
    try:
        with db.transaction(write=False) as tx:
            ends = last_run_ends(tx, {j.id for j in again})
    except Exception:  # a figure, never a reason to fail the pass that committed the starts
        log.warning("metrics: the restarts' queue waits could not be read", exc_info=True)
        return out
    for job in again:
        since = ends.get(job.id)
        out.append((job.tenant_id, job.started_at, since or job.submitted_at))
    return out


def observe_step(site_id: str, seconds: float) -> None:
    STEP_SECONDS.labels(site_id).observe(seconds)


def count_screening(kind: str, outcome: str) -> None:
    SCREENINGS.labels(kind, outcome).inc()


# ------------------------------------------------------------------ fleet figures
class FleetCollector(Collector):
    """The fleet's gauges, read at scrape time at most once per ``max_age_s``."""

    def __init__(self, db: Database, clock: Clock, max_age_s: float = 5.0) -> None:
        self.db = db
        self.clock = clock
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._figures: FleetFigures | None = None

    def figures(self) -> FleetFigures:
        with self._lock:  # concurrent scrapes wait for one read
            if self._figures is None or time.monotonic() - self._read_at >= self.max_age_s:
                self._figures = read_fleet(self.db)
                self._read_at = time.monotonic()
            return self._figures

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "gpulease_fleet_up", "1 if this scrape read the fleet's figures, 0 if it failed"
        )
        try:
            families = list(fleet_metrics(self.figures(), self.clock))
        except Exception:  # the database is down: the process's own figures still answer
            log.warning("metrics: the fleet's figures could not be read", exc_info=True)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]


def fleet_metrics(figures: FleetFigures, clock: Clock) -> Iterator[Metric]:
    """The fleet's metric families from its figures (pure)."""
    now = clock.now()
    gpus = GaugeMetricFamily(
        "gpulease_gpus",
        "GPUs per rack by state: allocated, idle (up, unallocated), draining, down",
        labels=["site", "rack", "state"],
    )
    racks: dict[tuple[str, str], dict[str, int]] = {}
    for (site_id, rack_id, state), n in figures.gpus_by_state.items():
        racks.setdefault((site_id, rack_id), {})[state] = n
    allocated_in: dict[tuple[str, str], int] = {}
    for (site_id, rack_id, _tenant), n in figures.allocated.items():
        allocated_in[(site_id, rack_id)] = allocated_in.get((site_id, rack_id), 0) + n
    for (site_id, rack_id), states in sorted(racks.items()):
        allocated = allocated_in.get((site_id, rack_id), 0)
        up = states.get(NodeState.UP.value, 0)
        draining = states.get(NodeState.DRAINING.value, 0)
        gpus.add_metric([site_id, rack_id, "allocated"], allocated)
        # a draining node's running work counts as allocated, its free GPUs take nothing
        gpus.add_metric([site_id, rack_id, "idle"], max(up - allocated, 0))
        gpus.add_metric([site_id, rack_id, "draining"], draining)
        gpus.add_metric([site_id, rack_id, "down"], states.get(NodeState.DOWN.value, 0))
    yield gpus
    by_tenant = GaugeMetricFamily(
        "gpulease_gpus_allocated",
        "GPUs allocated to a tenant's running jobs, per rack",
        labels=["site", "rack", "tenant"],
    )
    for (site_id, rack_id, tenant_id), n in sorted(figures.allocated.items()):
        by_tenant.add_metric([site_id, rack_id, tenant_id], n)
    yield by_tenant
    queued = GaugeMetricFamily(
        "gpulease_queue_jobs", "Queued jobs by tenant", labels=["site", "tenant"]
    )
    queued_gpus = GaugeMetricFamily(
        "gpulease_queue_gpus", "GPUs asked by queued jobs, by tenant", labels=["site", "tenant"]
    )
    wait = GaugeMetricFamily(
        "gpulease_queue_oldest_wait_seconds",
        "How long the tenant's longest-waiting queued job has waited",
        labels=["site", "tenant"],
    )
    for q in sorted(figures.queues, key=lambda q: (q.site_id, q.tenant_id)):
        queued.add_metric([q.site_id, q.tenant_id], q.jobs)
        queued_gpus.add_metric([q.site_id, q.tenant_id], q.gpus)
        wait.add_metric([q.site_id, q.tenant_id], max((now - q.oldest).total_seconds(), 0.0))
    yield from (queued, queued_gpus, wait)
    leased = GaugeMetricFamily(
        "gpulease_lease_gpus", "GPUs of an active lease", labels=["site", "tenant", "lease"]
    )
    used = GaugeMetricFamily(
        "gpulease_lease_gpus_used",
        "GPUs the active lease's running jobs hold",
        labels=["site", "tenant", "lease"],
    )
    utilisation = GaugeMetricFamily(
        "gpulease_lease_utilisation",
        "Share of an active lease's GPUs its running jobs hold (0..1)",
        labels=["site", "tenant", "lease"],
    )
    for lease in sorted(figures.leases, key=lambda lease: lease.lease_id):
        labels = [lease.site_id, lease.tenant_id, lease.lease_id]
        leased.add_metric(labels, lease.gpus)
        used.add_metric(labels, lease.used)
        utilisation.add_metric(labels, min(lease.used / lease.gpus, 1.0) if lease.gpus else 0.0)
    yield from (leased, used, utilisation)
    ticks = CounterMetricFamily(
        "gpulease_scheduler_ticks", "Passes the site's leader applied", labels=["site"]
    )
    failed = GaugeMetricFamily(
        "gpulease_scheduler_leader_failed_passes",
        "The leading scheduler process's failed passes, as of its last pass",
        labels=["site"],
    )
    age = GaugeMetricFamily(
        "gpulease_scheduler_last_pass_age_seconds",
        "Seconds since the site's last applied pass (a stalled scheduler grows it)",
        labels=["site"],
    )
    for s in sorted(figures.schedulers, key=lambda s: s.site_id):
        ticks.add_metric([s.site_id], s.ticks)
        failed.add_metric([s.site_id], s.failed_passes)
        age.add_metric([s.site_id], max((now - s.last_tick_at).total_seconds(), 0.0))
    yield from (ticks, failed, age)


def fleet_registry(db: Database, clock: Clock, max_age_s: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(db, clock, max_age_s))
    return registry


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text exposition of this process's figures and the given registries'."""
    return b"".join(generate_latest(r) for r in (REGISTRY, *registries))


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """``Authorization: Bearer <expected>``, compared in constant time; no token set: no."""
    if not expected or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


# ------------------------------------------------- the scheduler process's own port
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def process_metrics_app(
    token: str | None,
) -> Callable[[dict[str, Any], StartResponse], list[bytes]]:
    """A WSGI app serving this process's figures at ``/metrics`` to the scrape token."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics" or not token_matches(
            token, environ.get("HTTP_AUTHORIZATION")
        ):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [exposition()]

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one every few seconds)."""


class MetricsServer:
    """:func:`process_metrics_app` served in a daemon thread (one scrape at a time)."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self._server = make_server(host, port, process_metrics_app(token), handler_class=_Quiet)
        self.port: int = self._server.server_port  # the one bound (port 0: any free one)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gpulease-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
