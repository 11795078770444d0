"""What the Slurm executor asks Slurm's client commands and how it reads their answers:
``squeue`` rows (heterogeneous jobs merged), ``sinfo`` node states, Slurm job states and
wait statuses as gpulease exit codes. Pure functions and constants, no command is run here
(``executors/slurm.py`` runs them); see that module for the design and its invariants.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from gpulease.domain.states import NodeState

# job id, heterogeneous job id (N/A), state, wait status, stdout, nodes, name (last: free text);
# a field with a suffix and no width is never cut
SQUEUE_FIELDS = "JobID:|,HetJobID:|,State:|,exit_code:|,STDOUT:|,NodeList:|,Name:"

# Slurm states in which the job still holds (or waits for) its nodes
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESIZING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESV_DEL_HOLD",
        "SPECIAL_EXIT",
    }
)
LOST_STATES = frozenset({"NODE_FAIL", "BOOT_FAIL"})  # requeued by the core, not completed
FIXED_CODES = {"TIMEOUT": 124, "OUT_OF_MEMORY": 137, "PREEMPTED": 143, "DEADLINE": 143}
# ``sinfo %t`` states (flags such as ``*``, not responding, stripped first)
DRAINING_STATES = frozenset({"drain", "drng", "drained", "draining", "maint", "failg"})
DOWN_STATES = frozenset({"down", "fail", "inval"})
UP_STATES = frozenset({"idle", "alloc", "mix", "comp", "plnd", "resv", "npc"})
SET_STATE = {NodeState.UP: "resume", NodeState.DRAINING: "drain", NodeState.DOWN: "down"}


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """One job as ``squeue`` lists it (a heterogeneous job's components merged)."""

    slurm_id: int
    state: str
    nodes: tuple[str, ...]  # hostlist expressions, one per component
    name: str
    status: int | None = None  # the batch script's wait status, once it ended
    stdout: str = ""  # its output file


def one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def parse_squeue(out: str) -> dict[int, SlurmJob]:
    """``squeue -O SQUEUE_FIELDS`` lines -> jobs by (heterogeneous) job id, the
    components of a heterogeneous job merged (its leader's state, status and output)."""
    rows: dict[int, list[list[str]]] = defaultdict(list)
    for line in out.splitlines():
        parts = line.split("|", 6)
        if len(parts) != 7 or not parts[0].isdigit():
            continue
        rows[int(parts[1]) if parts[1].isdigit() else int(parts[0])].append(parts)
    jobs: dict[int, SlurmJob] = {}
    for het_id, components in rows.items():
        leader = next((c for c in components if int(c[0]) == het_id), components[0])
        nodes = tuple(c[5] for c in components if c[5])
        status = int(leader[3]) if leader[3].isdigit() else None
        state = leader[2].split()[0] if leader[2].split() else ""
        jobs[het_id] = SlurmJob(het_id, state, nodes, leader[6], status, leader[4])
    return jobs


def node_state(compact: str) -> NodeState:
    """A ``sinfo %t`` state as gpulease's. Only what Slurm itself calls down is ``DOWN``
    (gpulease requeues the work of a down node); a node that misses a ping (``*``) or is
    booting, powering up or unknown is ``DRAINING`` until Slurm decides."""
    base = compact.rstrip("*~#!%$@^-+")
    if base in DOWN_STATES:
        return NodeState.DOWN
    if base in DRAINING_STATES or compact.endswith(("*", "#", "%")):
        return NodeState.DRAINING
    return NodeState.UP if base in UP_STATES else NodeState.DRAINING


def exit_code(state: str, status: int | None) -> int:
    """A gpulease exit code from Slurm's job state and the batch script's wait status
    (``squeue -O exit_code``: the exit code in bits 8-15, a terminating signal in 0-6)."""
    rc = (status >> 8) & 0xFF if status is not None else 0
    sig = status & 0x7F if status is not None else 0
    if state in ("COMPLETED", "FAILED"):
        if rc or sig:
            return rc or 128 + sig
        return 0 if state == "COMPLETED" else 1
    if state == "CANCELLED":
        return rc if rc > 128 else 128 + (sig or 15)
    if state in FIXED_CODES:
        return FIXED_CODES[state]
    return rc or 1
