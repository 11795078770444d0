"""The Tiresias reference mode (``gpulease.sim.tiresias``) against figures worked by hand and
by Tiresias' own simulator, and ``las-gang`` against the reference on a committed input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpulease.cli.app import app
from gpulease.data import shipped_trace
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import JobSpec
from gpulease.inventory.topology import parse_cluster_spec
from gpulease.sim.runner import simulate
from gpulease.sim.tiresias import run, run_srtf
from gpulease.sim.traces import load_trace
from gpulease.sim.workload import TraceJob, Workload


def _workload(*jobs: tuple[str, int, float, float]) -> Workload:
    return Workload(
        "hand",
        [TraceJob(JobSpec(id=i, tenant="t", gpus=g, submit_time=s), d) for i, g, s, d in jobs],
    )


# Two GPUs. A: 2 GPUs from 0 s for 4,000 s; B: 1 GPU from 1,000 s for 100 s.
HAND = _workload(("A", 2, 0.0, 4000.0), ("B", 1, 1000.0, 100.0))


def test_dlas_gpu_on_a_worked_example_matches_tiresias() -> None:
    """Worked by hand, and Tiresias' run_sim.py --schedule=dlas-gpu --scheme=count gives the
    same JCTs (A 4,100 s, B 1,225 s). At 1,000 s B waits (A holds both GPUs, both in Q0);
    Tiresias' next level check for A is at 1,000 + (3,250 - 1,000) // 2 = 2,125 s (it
    subtracts run seconds from a GPU-second limit), though A passed 3,250 GPU-s at 1,625 s.
    At 2,125 s A (4,250 GPU-s) drops to Q1: B (Q0) starts, A is preempted; B ends at 2,225 s
    and A resumes with 1,875 s left, ending at 4,100 s."""
    result = run(HAND, 2)
    jct = {name: o.end - o.submit for name, o in result.outcomes.items() if o.end is not None}
    assert jct == {"A": 4100.0, "B": 1225.0}
    assert result.outcomes["A"].preemptions == 1
    assert result.outcomes["B"].start == 2125.0


def test_srtf_oracle_on_a_worked_example_matches_tiresias() -> None:
    """Tiresias --schedule=shortest-gpu: at 1,000 s B (100 GPU-s left) goes before A (6,000):
    A is preempted, B ends at 1,100 s, A at 4,100 s."""
    result = run_srtf(HAND, 2)
    jct = {name: o.end - o.submit for name, o in result.outcomes.items() if o.end is not None}
    assert jct == {"A": 4100.0, "B": 100.0}


@pytest.mark.slow
def test_reference_reproduces_tiresias_own_figures_on_ee9e8c() -> None:
    """Tiresias' own simulator on the first 1,000 jobs >= 60 s of Philly VC ee9e8c, 160 GPUs
    (benchmarks/bench_tiresias.py): dlas-gpu 179,255.634 s, shortest-gpu 144,468.918 s."""
    workload = load_trace(shipped_trace(), "philly", tenant="ee9e8c", min_duration=60, first=1000)
    for runner, figure in ((run, 179_255.634), (run_srtf, 144_468.918)):
        outcomes = runner(workload, 160).outcomes.values()
        jcts = [o.end - o.submit for o in outcomes if o.end is not None]
        assert len(jcts) == 1000
        assert sum(jcts) / len(jcts) == pytest.approx(figure, abs=1e-3)


def test_reference_runs_through_simulate_and_refuses_a_cluster_too_small() -> None:
    figures = simulate(HAND, parse_cluster_spec("1x1x2"), policy="tiresias-dlas-gpu").figures
    assert figures["avg_jct_s"] == 2662.5
    assert figures["policy"] == "tiresias-dlas-gpu"
    assert figures["preemptions"] == 1
    with pytest.raises(InvalidRequest) as refused:
        simulate(HAND, parse_cluster_spec("1x1x1"), policy="tiresias-dlas-gpu")
    assert refused.value.details == {"field": "cluster"}
    assert "needs 2 GPUs" in refused.value.message


def test_the_cli_runs_the_reference(tmp_path: Path) -> None:
    trace = tmp_path / "hand.csv"
    trace.write_text(
        "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n"
        "0,2,0,1,vgg19,4000,1\n1,1,1000,1,vgg19,100,1\n"
    )
    out = tmp_path / "out.json"
    args = ["simulate", "--trace", str(trace), "--trace-format", "tiresias", "--cluster", "1x1x2"]
    result = CliRunner().invoke(
        app, [*args, "--policy", "tiresias-dlas-gpu", "--json", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert '"avg_jct_s": 2662.5' in out.read_text()
    refused = CliRunner().invoke(app, [*args, "--policy", "tiresias-nope", "--quiet"])
    assert isinstance(refused.exception, InvalidRequest)
    assert "unknown policy 'tiresias-nope'" in refused.exception.message


@pytest.mark.slow
def test_las_gang_is_no_worse_than_the_reference_on_a_committed_input() -> None:
    """First 1,000 jobs >= 60 s of Philly VC b436b2 on 96 GPUs (a quarter of its peak
    demand), grace 0: the input on which the former las-gang lost most to dlas-gpu (7.6 %)."""
    workload = load_trace(shipped_trace(), "philly", tenant="b436b2", min_duration=60, first=1000)
    spec = parse_cluster_spec("1x12x8")
    ours = simulate(workload, spec, policy="las-gang", grace_s=0.0).figures["avg_jct_s"]
    reference = simulate(workload, spec, policy="tiresias-dlas-gpu").figures["avg_jct_s"]
    assert reference == pytest.approx(76_588, abs=1)
    assert ours <= reference
