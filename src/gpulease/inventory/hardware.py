"""Hardware presets: what one rack (locality domain) of each product holds.

* ``gb200-nvl72``: one NVLink domain of 18 compute trays x 4 Blackwell GPUs = 72 GPUs
  (NVIDIA GB200 NVL72 product brief).
* ``hgx-8gpu``: HGX servers of 8 GPUs each under one leaf switch; 4 servers per rack by
  default (the locality domain is the leaf switch, so its size is a site choice).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulease.domain.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class HardwarePreset:
    name: str
    nodes_per_rack: int
    gpus_per_node: int
    node_kind: str  # what a node is called: "tray" or "server"
    domain_kind: str  # what a rack's locality domain is called
    gpu_model: str

    @property
    def gpus_per_rack(self) -> int:
        return self.nodes_per_rack * self.gpus_per_node


GB200_NVL72 = HardwarePreset("gb200-nvl72", 18, 4, "tray", "NVLink domain", "B200")
HGX_8GPU = HardwarePreset("hgx-8gpu", 4, 8, "server", "leaf switch", "H100")

HARDWARE_PRESETS: dict[str, HardwarePreset] = {p.name: p for p in (GB200_NVL72, HGX_8GPU)}


def hardware_preset(name: str) -> HardwarePreset:
    try:
        return HARDWARE_PRESETS[name]
    except KeyError:
        raise InvalidRequest(
            f"unknown hardware preset {name!r}; known: {', '.join(sorted(HARDWARE_PRESETS))}",
            field="hardware",
        ) from None
