"""Completions that outlive ``squeue``: the Slurm executor reads the site's job-completion
file (``jobcomp/filetxt``) for runs that ended longer than ``MinJobAge`` ago, so a run that
finished while no scheduler led is reported ended with its exit code, not lost and run
again. The first tests need no Slurm: the reader on files written here (lines as Slurm
22.05 writes them). The last runs its own cluster with ``MinJobAge=2`` (about a minute:
slurmctld purges finished jobs every 60 s)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpulease.executors import slurm_jobcomp
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.executors.slurm_commands import exit_code
from gpulease.executors.slurm_jobcomp import JobCompReader, parse_line
from gpulease.services.setup import make_executor
from gpulease.settings import Settings
from support.slurm_cluster import MISSING_BINARIES, SITE_ID, SLURM_NODES, LocalSlurmCluster
from support.slurm_jobs import launch_of, wait_for


def line(job: int, name: str, state: str, exit: str, het: tuple[int, int] | None = None) -> str:
    """A line as slurmctld 22.05 writes it (jobcomp_filetxt)."""
    het_fields = f"HetJobId={het[0]} HetJobOffset={het[1]} " if het else ""
    return (
        f"JobId={job} UserId=root(0) GroupId=root(0) Name={name} JobState={state} "
        "Partition=gpu TimeLimit=UNLIMITED StartTime=2026-12-07T13:17:13 "
        "EndTime=2026-12-07T13:17:14 NodeList=jkt1-r00-n00 NodeCnt=1 ProcCnt=1 WorkDir=/tmp "
        "ReservationName= Tres=cpu=1,mem=1000M,node=1,billing=1 Account= QOS= WcKey= "
        "Cluster=unknown SubmitTime=2026-12-07T13:17:13 EligibleTime=2026-12-07T13:17:13 "
        f"{het_fields}DerivedExitCode=0:0 ExitCode={exit} \n"
    )


def test_lines_give_state_and_exit_code() -> None:
    failed = parse_line(line(1, "gpulease-job-x.3", "FAILED", "3:0"))
    assert failed is not None
    assert (failed.slurm_id, failed.name, failed.state) == (1, "gpulease-job-x.3", "FAILED")
    assert exit_code(failed.state, failed.status) == 3
    killed = parse_line(line(2, "gpulease-job-y.1", "FAILED", "0:9"))
    assert killed is not None
    assert exit_code(killed.state, killed.status) == 137
    cancelled = parse_line(line(4, "gpulease-job-z.1", "CANCELLED", "0:0"))
    assert cancelled is not None
    assert exit_code(cancelled.state, cancelled.status) == 143
    assert parse_line("JobId=5 UserId=root(0) Name=gpulease-j.1 JobSt") is None  # cut short
    # free text cannot rename a job or change its id; ExitCode is the last field
    spoof = line(6, "gpulease-a.1", "COMPLETED", "0:0").replace(
        "WorkDir=/tmp", "WorkDir=/tmp/ JobId=9 Name=gpulease-b.1 ExitCode=5:0"
    )
    record = parse_line(spoof)
    assert record is not None
    assert (record.slurm_id, record.name, record.status) == (
        6,
        "gpulease-a.1",
        0,
    )


def test_the_reader_reads_each_byte_once_and_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "jobcomp.txt"
    first = line(1, "gpulease-a.1", "COMPLETED", "0:0") + line(2, "other", "FAILED", "1:0")
    path.write_text(first)
    reader = JobCompReader(path, "gpulease-")
    assert reader.find(1) is not None
    assert reader.find(2) is None  # not gpulease's
    assert reader.bytes_read == len(first)
    second = line(3, "gpulease-b.2", "FAILED", "7:0")
    with path.open("a") as handle:  # a line being written: read once it is complete
        handle.write(second[:40])
    assert reader.find(3) is None
    with path.open("a") as handle:
        handle.write(second[40:])
    found = reader.find_name("gpulease-b.2")
    assert found is not None
    assert exit_code(found.state, found.status) == 7
    assert reader.bytes_read == len(first) + 40 + len(second)
    reader.refresh()  # nothing appended: nothing read
    assert reader.bytes_read == len(first) + 40 + len(second)


def test_a_heterogeneous_job_is_its_leaders_line(tmp_path: Path) -> None:
    path = tmp_path / "jobcomp.txt"
    path.write_text(
        line(8, "gpulease-h.1", "FAILED", "0:9", (7, 1))
        + line(7, "gpulease-h.1", "FAILED", "4:0", (7, 0))
        + line(9, "gpulease-h.1", "CANCELLED", "0:0", (7, 2))
    )
    record = JobCompReader(path, "gpulease-").find(7)
    assert record is not None
    assert exit_code(record.state, record.status) == 4


def test_a_new_reader_starts_near_the_end_and_a_rotated_file_is_read_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "jobcomp.txt"
    lines = [line(n, f"gpulease-j{n}.1", "COMPLETED", "0:0") for n in range(1, 101)]
    path.write_text("".join(lines))
    bound = len("".join(lines[-10:])) + 5  # ten lines and a bit of the one before
    monkeypatch.setattr(slurm_jobcomp, "TAIL_BYTES", bound)
    reader = JobCompReader(path, "gpulease-")
    assert reader.find(100) is not None
    assert reader.find(91) is not None  # the last ten lines, whole
    assert reader.find(90) is None  # older ones not read, a cut line not taken
    assert reader.bytes_read <= bound + 1
    rotated = tmp_path / "rotated.txt"
    rotated.write_text(line(101, "gpulease-new.1", "FAILED", "2:0"))
    rotated.replace(path)  # logrotate: a new, shorter file under the same name
    again = reader.find(101)
    assert again is not None
    assert exit_code(again.state, again.status) == 2


def test_reused_ids_and_the_record_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slurmctld started afresh numbers jobs from 1 again: by id the newest line wins, by
    name each job keeps its own; at most MAX_RECORDS are kept, the oldest dropped."""
    path = tmp_path / "jobcomp.txt"
    path.write_text(
        line(1, "gpulease-old.1", "FAILED", "2:0") + line(1, "gpulease-new.1", "COMPLETED", "0:0")
    )
    reader = JobCompReader(path, "gpulease-")
    assert reader.find(1) == reader.find_name("gpulease-new.1")
    old = reader.find_name("gpulease-old.1")
    assert old is not None
    assert exit_code(old.state, old.status) == 2
    monkeypatch.setattr(slurm_jobcomp, "MAX_RECORDS", 3)
    with path.open("a") as handle:
        handle.write("".join(line(n, f"gpulease-j{n}.1", "COMPLETED", "0:0") for n in range(2, 7)))
    assert [n for n in range(1, 7) if reader.find(n)] == [4, 5, 6]
    assert reader.find_name("gpulease-old.1") is None


def test_the_site_setting_reaches_the_executor(tmp_path: Path) -> None:
    site = SlurmSite(SITE_ID, jobcomp=tmp_path / "jobcomp.txt")
    executor = SlurmExecutor([site, SlurmSite("other")])
    reader = executor.jobcomp_reader(site)
    assert reader is not None
    assert reader.path == tmp_path / "jobcomp.txt"
    assert executor.jobcomp_reader(SlurmSite("other")) is None
    configured = make_executor(
        Settings(executor="slurm", slurm_sites={SITE_ID: {"jobcomp": "/var/log/slurm/jobcomp.txt"}})
    )
    assert isinstance(configured, SlurmExecutor)
    assert configured.sites[0].jobcomp == Path("/var/log/slurm/jobcomp.txt")


# ------------------------------------------------------------------ real Slurm
@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING_BINARIES), reason=f"Slurm absent: {MISSING_BINARIES}")
def test_runs_that_ended_while_no_one_polled_are_reported_with_their_exit_code(
    work: Path,
) -> None:
    """Two runs end while nobody polls: one held by a leader that stopped polling, one
    whose leader died. Once ``squeue`` has forgotten both (``MinJobAge=2``), the first
    leader's ``poll`` and a fresh leader's ``adopt`` + ``poll`` report their ends with the
    right exit codes. An executor not told where the file is takes them for lost."""
    nodes = SLURM_NODES[:2]
    cluster = LocalSlurmCluster(
        nodes=2, gpus_per_node=2, base_dir=work / "c", node_names=nodes, min_job_age=2
    )
    with cluster:
        site = SlurmSite(
            SITE_ID,
            partition=cluster.partition,
            conf=cluster.conf_path,
            jobcomp=cluster.jobcomp_path,
        )
        held = SlurmExecutor([site])
        kept = launch_of(work, "echo kept; exit 3", [(nodes[0], (0,))], job="job-kept")
        held.launch(kept)
        dead = SlurmExecutor([site])
        orphan = launch_of(
            work, "echo orphan; kill -9 $$", [(nodes[1], (1,))], job="job-orphan", run=2
        )
        dead.launch(orphan)
        ids = {held.slurm_id("job-kept"), dead.slurm_id("job-orphan")}
        del dead  # that leader dies before its run ends

        def forgotten() -> bool:
            listed = cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"]).stdout.split()
            return ids <= set(cluster.completed_jobs()) and not listed

        wait_for(forgotten, timeout=150, what="squeue forgetting both jobs")

        blind = SlurmExecutor(
            [SlurmSite(SITE_ID, partition=cluster.partition, conf=cluster.conf_path)]
        )
        assert not blind.adopt(orphan)  # without the file: lost, and run again

        (done,) = held.poll(datetime.now(UTC))
        assert (done.job_id, done.run, done.exit_code) == ("job-kept", 1, 3)
        assert "kept" in done.log
        assert held.active() == set()

        new = SlurmExecutor([site])
        assert new.adopt(orphan)
        assert new.active() == {("job-orphan", 2)}
        (late,) = new.poll(datetime.now(UTC))
        assert (late.job_id, late.run, late.exit_code) == ("job-orphan", 2, 137)
        assert "orphan" in late.log
        assert new.poll(datetime.now(UTC)) == []  # reported once
        assert not new.adopt(launch_of(work, "true", job="job-orphan", run=3))  # not that run
        cluster.cancel_all()
