"""Benchmark: the live scheduler's pass latency at a real site's load, before and after.

What is measured. On a fresh PostgreSQL database (dropped at the end) holding the demo site
(``gpulease init --demo``: 32 GB200 NVL72 racks, 2,304 GPUs, three approved tenants with
leases), seeder processes submit ``--queued`` jobs (default 20,000) through
``services.jobs.submit``; the scheduler's passes then start about ``--running`` of them
(default 1,000: sizes 1/2/4 GPUs, exponential run times of mean running / finish-rate = 20 s,
so about 50 end per second). Then, for ``--minutes``, client processes submit ``--rate`` jobs
per second (default 100) through ``services.jobs.submit`` while this process drives the
scheduler the way the server does: ``LiveScheduler(ctx, executor)`` with the simulated
executor, the leader lease taken before each pass (``SchedulerLoop``'s lock, as ``serve``
runs it; ``--no-leader`` drives ``tick()`` without it), ``tick()`` then a sleep of
``scheduler_interval_s``. Per pass: wall time of ``tick()`` and its thread's CPU time (a
consistency check builds in a thread of its own; the lease's acquire is timed apart), SQL
statements the engine issued (a ``before_cursor_execute`` listener), jobs started and
finished, and the process RSS. Printed: p50/p95/p99/max pass time, statements
per pass, RSS at start/middle/end, starts and completions per second achieved, submissions
per second achieved with their latency, and the queue at the end. One pass in the middle is
run under cProfile (``--profile N``: top N by cumulative time; the pass thread's CPU time,
not wall time, so waiting for a core or for PostgreSQL is left out) and left out of the
figures; ``GPULEASE_BENCH_PSTATS=FILE`` dumps its statistics (for pstats' callers).

Before and after in the same run: ``--baseline REF`` checks REF out in a temporary
``git worktree`` and runs the same measurement with ``PYTHONPATH`` on that tree's ``src``
(one subprocess per side), then this tree's ``src`` (or ``--after REF``); both are printed
side by side with ratios. The measuring side uses only entry points both have: the
``gpulease init --demo`` command, ``services.setup.open_context`` / ``make_executor``,
``services.identity.authenticate``, ``services.jobs.submit``, ``LiveScheduler(ctx,
executor).tick()`` and ``SchedulerLoop(...).lock``.

    python benchmarks/bench_live_pass.py --baseline REF [--minutes 10] [--baseline-minutes 2]
        [--queued 20000] [--running 1000] [--rate 100] [--finish-rate 50] [--clients 2]
        [--constant-queue] [--json OUT]

``--constant-queue`` sets the completion rate to the arrival rate (100 in, 100 out: runs of
mean 10 s at 1,000 running), so the queue stays near ``--queued`` and memory can be read
as flat or not; the issue's load (100 in, 50 out) grows the queue by 50 jobs a second, and
"RSS growth per queued job" divides the RSS growth over the measured window by the growth
of the queue.

``--baseline-minutes`` runs the before side for less time than the after side (a slow before
side at this load takes about four times its measured minutes of machine time); the rows
are figures per pass, so the two sides stay comparable.

Caveats: the machine has 2 cores shared by the scheduler, the submitting clients and
PostgreSQL (and other work), so pass times include waiting for the CPU; compare the two
sides of one run, not figures across runs. The queue grows by about (rate - finish-rate) per
second by design (100 in, 50 out). The first passes after seeding (the ramp to ``--running``)
are reported apart, not in the percentiles. Starts and completions per second come from the
jobs' rows (``started_at`` / ``ended_at`` in the arrivals' window): a pass that loses the
leader lease midway returns no report although what it committed stands ("started/s in pass
reports" shows the difference). A start is dated at the beginning of its pass, so with passes
longer than a run's duration the simulated executor ends it at the next poll. Two sides on
the same code (an A/A run) differed by up to 1.5x in pass p50 with the machine's load average
at 6-9: read ratios far from 1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    WarningCounter,
    create_pg_database,
    drop_pg_database,
    git_tree,
    pct,
    profile_report,
    rss_mib,
    side_by_side,
)

SIZES = ((1, 0.4), (2, 0.3), (4, 0.3))  # GPUs per job, weight: about 2.2 GPUs a job
# (tenant admin email, weight, approved end use): the demo's three tenants
TENANTS = (
    ("admin@inftech.example", 0.6, "financial-services-ai"),
    ("admin@bank.example", 0.25, "financial-services-ai"),
    ("admin@university.example", 0.15, "scientific-computing"),
)
DB_PREFIX = "gpulease_livebench"


# ------------------------------------------------------------------ client processes
def _client(args: argparse.Namespace) -> None:
    """Submit jobs through ``services.jobs.submit``: ``--count`` as fast as possible (seeding),
    or at ``--client-rate`` per second from ``--start-at`` for ``--duration`` seconds."""
    from gpulease.services import identity, jobs
    from gpulease.services.setup import open_context
    from gpulease.settings import Settings

    ctx = open_context(Settings())
    tokens = json.loads(args.tokens)
    actors = [(identity.authenticate(ctx, tokens[e]), w, use) for e, w, use in TENANTS]
    rng = random.Random(args.seed)
    mean_s = args.mean_duration

    def one() -> float:
        actor, _w, purpose = rng.choices(actors, weights=[a[1] for a in actors])[0]
        gpus = rng.choices([s for s, _ in SIZES], weights=[w for _, w in SIZES])[0]
        duration = min(rng.expovariate(1.0 / mean_s), 6 * mean_s)
        sub = jobs.JobSubmission(
            gpus=gpus, purpose=purpose, command="train", duration_s=round(duration, 3)
        )
        t0 = time.perf_counter()
        jobs.submit(ctx, actor, sub)
        return time.perf_counter() - t0

    latencies: list[float] = []
    errors: list[str] = []
    started = time.time()
    if args.count:  # seeding
        for _ in range(args.count):
            latencies.append(one())
    else:
        time.sleep(max(0.0, args.start_at - time.time()))
        started = time.time()
        n = 0
        while True:
            due = args.start_at + n / args.client_rate
            if due >= args.start_at + args.duration:
                break
            time.sleep(max(0.0, due - time.time()))  # behind schedule: catch up at once
            try:
                latencies.append(one())
            except Exception as error:  # counted and shown; the run goes on
                errors.append(f"{type(error).__name__}: {error}"[:200])
            n += 1
    wall = time.time() - started
    out = {"submitted": len(latencies), "wall_s": wall, "latencies": latencies, "errors": errors}
    Path(args.out).write_text(json.dumps(out))
    ctx.db.dispose()


def _spawn_client(
    env: dict[str, str], tokens: str, out: Path, **options: float
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--client", "--tokens", tokens, "--out", str(out)]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(cmd, env=env)


def _wait_all(procs: list[subprocess.Popen[bytes]], what: str) -> None:
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a {what} process failed (exit {proc.returncode})")


# ------------------------------------------------------------------ one side
def _count_jobs(url: str, since: float = 0.0, until: float = 0.0) -> dict[str, int]:
    """Jobs by state, and (from the rows' times) how many started and ended in a window:
    a pass that loses leadership midway returns no report, but its commits count here."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        window = conn.execute(
            "SELECT count(*) FILTER (WHERE started_at >= to_timestamp(%s)"
            " AND started_at < to_timestamp(%s)),"
            " count(*) FILTER (WHERE ended_at >= to_timestamp(%s)"
            " AND ended_at < to_timestamp(%s) AND state IN ('succeeded', 'failed'))"
            " FROM jobs",
            (since, until, since, until),
        ).fetchone() or (0, 0)
    counts = {str(state): int(n) for state, n in rows}
    return counts | {"started_in_window": window[0], "ended_in_window": window[1]}


def _side(args: argparse.Namespace) -> None:
    """Set up a database, seed it, measure passes under load; write the figures as JSON."""
    import gpulease

    tmp = Path(tempfile.mkdtemp(prefix="gpulease-livebench-"))
    db_name, url = create_pg_database(DB_PREFIX)
    env = dict(os.environ, GPULEASE_DATABASE_URL=url, GPULEASE_DATA_DIR=str(tmp))
    os.environ.update(GPULEASE_DATABASE_URL=url, GPULEASE_DATA_DIR=str(tmp))
    clients: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"package": str(Path(gpulease.__file__).parent)}
    log = _logger(args.label)
    try:
        t0 = time.perf_counter()
        init = subprocess.run(
            [sys.executable, "-m", "gpulease.cli", "init", "--demo", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        tokens = json.dumps({u["email"]: u["token"] for u in json.loads(init.stdout)})
        log(f"demo site created in {time.perf_counter() - t0:.1f} s")
        mean_duration = args.running / args.finish_rate
        t0 = time.perf_counter()
        seeders = max(1, args.seeders)
        for i in range(seeders):
            share = args.queued // seeders + (i < args.queued % seeders)
            out = tmp / f"seed-{i}.json"
            clients.append(
                _spawn_client(
                    env, tokens, out, count=share, seed=1000 + i, mean_duration=mean_duration
                )
            )
        _wait_all(clients, "seeding")
        clients = []
        seed_s = time.perf_counter() - t0
        result["seed"] = {"jobs": args.queued, "wall_s": round(seed_s, 1)}
        log(f"{args.queued:,} jobs submitted in {seed_s:.1f} s ({args.queued / seed_s:.0f}/s)")
        result |= _drive(args, env, tokens, url, tmp, mean_duration, clients, log)
    finally:
        for proc in clients:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        drop_pg_database(db_name)
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


def _logger(label: str) -> Any:
    start = time.perf_counter()

    def log(message: str) -> None:
        print(
            f"[{label} {time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True
        )

    return log


def _drive(
    args: argparse.Namespace,
    env: dict[str, str],
    tokens: str,
    url: str,
    tmp: Path,
    mean_duration: float,
    clients: list[subprocess.Popen[bytes]],
    log: Any,
) -> dict[str, Any]:
    from sqlalchemy import event

    from gpulease.services.scheduling import LiveScheduler
    from gpulease.services.setup import make_executor, open_context
    from gpulease.settings import Settings

    settings = Settings()
    ctx = open_context(settings)
    executor = make_executor(settings)
    scheduler = LiveScheduler(ctx, executor)
    lock = None
    if args.leader:
        from gpulease.services.scheduler_loop import SchedulerLoop

        lock = SchedulerLoop(scheduler).lock  # sets scheduler.leadership, as serve does
    interval = settings.scheduler_interval_s
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(ctx.db.engine, "before_cursor_execute", count)
    warnings = WarningCounter()
    logging.getLogger("gpulease").addHandler(warnings)

    try:  # the loop's collector policy (collections between passes), where the side has it
        from gpulease.services.collection import collected_after as between_passes
    except ImportError:  # an older side: the collector runs whenever it runs
        between_passes = contextlib.nullcontext

    def one_pass(profile: cProfile.Profile | None = None) -> dict[str, float]:
        a0 = time.perf_counter()
        if lock is not None and not lock.acquire():  # the loop would wait, then ask again
            return {"at": time.time(), "not_leading": 1.0, "started": 0.0, "finished": 0.0}
        # CPU of the pass's own thread: a consistency check builds in a thread of its own
        s0, w0, c0 = statements[0], time.perf_counter(), time.thread_time()
        n0 = warnings.count
        with between_passes():
            reports = profile.runcall(scheduler.tick) if profile is not None else scheduler.tick()
            c1, w1 = time.thread_time(), time.perf_counter()
        return {
            "collect_ms": (time.perf_counter() - w1) * 1000,  # after the pass, not in it
            "at": time.time(),
            "lease_ms": (w0 - a0) * 1000,
            "wall_ms": (w1 - w0) * 1000,
            "cpu_ms": (c1 - c0) * 1000,
            "statements": statements[0] - s0,
            "started": sum(len(getattr(r, "started", ())) for r in reports),
            "finished": sum(len(getattr(r, "finished", ())) for r in reports),
            "rss_mib": rss_mib(),
            "load1": os.getloadavg()[0],  # the machine's, beside the figures
            "warnings": warnings.count - n0,
        }

    try:
        # the ramp: passes start the seeded jobs until about --running run
        ramp: list[dict[str, float]] = []
        ramp_end = time.time() + args.ramp_s
        while time.time() < ramp_end:
            ramp.append(one_pass())
            running = len(executor.active())
            log(
                f"ramp pass {len(ramp)}: {ramp[-1].get('wall_ms', 0):,.0f} ms, "
                f"{int(ramp[-1]['started'])} started, {running} running"
            )
            if running >= 0.9 * args.running or (len(ramp) > 2 and ramp[-1]["started"] == 0):
                break
            time.sleep(interval)
        start_at = time.time() + args.client_lead_s
        per_client = args.rate / args.clients
        outs = [tmp / f"client-{i}.json" for i in range(args.clients)]
        for i, out in enumerate(outs):
            clients.append(
                _spawn_client(
                    env,
                    tokens,
                    out,
                    start_at=start_at,
                    duration=args.minutes * 60,
                    client_rate=per_client,
                    seed=i,
                    mean_duration=mean_duration,
                )
            )
        while time.time() < start_at:  # passes go on while the clients start
            ramp.append(one_pass())
            time.sleep(max(0.0, min(interval, start_at - time.time())))
        running_at_start = len(executor.active())
        queued_at_start = _count_jobs(url).get("queued", 0)
        log(f"measuring: {running_at_start} running, {queued_at_start:,} queued")
        passes: list[dict[str, float]] = []
        end = start_at + args.minutes * 60
        middle = start_at + args.minutes * 30
        profile_text = ""
        while time.time() < end:
            if passes and not profile_text and args.profile and time.time() >= middle:
                profile = cProfile.Profile(time.thread_time)  # CPU: waits for a core left out
                profiled = one_pass(profile)
                if profiled.get("not_leading"):  # no pass ran: profile the next one
                    passes.append(profiled)
                else:
                    passes.append(profiled | {"profiled": 1.0})  # its starts count, not its time
                    profile_text = profile_report(profile, args.profile)
                    if os.environ.get("GPULEASE_BENCH_PSTATS"):  # for pstats' callers
                        profile.dump_stats(os.environ["GPULEASE_BENCH_PSTATS"])
                    log(f"profiled pass: {profiled['wall_ms']:,.0f} ms (not in the figures)")
            else:
                passes.append(one_pass())
                if len(passes) % 20 == 0 and "wall_ms" in passes[-1]:
                    last = passes[-1]
                    log(
                        f"pass {len(passes)}: {last['wall_ms']:,.0f} ms wall, "
                        f"{last['cpu_ms']:,.0f} ms CPU, {int(last['statements'])} statements, "
                        f"{len(executor.active())} running"
                    )
            time.sleep(interval)
        measured_s = time.time() - start_at
        _wait_all(clients, "client")
        clients.clear()
        counts = _count_jobs(url, start_at, end)  # rates over the arrivals' window
        submit = [json.loads(out.read_text()) for out in outs]
    finally:
        executor.close()
        if lock is not None:
            lock.release()
        ctx.db.dispose()
    return _summarise(
        args, ramp, passes, measured_s, submit, counts, running_at_start, queued_at_start
    ) | {"profile": profile_text}


def _summarise(
    args: argparse.Namespace,
    ramp: list[dict[str, float]],
    passes: list[dict[str, float]],
    measured_s: float,
    submit: list[dict[str, Any]],
    counts: dict[str, int],
    running_at_start: int,
    queued_at_start: int,
) -> dict[str, Any]:
    def col(rows: list[dict[str, float]], key: str) -> list[float]:
        return [row[key] for row in rows if key in row]

    timed = [row for row in passes if "wall_ms" in row and not row.get("profiled")]
    wall, cpu, stmts = col(timed, "wall_ms"), col(timed, "cpu_ms"), col(timed, "statements")
    latencies = [lat for s in submit for lat in s["latencies"]]
    submitted = sum(s["submitted"] for s in submit)
    rss = col(timed, "rss_mib") or [0.0]
    window_s = args.minutes * 60
    grown = counts.get("queued", 0) - queued_at_start
    return {
        "minutes": args.minutes,
        "leader": args.leader,
        "ramp": {
            "passes": len(ramp),
            "first_pass_ms": round(ramp[0].get("wall_ms", 0)) if ramp else None,
            "first_pass_statements": int(ramp[0].get("statements", 0)) if ramp else None,
            "max_pass_ms": round(max(col(ramp, "wall_ms"), default=0.0)),
        },
        "running_at_start": running_at_start,
        "queued_at_start": queued_at_start,
        "passes": len(timed),
        "passes_per_s": round(len(passes) / measured_s, 2),
        "pass_ms": {
            "p50": round(pct(wall, 50), 1),
            "p95": round(pct(wall, 95), 1),
            "p99": round(pct(wall, 99), 1),
            "max": round(max(wall, default=0.0), 1),
        },
        "cpu_ms": {"p50": round(pct(cpu, 50), 1), "p99": round(pct(cpu, 99), 1)},
        "collect_ms_p99": round(pct(col(timed, "collect_ms"), 99), 1),
        "lease_ms_p99": round(pct(col(timed, "lease_ms"), 99), 1),
        "statements": {
            "mean": round(sum(stmts) / max(1, len(stmts)), 1),
            "p99": int(pct(stmts, 99)),
            "max": int(max(stmts, default=0)),
        },
        "rss_mib": {
            "start": round(rss[0], 1),
            "middle": round(rss[len(rss) // 2], 1),
            "end": round(rss[-1], 1),
            "max": round(max(rss), 1),
        },
        # KiB of RSS per job the queue grew by (None: the queue did not grow)
        "rss_kib_per_queued": round((rss[-1] - rss[0]) * 1024 / grown, 2) if grown > 0 else None,
        "load_average": {
            "mean": round(sum(col(timed, "load1")) / max(1, len(timed)), 1),
            "max": round(max(col(timed, "load1"), default=0.0), 1),
        },
        "not_leading": int(sum(row.get("not_leading", 0) for row in passes)),
        "passes_with_warnings": sum(1 for row in passes if row.get("warnings")),
        "started_per_s": round(counts["started_in_window"] / window_s, 1),
        "finished_per_s": round(counts["ended_in_window"] / window_s, 1),
        "reported_started_per_s": round(sum(col(passes, "started")) / measured_s, 1),
        "submitted_per_s": round(submitted / window_s, 1),
        "submit_ms": {
            "p50": round(pct(latencies, 50) * 1000, 1),
            "p99": round(pct(latencies, 99) * 1000, 1),
        },
        "submit_errors": [e for s in submit for e in s["errors"]][:5],
        "jobs_at_end": counts,
        "queued_at_end": counts.get("queued", 0),
        "per_pass": passes if args.per_pass else [],
    }


# ------------------------------------------------------------------ the two sides
ENTRY_POINTS = (  # (file under src/gpulease, text it must hold): what the sides call
    ("services/scheduling.py", "class LiveScheduler"),
    ("services/scheduling.py", "def tick(self)"),
    ("services/scheduler_loop.py", "class SchedulerLoop"),
    ("services/setup.py", "def open_context(settings"),
    ("services/setup.py", "def make_executor(settings"),
    ("services/jobs.py", "class JobSubmission"),
    ("services/jobs.py", "def submit("),
    ("services/identity.py", "def authenticate(ctx"),
    ("cli/server.py", "def init_command("),
)


def _check_entry_points(label: str, src: Path) -> None:
    """Refuse early, naming what is missing, if a side lacks an entry point we drive."""
    missing = [
        f"{path}: {needle!r}"
        for path, needle in ENTRY_POINTS
        if not (src / "gpulease" / path).exists()
        or needle not in (src / "gpulease" / path).read_text()
    ]
    if missing:
        raise SystemExit(f"{label} ({src}) lacks entry points: " + "; ".join(missing))


SIDE_FLAGS = "minutes queued running rate finish_rate clients seeders ramp_s client_lead_s profile"


def _run_side(
    label: str, src: Path, args: argparse.Namespace, out: Path, minutes: float
) -> dict[str, Any]:
    _check_entry_points(label, src)
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, __file__, "--side", "--label", label, "--out", str(out)]
    for flag in SIDE_FLAGS.split():
        value = minutes if flag == "minutes" else getattr(args, flag)
        cmd += [f"--{flag.replace('_', '-')}", str(value)]
    cmd += [] if args.leader else ["--no-leader"]
    cmd += ["--per-pass"] if args.per_pass else []
    subprocess.run(cmd, env=env, check=True, cwd=src.parent)
    data: dict[str, Any] = json.loads(out.read_text())
    if Path(data["package"]).resolve() != (src / "gpulease").resolve():
        raise SystemExit(f"{label} imported gpulease from {data['package']}, not {src}")
    return data


ROWS = (  # (label, path in the side's JSON)
    ("minutes measured", "minutes"),
    ("pass p50 ms", "pass_ms.p50"),
    ("pass p95 ms", "pass_ms.p95"),
    ("pass p99 ms", "pass_ms.p99"),
    ("pass max ms", "pass_ms.max"),
    ("pass CPU p50 ms", "cpu_ms.p50"),
    ("pass CPU p99 ms", "cpu_ms.p99"),
    ("lease acquire p99 ms", "lease_ms_p99"),
    ("collection between passes p99 ms", "collect_ms_p99"),
    ("statements/pass mean", "statements.mean"),
    ("statements/pass max", "statements.max"),
    ("passes/s", "passes_per_s"),
    ("first ramp pass ms", "ramp.first_pass_ms"),
    ("first ramp pass statements", "ramp.first_pass_statements"),
    ("running at start", "running_at_start"),
    ("queued at start", "queued_at_start"),
    ("passes warning (lease lost)", "passes_with_warnings"),
    ("iterations not leading", "not_leading"),
    ("started/s", "started_per_s"),
    ("started/s in pass reports", "reported_started_per_s"),
    ("finished/s", "finished_per_s"),
    ("submitted/s", "submitted_per_s"),
    ("submit p50 ms", "submit_ms.p50"),
    ("submit p99 ms", "submit_ms.p99"),
    ("RSS start MiB", "rss_mib.start"),
    ("RSS middle MiB", "rss_mib.middle"),
    ("RSS end MiB", "rss_mib.end"),
    ("RSS growth per queued job KiB", "rss_kib_per_queued"),
    ("queued at end", "queued_at_end"),
    ("load average (1 min) mean", "load_average.mean"),
    ("load average (1 min) max", "load_average.max"),
    ("running at end", "jobs_at_end.running"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline", help="git ref measured as 'before' (a temporary worktree)")
    parser.add_argument("--after", help="git ref measured as 'after' (default: this tree)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--baseline-minutes",
        type=float,
        help="minutes of the --baseline side (default: --minutes): a slow before side can "
        "run shorter than the after side",
    )
    parser.add_argument("--queued", type=int, default=20_000)
    parser.add_argument("--running", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second")
    parser.add_argument("--finish-rate", type=float, default=50.0, help="completions per second")
    parser.add_argument(
        "--constant-queue",
        action="store_true",
        help="completions per second = arrivals per second (the queue stays constant)",
    )
    parser.add_argument("--clients", type=int, default=2, help="submitting processes")
    parser.add_argument("--seeders", type=int, default=2, help="seeding processes")
    parser.add_argument("--ramp-s", type=float, default=300.0, help="most time for the ramp")
    parser.add_argument("--client-lead-s", type=float, default=8.0, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, default=15, help="cProfile rows (0: none)")
    parser.add_argument("--no-leader", dest="leader", action="store_false")
    parser.add_argument("--per-pass", action="store_true", help="keep every pass in the JSON")
    parser.add_argument("--json", type=Path)
    # internal: one side, or one client process
    parser.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    for name, kind, default in (
        ("--label", str, "after"),
        ("--out", str, None),
        ("--tokens", str, None),
        ("--count", int, 0),
        ("--seed", int, 0),
        ("--start-at", float, 0.0),
        ("--duration", float, 0.0),
        ("--client-rate", float, 1.0),
        ("--mean-duration", float, 20.0),
    ):
        parser.add_argument(name, type=kind, default=default, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return _client(args)
    if args.side:
        return _side(args)
    if args.constant_queue:
        args.finish_rate = args.rate
    minutes = [args.minutes, args.baseline_minutes or args.minutes]
    if (
        args.running <= 0
        or args.finish_rate <= 0
        or not all(math.isfinite(m) and m > 0 for m in minutes)
    ):
        parser.error("--running, --finish-rate, --minutes and --baseline-minutes must be positive")

    sides: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gpulease-livebench-") as tmp_text:
        tmp = Path(tmp_text)
        with contextlib.ExitStack() as trees:
            plan: list[tuple[str, Path, float]] = []
            if args.baseline:
                before = trees.enter_context(git_tree(args.baseline))
                plan.append(("before", before, args.baseline_minutes or args.minutes))
            after = trees.enter_context(git_tree(args.after)) if args.after else ROOT / "src"
            plan.append(("after", after, args.minutes))
            for label, src, minutes in plan:
                sides[label] = _run_side(label, src, args, tmp / f"{label}.json", minutes)
    refs = {"before": args.baseline, "after": args.after or "this tree"}
    span = f"{args.minutes:g} min"
    if args.baseline and args.baseline_minutes and args.baseline_minutes != args.minutes:
        span = f"{args.baseline_minutes:g} min before, {args.minutes:g} min after"
    print(
        f"\nLive passes on PostgreSQL, demo site (2,304 GPUs), {args.queued:,} queued + "
        f"{args.running:,} running target, {args.rate:g} arrivals/s, ~{args.finish_rate:g} "
        f"completions/s, {span}, leader election {'on' if args.leader else 'off'}"
    )
    print("  " + ", ".join(f"{k} = {refs[k]}" for k in sides))
    print(side_by_side(sides, ROWS))
    for label, data in sides.items():
        if data.get("submit_errors"):
            print(f"{label}: submission errors, e.g. {data['submit_errors'][0]}")
        if data.get("profile"):
            print(f"\n{label}: one pass in the middle under cProfile")
            print(data["profile"])
    if args.json:
        args.json.write_text(
            json.dumps(
                {"refs": refs, "args": vars(args) | {"json": str(args.json)}, "sides": sides},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
