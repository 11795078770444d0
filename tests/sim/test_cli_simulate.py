"""``gpulease simulate``, ``trace generate`` and ``cluster`` as a user runs them.

In-process runs (Typer's runner) check what the commands compute; subprocess runs of the
installed entry point check what a user sees when the input is wrong: exit code 2, one
line naming the problem, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpulease.cli.app import app
from gpulease.data import shipped_trace
from gpulease.sim.traces import load_native

PHILLY_TRACE = shipped_trace()
REQUIRED_KEYS = {
    "jobs",
    "avg_jct_s",
    "p50_jct_s",
    "p99_jct_s",
    "avg_wait_s",
    "makespan_s",
    "utilization",
    "preemptions",
    "policy",
    "cluster_gpus",
}
TIRESIAS_CSV = """job_id,num_gpu,submit_time,iterations,model_name,duration,interval
1,8,0,1000,resnet50,3600,100
2,16,30,1000,vgg16,7200,100
3,1,60,1000,alexnet,120,100
4,32,90,1000,resnet50,1800,100
5,4,120,1000,inception3,600,100
"""

runner = CliRunner()


def run_ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def figures(path: Path) -> dict[str, object]:
    loaded = json.loads(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_philly_subset_with_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "run.json", tmp_path / "run.png"
    shown = run_ok(
        "simulate",
        "--trace",
        str(PHILLY_TRACE),
        "--trace-format",
        "philly",
        "--tenant",
        "ee9e8c",
        "--min-duration",
        "60",
        "--first",
        "150",
        "--cluster",
        "tiresias",
        "--policy",
        "las",
        "--json",
        str(out),
        "--plot",
        str(png),
    )
    f = figures(out)
    assert set(f) >= REQUIRED_KEYS
    assert f["jobs"] == 150
    assert f["cluster_gpus"] == 160
    assert f["policy"] == "las"
    assert 0.0 < float(f["utilization"]) <= 1.0  # type: ignore[arg-type]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot written to" in shown
    assert "per tenant" in shown
    assert "ee9e8c" in shown


def test_tiresias_csv_with_load_compression(tmp_path: Path) -> None:
    trace = tmp_path / "jobs.csv"
    trace.write_text(TIRESIAS_CSV)
    out = tmp_path / "run.json"
    run_ok(
        "simulate",
        "--trace",
        str(trace),
        "--trace-format",
        "tiresias",
        "--cluster",
        "4x5x8",
        "--policy",
        "fifo",
        "--quiet",
        "--json",
        str(out),
    )
    f = figures(out)
    assert f["jobs"] == 5
    assert f["completed"] == 5
    assert f["policy"] == "fifo"
    # 61 GPUs at most at once on 160: nothing waits, so every JCT is the job's duration.
    assert f["avg_wait_s"] == 0.0
    assert f["avg_jct_s"] == pytest.approx((3600 + 7200 + 120 + 1800 + 600) / 5)


def test_generated_native_trace_replays_with_its_leases_and_is_deterministic(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "mix.jsonl"
    shown = run_ok("trace", "generate", "--out", str(trace), "--cluster", "4x18x4", "--jobs", "80")
    assert "wrote 80 jobs and 4 leases" in shown
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outs:
        run_ok(
            "simulate",
            "--trace",
            str(trace),
            "--cluster",
            "4x18x4",
            "--quiet",
            "--json",
            str(out),
        )
    first, second = (figures(out) for out in outs)
    assert first == second
    assert first["jobs"] == 80
    assert first["cluster_gpus"] == 288
    tenants = first["per_tenant"]
    assert isinstance(tenants, dict)
    assert set(tenants) >= {"tenant-a", "tenant-b", "tenant-c", "tenant-d"}


def test_synthetic_gang_limits(tmp_path: Path) -> None:
    sizes = {}
    for limit in ("lease", "site"):
        trace = tmp_path / f"{limit}.jsonl"
        run_ok(
            "trace",
            "generate",
            "--out",
            str(trace),
            "--jobs",
            "1500",
            "--gang-limit",
            limit,
        )
        sizes[limit] = max(job.spec.gpus for job in load_native(trace).jobs)
    assert sizes == {"lease": 512, "site": 2048}
    out = tmp_path / "site.json"
    run_ok(
        "simulate",
        "--synthetic",
        "60",
        "--cluster",
        "4x18x4",
        "--load",
        "0.95",
        "--gang-limit",
        "site",
        "--quiet",
        "--json",
        str(out),
    )
    f = figures(out)
    assert f["jobs"] == 60
    assert 0.0 < float(f["utilization_bound_while_arriving"]) <= 1.0  # type: ignore[arg-type]


def test_keep_blocks_option_changes_placement_not_the_workload(tmp_path: Path) -> None:
    outs = {}
    for keep in ("0", "64"):
        out = tmp_path / f"keep{keep}.json"
        run_ok(
            "simulate",
            "--synthetic",
            "400",
            "--cluster",
            "6x18x4",
            "--load",
            "1.1",
            "--keep-blocks",
            keep,
            "--quiet",
            "--json",
            str(out),
        )
        outs[keep] = figures(out)
    assert outs["0"]["jobs"] == outs["64"]["jobs"] == 400
    spans = {}
    for keep, f in outs.items():
        placement = f["placement"]
        assert isinstance(placement, dict)
        spans[keep] = placement["multi_rack_starts"]
    assert spans["64"] > spans["0"]  # medium jobs spread over spare trays


def test_cluster_describes_the_reference_site() -> None:
    shown = run_ok("cluster", "reference")
    assert "2,304" in shown or "2304" in shown


def gpulease(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpulease.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--synthetic", "10", "--cluster", "32x18"], "cluster"),
        (["simulate", "--synthetic", "10", "--cluster", "4x4x4", "--policy", "sjf"], "sjf"),
        (["simulate", "--cluster", "4x4x4"], "exactly one of --trace PATH or --synthetic"),
        (["simulate", "--synthetic", "1", "--cluster", "4x4x4"], "jobs must be >= 2"),
        (["simulate", "--trace", "/nonexistent/t.csv", "--cluster", "4x4x4"], "t.csv"),
        (
            ["simulate", "--synthetic", "10", "--cluster", "4x4x4", "--gang-limit", "rack"],
            "rack",
        ),
    ],
)
def test_bad_input_is_one_clear_line_not_a_traceback(args: list[str], message: str) -> None:
    done = gpulease(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
