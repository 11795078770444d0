"""The topology tree a scheduler places gangs on: site > rack > node > GPU.

A *rack* is the locality domain (an NVLink domain for GB200 NVL72, a leaf switch for HGX
servers): a job inside one rack communicates at full bandwidth. Nodes are numbered densely
``0..N-1`` across the site, racks ``0..R-1``, and each node's GPUs ``0..g-1``; the dense
integers are what the scheduling core works with, the string ids are what people read.

Compact spec (CLI): ``RACKSxNODESxGPUS`` such as ``32x18x4`` (the reference site: 32 GB200
NVL72 racks = 2,304 GPUs) or ``4x5x8`` (4 switches of 5 servers with 8 GPUs), or a preset
name from :data:`CLUSTER_PRESETS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpulease.domain.errors import InvalidRequest
from gpulease.inventory.hardware import GB200_NVL72, HGX_8GPU, HardwarePreset


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    racks: int
    nodes_per_rack: int
    gpus_per_node: int
    hardware: str = "custom"

    @property
    def total_gpus(self) -> int:
        return self.racks * self.nodes_per_rack * self.gpus_per_node

    def __str__(self) -> str:
        return f"{self.racks}x{self.nodes_per_rack}x{self.gpus_per_node}"


def spec_from_preset(hardware: HardwarePreset, racks: int) -> ClusterSpec:
    return ClusterSpec(racks, hardware.nodes_per_rack, hardware.gpus_per_node, hardware.name)


CLUSTER_PRESETS: dict[str, ClusterSpec] = {
    # The Jakarta site of the reference case: 32 GB200 NVL72 racks, 2,304 GPUs.
    "reference": spec_from_preset(GB200_NVL72, 32),
    "nvl72": spec_from_preset(GB200_NVL72, 1),
    # The cluster of Tiresias' Philly experiments: 4 switches x 5 servers x 8 GPUs.
    "tiresias": ClusterSpec(4, 5, 8, HGX_8GPU.name),
    # A projection at 100,000 GPUs: 1,389 NVL72 racks (100,008 GPUs).
    "hyperscale": spec_from_preset(GB200_NVL72, 1389),
}

_SPEC_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*$", re.IGNORECASE)


def parse_cluster_spec(text: str) -> ClusterSpec:
    """Parse ``RACKSxNODESxGPUS`` or a preset name; raise InvalidRequest saying what is wrong."""
    preset = CLUSTER_PRESETS.get(text.strip().lower())
    if preset is not None:
        return preset
    match = _SPEC_RE.match(text)
    if match is None:
        raise InvalidRequest(
            f"cluster spec {text!r} is neither RACKSxNODESxGPUS (e.g. 32x18x4) nor a preset "
            f"({', '.join(sorted(CLUSTER_PRESETS))})",
            field="cluster",
        )
    racks, nodes, gpus = (int(g) for g in match.groups())
    if min(racks, nodes, gpus) < 1:
        raise InvalidRequest(f"cluster spec {text!r}: every count must be >= 1", field="cluster")
    if gpus > 64:
        raise InvalidRequest(
            f"cluster spec {text!r}: {gpus} GPUs per node is more than any product (max 64)",
            field="cluster",
        )
    hardware = "custom"
    if (nodes, gpus) == (GB200_NVL72.nodes_per_rack, GB200_NVL72.gpus_per_node):
        hardware = GB200_NVL72.name
    elif gpus == HGX_8GPU.gpus_per_node:
        hardware = HGX_8GPU.name  # HGX servers; the rack (leaf switch) size is the site's
    return ClusterSpec(racks, nodes, gpus, hardware)


@dataclass(frozen=True, slots=True)
class Node:
    index: int
    id: str
    rack: int
    gpus: int


@dataclass(frozen=True, slots=True)
class Rack:
    index: int
    id: str
    nodes: tuple[int, ...]  # node indices, ascending

    @property
    def first_node(self) -> int:
        return self.nodes[0]


@dataclass(frozen=True, slots=True)
class Cluster:
    """An immutable site topology. Node and rack indices are dense and ascending."""

    site: str
    racks: tuple[Rack, ...]
    nodes: tuple[Node, ...]
    hardware: str = "custom"

    @property
    def total_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    @property
    def max_gpus_per_node(self) -> int:
        return max(n.gpus for n in self.nodes)

    def rack_gpus(self, rack: int) -> int:
        return sum(self.nodes[n].gpus for n in self.racks[rack].nodes)

    def gpu_id(self, node: int, gpu: int) -> str:
        return f"{self.nodes[node].id}-g{gpu}"

    def node_index(self, node_id: str) -> int:
        for node in self.nodes:
            if node.id == node_id:
                return node.index
        raise InvalidRequest(f"no node {node_id!r} in site {self.site}", field="node")

    def describe(self) -> str:
        per_rack = self.rack_gpus(0) if self.racks else 0
        return (
            f"{self.site}: {len(self.racks)} racks x {per_rack} GPUs = {self.total_gpus} GPUs "
            f"({self.hardware})"
        )


def build_cluster(spec: ClusterSpec, *, site: str = "site") -> Cluster:
    racks: list[Rack] = []
    nodes: list[Node] = []
    for r in range(spec.racks):
        members: list[int] = []
        for n in range(spec.nodes_per_rack):
            index = len(nodes)
            nodes.append(Node(index, f"r{r:02d}-n{n:02d}", r, spec.gpus_per_node))
            members.append(index)
        racks.append(Rack(r, f"r{r:02d}", tuple(members)))
    return Cluster(site, tuple(racks), tuple(nodes), spec.hardware)
