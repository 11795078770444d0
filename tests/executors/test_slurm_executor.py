"""The Slurm executor on a real Slurm 22.05 cluster (four ``slurmd`` on this host, fake GPUs):
jobs that write files on the nodes gpulease chose, the node list and GPU counts Slurm
reports, exit codes, cancel, preemption (SIGTERM, then stop), adoption by a fresh executor
(a new leader), a job cancelled behind gpulease's back, runs that cannot start. The first
tests need no Slurm: the command line and the parsing of Slurm's answers."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpulease.domain.states import NodeState
from gpulease.executors.slurm import CANNOT_START, SlurmExecutor, SlurmSite
from gpulease.executors.slurm_commands import ACTIVE_STATES, exit_code, node_state, parse_squeue
from gpulease.services.setup import make_executor
from gpulease.settings import Settings
from support.slurm_cluster import SITE_ID, SLURM_NODES, LocalSlurmCluster
from support.slurm_jobs import (
    completion_of,
    completions_of,
    gpus_per_node,
    launch_of,
    site_of,
    slurm_state,
    wait_for,
)


# --------------------------------------------------------------- no Slurm needed
def test_node_states_map_from_sinfo() -> None:
    assert [node_state(s) for s in ("idle", "mix", "alloc", "plnd", "idle~")] == [NodeState.UP] * 5
    draining = ("drain", "drng", "idle*", "alloc*", "boot", "unk", "maint", "failg")
    assert {node_state(s) for s in draining} == {NodeState.DRAINING}
    assert {node_state(s) for s in ("down", "down*", "fail", "inval")} == {NodeState.DOWN}


def test_exit_codes_map_from_slurm_states() -> None:
    assert exit_code("COMPLETED", 0) == 0
    assert exit_code("FAILED", 3 << 8) == 3
    assert exit_code("FAILED", 9) == 137  # killed by SIGKILL
    assert exit_code("FAILED", 0) == 1
    assert exit_code("CANCELLED", 143 << 8) == 143  # the shell ended by scancel's SIGTERM
    assert exit_code("CANCELLED", 15) == 143
    assert exit_code("CANCELLED", None) == 143
    assert exit_code("TIMEOUT", 15) == 124
    assert exit_code("OUT_OF_MEMORY", 9) == 137


def test_unequal_gpus_per_node_make_a_heterogeneous_job(work: Path) -> None:
    site = SlurmSite(SITE_ID, nodes={"jkt1-r00-n01": "gpu-b"}, node_name="x-{local}")
    launch = launch_of(
        work,
        "true",
        [("jkt1-r00-n00", (0, 1, 2, 3)), ("jkt1-r00-n01", (2,)), ("jkt1-r00-n02", (1,))],
    )
    argv = SlurmExecutor([site]).sbatch_args(site, launch)
    assert argv.count(":") == 1
    first, second = " ".join(argv).split(" : ")
    assert "--nodes=1 --nodelist=x-r00-n00 --gres=gpu:4" in first
    assert "--nodes=2 --nodelist=gpu-b,x-r00-n02 --gres=gpu:1" in second
    assert "--job-name=gpulease-job-1.1" in first
    assert "--job-name=gpulease-job-1.1" in second
    assert f"--output={launch.log_path}" in argv
    assert "--no-requeue" in argv


def test_typed_slots_ask_for_exactly_gpuleases_gpus(work: Path) -> None:
    site = SlurmSite(SITE_ID, slot_type="s{slot}")
    nodes = [("jkt1-r00-n00", (3, 1)), ("jkt1-r00-n01", (1, 3)), ("jkt1-r00-n02", (0, 2))]
    argv = " ".join(SlurmExecutor([site]).sbatch_args(site, launch_of(work, "true", nodes)))
    first, second = argv.split(" : ")
    assert "--nodelist=jkt1-r00-n00,jkt1-r00-n01 --gres=gpu:s1:1,gpu:s3:1" in first
    assert "--nodelist=jkt1-r00-n02 --gres=gpu:s0:1,gpu:s2:1" in second


def test_squeue_rows_of_a_heterogeneous_job_merge() -> None:
    out = (
        "7|7|FAILED|768|/l/j.log|n1|gpulease-j.2\n"
        "8|7|FAILED|0|/l/j.log|n[2-3]|gpulease-j.2\n"
        "9|N/A|PENDING|0|/l/x.log||x|y\n"
    )
    jobs = parse_squeue(out)
    assert (jobs[7].nodes, jobs[7].state, jobs[7].status) == (("n1", "n[2-3]"), "FAILED", 768)
    assert exit_code(jobs[7].state, jobs[7].status) == 3
    assert (jobs[9].name, jobs[9].stdout) == ("x|y", "/l/x.log")
    assert 8 not in jobs
    assert SlurmSite(SITE_ID).parse_name("gpulease-job-abc.12") == ("job-abc", 12)


def test_make_executor_builds_the_slurm_sites_from_settings() -> None:
    settings = Settings(
        executor="slurm",
        slurm_sites={SITE_ID: {"partition": "p1", "conf": "/etc/x.conf", "node_name": "{local}"}},
    )
    executor = make_executor(settings)
    assert isinstance(executor, SlurmExecutor)
    (site,) = executor.sites
    assert (site.site_id, site.partition, site.conf) == (SITE_ID, "p1", Path("/etc/x.conf"))
    assert site.slurm_node("jkt1-r03-n07") == "r03-n07"


# ------------------------------------------------------------------ real Slurm
slow = pytest.mark.slow


@slow
def test_job_writes_a_file_on_the_chosen_node_with_gpulease_variables(
    slurm: LocalSlurmCluster, work: Path
) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    out = work / "out.txt"
    command = (
        f"echo $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES $GPULEASE_JOB_ID $GPULEASE_TENANT "
        f'"$GPULEASE_PURPOSE" > {out}; echo printed'
    )
    launch = launch_of(work, command, [(SLURM_NODES[2], (0, 1))])
    executor.launch(launch)
    assert executor.active() == {("job-1", 1)}
    slurm_id = executor.slurm_id("job-1")
    assert slurm_id is not None
    done = completion_of(executor, "job-1")
    assert (done.exit_code, done.run) == (0, 1)
    assert out.read_text().split() == [
        SLURM_NODES[2],
        "0,1",
        "job-1",
        "tenant-a",
        "model",
        "training",
    ]
    assert "printed" in done.log
    assert "printed" in launch.log_path.read_text()
    record = slurm_state(slurm, slurm_id)
    assert record["NodeList"] == SLURM_NODES[2]
    assert record["Comment"] == "gpulease"  # the comment's first word (scontrol splits at spaces)
    assert executor.active() == set()


@slow
def test_slurm_places_the_job_on_gpuleases_nodes_and_gpu_counts(
    slurm: LocalSlurmCluster, work: Path
) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    go = work / "go"
    wait = f"while [ ! -e {go} ]; do sleep 0.1; done"
    even = [(SLURM_NODES[0], (0, 1)), (SLURM_NODES[3], (2, 3))]
    uneven = [(SLURM_NODES[1], (0, 1, 2)), (SLURM_NODES[2], (3,))]
    executor.launch(launch_of(work, wait, even, job="job-even"))
    executor.launch(launch_of(work, wait, uneven, job="job-het"))
    for job, nodes in (("job-even", even), ("job-het", uneven)):
        slurm_id = executor.slurm_id(job)
        assert slurm_id is not None

        def running(slurm_id: int = slurm_id) -> dict[str, int] | None:
            executor.poll(datetime.now(UTC))
            seen = executor.last_seen[SITE_ID].get(slurm_id)
            return gpus_per_node(slurm, slurm_id) if seen and seen.state == "RUNNING" else None

        assert wait_for(running, what=f"{job} running") == {n: len(s) for n, s in nodes}
    go.touch()
    done = completions_of(executor, ["job-even", "job-het"])
    assert {c.exit_code for c in done.values()} == {0}


@slow
def test_with_typed_slots_jobs_get_exactly_gpuleases_gpus(
    slurm: LocalSlurmCluster, work: Path
) -> None:
    site = SlurmSite(SITE_ID, partition=slurm.partition, conf=slurm.conf_path, slot_type="s{slot}")
    executor = SlurmExecutor([site])
    go = work / "go"
    chosen = {"job-a": (1, 3), "job-b": (0, 2)}  # both on one node, side by side
    for job, slots in chosen.items():
        command = (
            f"echo $CUDA_VISIBLE_DEVICES > {work / job}; while [ ! -e {go} ]; do sleep 0.1; done"
        )
        executor.launch(launch_of(work, command, [(SLURM_NODES[1], slots)], job=job))
    het = [(SLURM_NODES[2], (2,)), (SLURM_NODES[3], (0, 3))]
    executor.launch(launch_of(work, f"while [ ! -e {go} ]; do sleep 0.1; done", het, job="job-c"))
    for job, slots in chosen.items():
        seen = wait_for(
            lambda job=job: (work / job).exists() and (work / job).read_text(), what=job
        )
        assert seen.strip() == ",".join(map(str, slots))
    slurm_id = executor.slurm_id("job-c")
    assert slurm_id is not None
    wait_for(lambda: slurm_state(slurm, slurm_id)["JobState"] == "RUNNING", what="job-c")
    detail = slurm.run(["scontrol", "-d", "show", "job", str(slurm_id)]).stdout
    assert dict(re.findall(r"Nodes=(\S+) .*?GRES=(\S+)", detail)) == {
        SLURM_NODES[2]: "gpu:s2:1(IDX:2)",
        SLURM_NODES[3]: "gpu:s0:1(IDX:0),gpu:s3:1(IDX:3)",
    }
    go.touch()
    done = completions_of(executor, ["job-a", "job-b", "job-c"])
    assert {c.exit_code for c in done.values()} == {0}


@slow
def test_exit_codes_reach_gpulease(slurm: LocalSlurmCluster, work: Path) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    executor.launch(launch_of(work, "exit 3", job="job-three"))
    executor.launch(launch_of(work, "kill -9 $$", [(SLURM_NODES[1], (0,))], job="job-nine"))
    done = completions_of(executor, ["job-three", "job-nine"])
    assert done["job-three"].exit_code == 3
    assert done["job-nine"].exit_code == 137


def test_a_site_whose_slurm_does_not_answer_never_stops_the_others(
    slurm: LocalSlurmCluster, work: Path
) -> None:
    """One site's ``squeue`` failing (here its client commands are not where the site's
    configuration says) leaves that site out of this poll only: the other site's completions
    come, nothing raises, and the silent site's runs are not taken for lost."""
    silent = SlurmSite("dead1", conf=slurm.conf_path, bin_dir=work / "no-slurm-here")
    executor = SlurmExecutor([site_of(slurm), silent])
    executor.launch(launch_of(work, "exit 3", job="job-three"))
    done = completions_of(executor, ["job-three"])
    assert done["job-three"].exit_code == 3
    assert executor.unanswered["dead1"] >= 1
    assert SITE_ID not in executor.unanswered


@slow
def test_stop_cancels_the_job_and_reports_no_completion(
    slurm: LocalSlurmCluster, work: Path
) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    launch = launch_of(work, "trap '' TERM; sleep 300")  # lingers until SIGKILL (KillWait)
    executor.launch(launch)
    slurm_id = executor.slurm_id("job-1")
    assert slurm_id is not None
    wait_for(lambda: slurm_state(slurm, slurm_id)["JobState"] == "RUNNING", what="running")
    executor.stop("job-1", "cancelled by its owner")
    assert executor.active() == set()
    states: list[str] = []  # as squeue shows the job: COMPLETING until SIGKILL, KillWait on
    while not states or states[-1] in ACTIVE_STATES:
        assert executor.poll(datetime.now(UTC)) == []
        assert executor.active() == set()  # not taken back as a stray while it winds down
        states.append(executor.last_seen[SITE_ID][slurm_id].state)
        assert len(states) < 100, states
        time.sleep(0.2)
    assert "COMPLETING" in states
    assert executor.poll(datetime.now(UTC)) == []
    assert "[gpulease] stopping: cancelled by its owner" in launch.log_path.read_text()


@slow
def test_a_finished_runs_log_is_its_own_part_cut_to_the_last_mib(
    slurm: LocalSlurmCluster, work: Path
) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    launch = launch_of(work, "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo the-end")
    launch.log_path.parent.mkdir(parents=True)
    launch.log_path.write_text("an earlier run's output\n")
    executor.launch(launch)
    done = completion_of(executor, "job-1")
    assert done.exit_code == 0
    assert done.log.endswith("the-end\n")
    assert len(done.log.encode()) <= 1 << 20
    assert launch.log_path.stat().st_size > 3_000_000  # Slurm does not cap the file itself


@slow
def test_preemption_warns_with_sigterm_then_stops(slurm: LocalSlurmCluster, work: Path) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    flag = work / "term"
    command = f"trap 'echo checkpoint > {flag}' TERM; while true; do sleep 0.2; done"
    launch = launch_of(work, command)
    executor.launch(launch)
    slurm_id = executor.slurm_id("job-1")
    assert slurm_id is not None
    wait_for(lambda: slurm_state(slurm, slurm_id)["JobState"] == "RUNNING", what="running")
    time.sleep(0.5)  # the batch shell has set its trap
    executor.warn("job-1", "preempted: stop within 30 s")
    wait_for(flag.exists, what="the job's SIGTERM handler")
    assert executor.poll(datetime.now(UTC)) == []  # it handled the signal and runs on
    assert slurm_state(slurm, slurm_id)["JobState"] == "RUNNING"
    executor.stop("job-1", "preempted")
    wait_for(lambda: slurm_state(slurm, slurm_id)["JobState"] == "CANCELLED", what="cancel")
    log = launch.log_path.read_text()
    assert "[gpulease] preempted: stop within 30 s" in log
    assert "[gpulease] stopping" in log


@slow
def test_a_new_leader_adopts_the_job_another_started(slurm: LocalSlurmCluster, work: Path) -> None:
    old = SlurmExecutor([site_of(slurm)])
    go = work / "go"
    launch = launch_of(work, f"while [ ! -e {go} ]; do sleep 0.1; done; echo after; exit 5")
    old.launch(launch)
    del old  # the leader dies; its Slurm job does not

    new = SlurmExecutor([site_of(slurm)])
    assert new.active() == set()
    assert new.adopt(launch)
    assert new.active() == {("job-1", 1)}
    assert not new.adopt(launch_of(work, "true", job="job-never"))  # nothing to adopt
    go.touch()
    done = completion_of(new, "job-1")
    assert (done.exit_code, done.run) == (5, 1)
    assert "after" in done.log


@slow
def test_a_new_leader_holds_the_old_ones_jobs_from_its_first_poll(
    slurm: LocalSlurmCluster, work: Path
) -> None:
    old = SlurmExecutor([site_of(slurm)])
    old.launch(launch_of(work, "sleep 300", job="job-a", run=2))
    new = SlurmExecutor([site_of(slurm)])
    assert new.poll(datetime.now(UTC)) == []
    assert new.active() == {("job-a", 2)}
    new.stop("job-a", "no longer wanted")  # what the core's reconcile does with such a run
    slurm_id = old.slurm_id("job-a")
    assert slurm_id is not None
    wait_for(lambda: slurm_state(slurm, slurm_id)["JobState"] == "CANCELLED", what="cancel")


@slow
def test_a_job_cancelled_behind_gpuleases_back_ends(slurm: LocalSlurmCluster, work: Path) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    executor.launch(launch_of(work, "sleep 300"))
    slurm_id = executor.slurm_id("job-1")
    assert slurm_id is not None
    wait_for(lambda: slurm_state(slurm, slurm_id)["JobState"] == "RUNNING", what="running")
    slurm.run(["scancel", str(slurm_id)])
    done = completion_of(executor, "job-1")
    assert done.exit_code == 143
    assert executor.active() == set()


@slow
def test_runs_that_cannot_start_fail_with_the_reason(slurm: LocalSlurmCluster, work: Path) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    executor.launch(launch_of(work, None, job="job-image"))
    executor.launch(launch_of(work, "true", [("jkt1-r09-n09", (0,))], job="job-nowhere"))
    failed = {c.job_id: c for c in executor.poll(datetime.now(UTC))}
    assert {c.exit_code for c in failed.values()} == {CANNOT_START}
    assert "runs commands, not images" in failed["job-image"].log
    assert "sbatch refused it" in failed["job-nowhere"].log
    assert executor.active() == set()


@slow
def test_node_states_follow_slurm_and_gpulease_drains_reach_slurm(
    slurm: LocalSlurmCluster,
) -> None:
    executor = SlurmExecutor([site_of(slurm)])
    ids = list(SLURM_NODES)  # the test cluster's nodes are named after gpulease node ids
    assert {s for s, _ in executor.node_states(ids).values()} == {NodeState.UP}

    slurm.run(["scontrol", "update", f"nodename={SLURM_NODES[1]}", "state=drain", "reason=fan"])
    slurm.run(["scontrol", "update", f"nodename={SLURM_NODES[2]}", "state=down", "reason=psu"])
    states = executor.node_states([*ids, f"{SITE_ID}-r07-n00"])
    assert states[ids[0]] == (NodeState.UP, "")
    assert states[ids[1]] == (NodeState.DRAINING, "fan")
    assert states[ids[2]] == (NodeState.DOWN, "psu")
    assert states[f"{SITE_ID}-r07-n00"][0] == NodeState.DOWN  # Slurm has no such node

    executor.set_node_state(ids[3], NodeState.DRAINING, "maintenance window")
    executor.set_node_state(ids[1], NodeState.UP, "")
    assert executor.node_states(ids)[ids[3]] == (NodeState.DRAINING, "gpulease: maintenance window")
    # a resumed node answers Slurm's next ping: draining (not responding) until then
    wait_for(lambda: executor.node_states(ids)[ids[1]][0] == NodeState.UP, what="resume")
