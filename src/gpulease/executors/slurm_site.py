"""How one gpulease site reaches its Slurm cluster (``GPULEASE_SLURM_SITES``): the executor's
and the lease mirror's shared view of a site (names of nodes and jobs, where the client
commands and files are). Pure data: no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SlurmSite:
    """How one gpulease site reaches its Slurm cluster.

    ``nodes`` maps gpulease node ids to Slurm node names; a node id it does not name is
    mapped by ``node_name``, a format of ``{node_id}`` and ``{local}`` (the id without
    ``<site_id>-``). A launch goes to the site whose ``nodes`` names its first node, else
    to the site whose id prefixes it, else to the only site configured."""

    site_id: str
    partition: str = "gpu"
    conf: Path | None = None  # SLURM_CONF for the client commands; None: Slurm's default
    bin_dir: Path | None = None  # where sbatch, squeue... are; None: PATH
    nodes: Mapping[str, str] = field(default_factory=dict)
    node_name: str = "{node_id}"
    workdir: Path = Path("/tmp")  # the job's working directory on its node
    job_prefix: str = "gpulease-"
    # where each GPU is its own GRES type named after its index (gres.conf ``Type=s0``...),
    # the format of that type: the job then gets exactly gpulease's GPUs, not just as many
    slot_type: str | None = None
    # Slurm's job-completion file (JobCompLoc of jobcomp/filetxt), readable from here: the
    # end of runs squeue no longer lists is found there; None: such runs are lost
    jobcomp: Path | None = None
    # leases mirrored as reservations (services.reservation_sync): who may use a tenant's
    # (Slurm users by tenant id, an account format of {tenant_id}), and gpulease's own user
    mirror_leases: bool = False
    lease_users: Mapping[str, Sequence[str]] = field(default_factory=dict)
    lease_account: str | None = None
    runs_user: str | None = None

    def slurm_node(self, node_id: str) -> str:
        explicit = self.nodes.get(node_id)
        if explicit is not None:
            return explicit
        local = node_id.removeprefix(f"{self.site_id}-")
        return self.node_name.format(node_id=node_id, local=local)

    def claims(self, node_id: str) -> bool:
        return node_id in self.nodes or node_id.startswith(f"{self.site_id}-")

    def job_name(self, job_id: str, run: int) -> str:
        return f"{self.job_prefix}{job_id}.{run}"

    def parse_name(self, name: str) -> tuple[str, int] | None:
        if not name.startswith(self.job_prefix):
            return None
        job_id, _, run = name[len(self.job_prefix) :].rpartition(".")
        return (job_id, int(run)) if job_id and run.isdigit() else None
