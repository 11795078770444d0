"""Trace loaders: literal files for every format, their errors, and the real Philly trace."""

from __future__ import annotations

import gzip
import lzma
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from gpulease.data import shipped_trace
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import (
    JobSpec,
    LeaseGuarantee,
    PriorityClass,
    TopologyMode,
    TopologyRequest,
)
from gpulease.domain.states import NodeState
from gpulease.sim.traces import (
    LoadReport,
    compress_to_load,
    dump_native,
    filter_workload,
    load_native,
    load_philly,
    load_tiresias,
    load_trace,
    offered_load,
    read_trace,
)
from gpulease.sim.workload import NodeEvent, TraceJob, Workload

PHILLY_TRACE = shipped_trace()  # xz-compressed; the loader reads it as it is

PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
PHILLY = (
    PHILLY_HEADER
    + "2017-10-03 10:00:00,1200.0,8,9600.0,vc1\n"  # line 2 -> philly-1
    + "2017-10-03 09:00:00,30.0,1,30.0,vc2\n"  # line 3 -> philly-2
    + "2017-10-03 09:00:00,600.0,2,1200.0,vc1\n"  # line 4 -> philly-3 (ties philly-2)
    + "2017-10-03 11:00:00,0.0,4,0.0,vc1\n"  # skipped: no run time
    + "2017-10-03 12:00:00,50.0,0,0.0,vc2\n"  # skipped: no GPU
    + "\n"
)

TIRESIAS = """job_id,num_gpu,submit_time,iterations,model_name,duration,interval
1,8,100,1000,vgg19,3600,10
2,1,50,500,resnet50,600.5,10
3,2,70,10,alexnet,0,10
"""

NATIVE = """# a hand-written native trace
{"kind": "lease", "lease_id": "L1", "tenant": "acme", "gpus": 64, "start": 0, "end": 86400}

{"kind": "node", "time": 500.5, "node": 3, "state": "down"}
{"kind": "job", "id": "j1", "tenant": "acme", "gpus": 64, "submit_time": 10, "duration": 3600, "gpus_per_node": 4, "priority": "high", "walltime": 7200, "preemptible": false, "requeueable": false, "checkpoint_interval": 1800, "topology": "required", "segment": 64, "purpose": "pretraining"}
{"kind": "job", "id": "j2", "tenant": "spot", "gpus": 2, "submit_time": 5.5, "duration": 60, "walltime": null}
"""  # noqa: E501


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def ids_and_times(workload: Workload) -> list[tuple[str, float]]:
    return [(j.spec.id, j.spec.submit_time) for j in workload.jobs]


# --- philly ---------------------------------------------------------------------------------


def test_philly_loads_sorts_rebases_and_counts_skipped_rows(tmp_path: Path) -> None:
    workload, report = read_trace(write(tmp_path, "philly.csv", PHILLY), "philly")
    assert report == LoadReport(records=5, skipped=2, kept=3)
    assert workload.name == "philly"
    assert ids_and_times(workload) == [("philly-2", 0.0), ("philly-3", 0.0), ("philly-1", 3600.0)]
    first = workload.jobs[0]
    assert first == TraceJob(JobSpec("philly-2", "vc2", 1, 0.0), 30.0)
    assert first.spec.walltime is None
    assert first.spec.gpus_per_node is None


def test_philly_filters_tenant_min_duration_first(tmp_path: Path) -> None:
    path = write(tmp_path, "philly.csv", PHILLY)
    vc1 = load_philly(path, tenant="vc1")
    assert ids_and_times(vc1) == [("philly-3", 0.0), ("philly-1", 3600.0)]
    assert {j.spec.tenant for j in vc1.jobs} == {"vc1"}
    # min_duration drops philly-2 (30 s); philly-3 (600 s) becomes the origin
    long = load_philly(path, min_duration=60)
    assert ids_and_times(long) == [("philly-3", 0.0), ("philly-1", 3600.0)]
    assert ids_and_times(load_philly(path, first=1)) == [("philly-2", 0.0)]
    late = load_philly(path, tenant="vc1", min_duration=601, first=5)
    assert ids_and_times(late) == [("philly-1", 0.0)]
    assert late.name == "philly[tenant=vc1,min_duration=601,first=5]"


def test_unknown_tenant_names_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "philly.csv", PHILLY)
    with pytest.raises(InvalidRequest, match="no job of tenant 'vc9'; tenants are vc1, vc2"):
        load_philly(path, tenant="vc9")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2017-10-03 10:00:00,120.0,x,960.0,vc1", "line 3: num_gpus 'x' is not an integer"),
        ("2017-10-03 10:00:00,1.5e,8,960.0,vc1", "line 3: duration '1.5e' is not a number"),
        ("2017-10-03 10:00:00,nan,8,960.0,vc1", "line 3: duration 'nan' is not a finite"),
        ("2017-10-03T10:00:00,1,8,8,vc1", "line 3: timestamp '2017-10-03T10:00:00' is"),
        ("2017-13-03 10:00:00,1,8,8,vc1", "line 3: timestamp '2017-13-03 10:00:00' is"),
        ("2017-10-03 10:00:00,1,8,8", "line 3: expected 5 fields, got 4"),
        ("2017-10-03 10:00:00,1,8,8,", "line 3: cluster is empty"),
    ],
)  # fmt: skip
def test_philly_malformed_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    text = PHILLY_HEADER + "2017-10-03 09:00:00,30.0,1,30.0,vc2\n" + row + "\n"
    with pytest.raises(InvalidRequest, match=re.escape(f"philly.csv {message}")) as caught:
        load_philly(write(tmp_path, "philly.csv", text))
    assert caught.value.details["line"] == 3


def test_philly_missing_column_and_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "philly.csv", "timestamp,duration,gpu_time,cluster\n")
    with pytest.raises(
        InvalidRequest, match=re.escape("philly.csv line 1: missing column(s) num_gpus")
    ):
        load_philly(path)
    with pytest.raises(InvalidRequest, match=r"^empty\.csv: empty file"):
        load_philly(write(tmp_path, "empty.csv", ""))


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"^nope\.csv: no such file"):
        load_trace(tmp_path / "nope.csv", "philly")
    with pytest.raises(InvalidRequest, match="unknown trace format 'slurm'; use one of philly, "):
        load_trace(write(tmp_path, "philly.csv", PHILLY), "slurm")


@pytest.mark.parametrize(("suffix", "compress"), [(".xz", lzma.compress), (".gz", gzip.compress)])
def test_compressed_traces_load_like_plain_ones(
    tmp_path: Path, suffix: str, compress: Callable[[bytes], bytes]
) -> None:
    plain = read_trace(write(tmp_path, "philly.csv", PHILLY), "philly")
    packed = tmp_path / f"philly.csv{suffix}"
    packed.write_bytes(compress(PHILLY.encode()))
    assert read_trace(packed, "philly") == plain  # same jobs, same report, name "philly"
    native = tmp_path / f"mix.jsonl{suffix}"
    native.write_bytes(compress(NATIVE.encode()))
    assert load_native(native) == load_native(write(tmp_path, "mix.jsonl", NATIVE))


def test_a_damaged_compressed_trace_is_one_clear_error(tmp_path: Path) -> None:
    cut = tmp_path / "philly.csv.xz"
    cut.write_bytes(lzma.compress(PHILLY.encode())[:-30])
    with pytest.raises(InvalidRequest, match=r"^philly\.csv\.xz: cannot read \(not a valid \.xz"):
        load_trace(cut, "philly")


# --- tiresias -------------------------------------------------------------------------------


def test_tiresias_loads_with_model_as_purpose(tmp_path: Path) -> None:
    path = write(tmp_path, "60_job.csv", TIRESIAS)
    workload, report = read_trace(path, "tiresias")
    assert report == LoadReport(records=3, skipped=1, kept=2)
    assert workload == load_tiresias(path)
    assert workload.jobs == [
        TraceJob(JobSpec("tiresias-2", "default", 1, 0.0, purpose="resnet50"), 600.5),
        TraceJob(JobSpec("tiresias-1", "default", 8, 50.0, purpose="vgg19"), 3600.0),
    ]


def test_tiresias_errors(tmp_path: Path) -> None:
    bad = TIRESIAS.replace("2,1,50", "2,1.5,50")
    with pytest.raises(InvalidRequest, match=r"^job\.csv line 3: num_gpu '1\.5' is not an integer"):
        load_tiresias(write(tmp_path, "job.csv", bad))
    duplicate = TIRESIAS + "1,4,900,1,vgg16,60,1\n"
    with pytest.raises(InvalidRequest, match=r"line 5: duplicate job id 'tiresias-1' \(first on"):
        load_tiresias(write(tmp_path, "job.csv", duplicate))


# --- native ---------------------------------------------------------------------------------


def test_native_parses_every_field(tmp_path: Path) -> None:
    workload = load_native(write(tmp_path, "hand.jsonl", NATIVE))
    assert workload.name == "hand"
    assert workload.leases == [LeaseGuarantee("L1", "acme", 64, 0.0, 86400.0)]
    assert workload.node_events == [NodeEvent(500.5, 3, NodeState.DOWN)]
    big = JobSpec(
        "j1",
        "acme",
        64,
        10.0,
        gpus_per_node=4,
        priority=PriorityClass.HIGH,
        walltime=7200.0,
        preemptible=False,
        requeueable=False,
        checkpoint_interval=1800.0,
        topology=TopologyRequest(TopologyMode.REQUIRED, 64),
        purpose="pretraining",
    )
    assert workload.jobs == [TraceJob(big, 3600.0), TraceJob(JobSpec("j2", "spot", 2, 5.5), 60.0)]


def test_native_round_trip_is_exact(tmp_path: Path) -> None:
    original = load_native(write(tmp_path, "hand.jsonl", NATIVE))
    original.leases.append(LeaseGuarantee("L2", "ünïcode", 8, 0.1, math.inf))
    odd = 'line\u2028separator "quoted"\r\n'
    original.jobs.append(TraceJob(JobSpec("j3", "t", 1, 1 / 3, topology=TopologyRequest(
        TopologyMode.NONE), purpose=odd), math.pi))  # fmt: skip
    path = tmp_path / f"{original.name}.jsonl"
    dump_native(original, path)
    assert load_native(path) == original
    dump_native(load_native(path), tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_text() == path.read_text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"kind": "job", "id": "x"', "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"kind": "rack"}', "kind 'rack' is not one of job, lease, node"),
        ('{"kind": "node", "time": 1, "node": 0, "state": "up", "x": 2}', "unknown field(s) x"),
        ('{"kind": "node", "time": 1, "state": "up"}', "missing field 'node'"),
        ('{"kind": "node", "time": 1, "node": -1, "state": "up"}', "node must be an index >= 0"),
        ('{"kind": "node", "time": 1, "node": 0, "state": "gone"}', "state 'gone' is not one"),
        ('{"kind": "job", "id": "a", "tenant": "t", "gpus": "4", "submit_time": 0, "duration": 1}',
         "gpus '4' is not an integer"),
        ('{"kind": "job", "id": "a", "tenant": "t", "gpus": true, "submit_time": 0, "duration": 1}',
         "gpus True is not an integer"),
        ('{"kind": "job", "id": "a", "tenant": "t", "gpus": 6, "gpus_per_node": 4, '
         '"submit_time": 0, "duration": 1}', "job a: gpus (6) must be a multiple of gpus_per_node"),
        ('{"kind": "job", "id": "a", "tenant": "t", "gpus": 1, "submit_time": 0, "duration": 0}',
         "job a: duration must be > 0, got 0.0"),
        ('{"kind": "job", "id": "a", "tenant": "t", "gpus": 1, "submit_time": NaN, "duration": 1}',
         "submit_time nan is not a finite number"),
        ('{"kind": "job", "id": "a", "tenant": "t", "gpus": 1, "submit_time": 0, "duration": 1, '
         '"priority": "urgent"}', "priority 'urgent' is not one of low, normal, high, critical"),
        ('{"kind": "job", "id": "j1", "tenant": "t", "gpus": 1, "submit_time": 0, "duration": 1}',
         "duplicate job id 'j1' (first on line 5)"),
        ('{"kind": "lease", "lease_id": "L1", "tenant": "t", "gpus": 1, "start": 0, "end": 5}',
         "duplicate lease id 'L1' (line 2)"),
        ('{"kind": "lease", "lease_id": "L9", "tenant": "t", "gpus": 1, "start": 5, "end": 5}',
         "lease L9: end must be after start"),
    ],
)  # fmt: skip
def test_native_malformed_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, "bad.jsonl", NATIVE + line + "\n")  # NATIVE has 6 lines
    with pytest.raises(InvalidRequest, match=re.escape(f"bad.jsonl line 7: {message}")):
        load_native(path)


def test_filters_apply_to_native_and_shift_leases_and_events(tmp_path: Path) -> None:
    path = write(tmp_path, "hand.jsonl", NATIVE)
    workload = load_trace(path, "native", tenant="acme")
    assert ids_and_times(workload) == [("j1", 0.0)]
    assert workload.leases == [LeaseGuarantee("L1", "acme", 64, -10.0, 86390.0)]
    assert workload.node_events == [NodeEvent(490.5, 3, NodeState.DOWN)]
    everything = load_trace(path, "native")
    assert ids_and_times(everything) == [("j2", 0.0), ("j1", 4.5)]
    assert filter_workload(everything) == everything
    with pytest.raises(InvalidRequest, match="first must be >= 0"):
        filter_workload(everything, first=-1)


# --- load -----------------------------------------------------------------------------------


def uniform_workload() -> Workload:
    jobs = [TraceJob(JobSpec(f"j{i}", "t", 1 + i % 4, 100.0 + 7.0 * i), 50.0 + i) for i in range(9)]
    lease = LeaseGuarantee("L", "t", 4, 100.0, 156.0)
    return Workload("u", jobs, [lease], [NodeEvent(128.0, 0, NodeState.DOWN)])


def test_offered_load_is_gpu_seconds_over_capacity_times_span() -> None:
    workload = uniform_workload()
    assert offered_load(workload, 8) == pytest.approx(workload.gpu_seconds / (8 * 56.0))


@pytest.mark.parametrize("load", [0.3, 0.9, 1.7])
def test_compress_to_load_hits_the_load_and_scales_everything(load: float) -> None:
    workload = uniform_workload()
    compressed = compress_to_load(workload, 8, load)
    assert abs(offered_load(compressed, 8) - load) <= 1e-9
    factor = offered_load(workload, 8) / load
    assert compressed.jobs[0].spec.submit_time == 100.0
    assert compressed.leases[0].end == pytest.approx(100.0 + 56.0 * factor)
    assert compressed.node_events[0].time == pytest.approx(100.0 + 28.0 * factor)
    assert [j.duration for j in compressed.jobs] == [j.duration for j in workload.jobs]


def test_compress_to_load_refuses_bad_load_and_zero_span() -> None:
    with pytest.raises(InvalidRequest, match="load must be a finite number > 0"):
        compress_to_load(uniform_workload(), 8, 0.0)
    single = Workload("one", [TraceJob(JobSpec("a", "t", 1, 5.0), 10.0)])
    with pytest.raises(InvalidRequest, match="arrival span is 0"):
        compress_to_load(single, 8, 0.5)
    with pytest.raises(InvalidRequest, match="cluster_gpus must be >= 1"):
        offered_load(uniform_workload(), 0)


# --- the real Philly trace ------------------------------------------------------------------


def test_real_philly_trace_loads_every_job() -> None:
    workload, report = read_trace(PHILLY_TRACE, "philly")
    assert report == LoadReport(records=82_247, skipped=0, kept=82_247)
    assert workload.name == "philly"  # the stem without .csv.xz
    assert len(workload.jobs) == 82_247
    assert workload.jobs[0].spec.submit_time == 0.0
    times = [j.spec.submit_time for j in workload.jobs]
    assert times == sorted(times)
    assert len({j.spec.id for j in workload.jobs}) == 82_247


def test_real_philly_tenant_slice_and_compression() -> None:
    workload = load_philly(PHILLY_TRACE, tenant="ee9e8c", min_duration=60, first=1000)
    assert len(workload.jobs) == 1000
    assert workload.jobs[0].spec.submit_time == 0.0
    assert all(j.spec.tenant == "ee9e8c" and j.duration >= 60 for j in workload.jobs)
    sizes = Counter(j.spec.gpus for j in workload.jobs)
    assert sizes == {1: 398, 8: 295, 4: 211, 16: 48, 2: 47, 32: 1}
    compressed = compress_to_load(workload, 160, 0.8)
    assert abs(offered_load(compressed, 160) - 0.8) <= 1e-9
