"""Cluster specs, presets, hardware catalogue and the dense topology tree."""

from __future__ import annotations

import pytest

from gpulease.domain.errors import InvalidRequest
from gpulease.inventory.hardware import GB200_NVL72, HGX_8GPU, hardware_preset
from gpulease.inventory.topology import (
    CLUSTER_PRESETS,
    ClusterSpec,
    build_cluster,
    parse_cluster_spec,
    spec_from_preset,
)


@pytest.mark.parametrize(
    ("text", "racks", "nodes", "gpus", "total", "hardware"),
    [
        ("32x18x4", 32, 18, 4, 2304, "gb200-nvl72"),
        ("4x5x8", 4, 5, 8, 160, "hgx-8gpu"),
        ("4x4x8", 4, 4, 8, 128, "hgx-8gpu"),
        (" 2 X 3 x 1 ", 2, 3, 1, 6, "custom"),
        ("1x1x64", 1, 1, 64, 64, "custom"),
        ("reference", 32, 18, 4, 2304, "gb200-nvl72"),
        ("REFERENCE", 32, 18, 4, 2304, "gb200-nvl72"),
        ("nvl72", 1, 18, 4, 72, "gb200-nvl72"),
        ("tiresias", 4, 5, 8, 160, "hgx-8gpu"),
        (" hyperscale ", 1389, 18, 4, 100_008, "gb200-nvl72"),
    ],
)
def test_parse_cluster_spec(
    text: str, racks: int, nodes: int, gpus: int, total: int, hardware: str
) -> None:
    spec = parse_cluster_spec(text)
    assert spec == ClusterSpec(racks, nodes, gpus, hardware)
    assert spec.total_gpus == total


def test_spec_prints_compactly() -> None:
    assert str(parse_cluster_spec("reference")) == "32x18x4"
    assert str(ClusterSpec(4, 5, 8)) == "4x5x8"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "cluster spec '' is neither RACKSxNODESxGPUS (e.g. 32x18x4) nor a preset "
            "(hyperscale, nvl72, reference, tiresias)",
        ),
        (
            "4x5",
            "cluster spec '4x5' is neither RACKSxNODESxGPUS (e.g. 32x18x4) nor a preset "
            "(hyperscale, nvl72, reference, tiresias)",
        ),
        (
            "4x5x8x2",
            "cluster spec '4x5x8x2' is neither RACKSxNODESxGPUS (e.g. 32x18x4) nor a preset "
            "(hyperscale, nvl72, reference, tiresias)",
        ),
        (
            "-1x5x8",
            "cluster spec '-1x5x8' is neither RACKSxNODESxGPUS (e.g. 32x18x4) nor a preset "
            "(hyperscale, nvl72, reference, tiresias)",
        ),
        (
            "big",
            "cluster spec 'big' is neither RACKSxNODESxGPUS (e.g. 32x18x4) nor a preset "
            "(hyperscale, nvl72, reference, tiresias)",
        ),
        ("0x18x4", "cluster spec '0x18x4': every count must be >= 1"),
        ("4x0x8", "cluster spec '4x0x8': every count must be >= 1"),
        ("4x5x0", "cluster spec '4x5x0': every count must be >= 1"),
        ("1x1x65", "cluster spec '1x1x65': 65 GPUs per node is more than any product (max 64)"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_cluster_spec(text)
    assert caught.value.message == message
    assert caught.value.details == {"field": "cluster"}
    assert caught.value.code == "invalid_request"


def test_hardware_presets() -> None:
    assert GB200_NVL72.gpus_per_rack == 72
    assert HGX_8GPU.gpus_per_rack == 32
    assert hardware_preset("gb200-nvl72") is GB200_NVL72
    assert spec_from_preset(GB200_NVL72, 3) == ClusterSpec(3, 18, 4, "gb200-nvl72")
    with pytest.raises(InvalidRequest) as caught:
        hardware_preset("dgx")
    assert caught.value.message == "unknown hardware preset 'dgx'; known: gb200-nvl72, hgx-8gpu"
    assert caught.value.details == {"field": "hardware"}


def test_presets() -> None:
    assert {name: spec.total_gpus for name, spec in CLUSTER_PRESETS.items()} == {
        "reference": 2304,
        "nvl72": 72,
        "tiresias": 160,
        "hyperscale": 100_008,
    }


def test_build_cluster_ids_and_dense_indices() -> None:
    cluster = build_cluster(ClusterSpec(3, 2, 4), site="jkt")
    assert cluster.site == "jkt"
    assert cluster.hardware == "custom"
    assert [r.id for r in cluster.racks] == ["r00", "r01", "r02"]
    assert [r.index for r in cluster.racks] == [0, 1, 2]
    assert [r.nodes for r in cluster.racks] == [(0, 1), (2, 3), (4, 5)]
    assert [r.first_node for r in cluster.racks] == [0, 2, 4]
    assert [n.id for n in cluster.nodes] == [
        "r00-n00",
        "r00-n01",
        "r01-n00",
        "r01-n01",
        "r02-n00",
        "r02-n01",
    ]
    assert [n.index for n in cluster.nodes] == [0, 1, 2, 3, 4, 5]
    assert [n.rack for n in cluster.nodes] == [0, 0, 1, 1, 2, 2]
    assert {n.gpus for n in cluster.nodes} == {4}
    assert cluster.total_gpus == 24
    assert cluster.max_gpus_per_node == 4
    assert [cluster.rack_gpus(r) for r in range(3)] == [8, 8, 8]
    assert cluster.gpu_id(3, 2) == "r01-n01-g2"
    assert cluster.node_index("r02-n00") == 4
    assert cluster.describe() == "jkt: 3 racks x 8 GPUs = 24 GPUs (custom)"


def test_node_index_unknown() -> None:
    cluster = build_cluster(ClusterSpec(1, 2, 4))
    with pytest.raises(InvalidRequest) as caught:
        cluster.node_index("r05-n00")
    assert caught.value.message == "no node 'r05-n00' in site site"
    assert caught.value.details == {"field": "node"}


def test_reference_cluster() -> None:
    cluster = build_cluster(parse_cluster_spec("32x18x4"))
    assert cluster.total_gpus == 2304
    assert len(cluster.nodes) == 576
    assert cluster.nodes[-1].id == "r31-n17"
    assert cluster.racks[31].nodes == tuple(range(558, 576))
    assert cluster.describe() == "site: 32 racks x 72 GPUs = 2304 GPUs (gb200-nvl72)"


def test_hyperscale_cluster_is_dense() -> None:
    cluster = build_cluster(parse_cluster_spec("hyperscale"))
    assert cluster.total_gpus == 100_008
    assert len(cluster.racks) == 1389
    assert len(cluster.nodes) == 1389 * 18
    assert all(node.index == i for i, node in enumerate(cluster.nodes))
    assert cluster.nodes[25_001].rack == 1388
    assert cluster.nodes[25_001].id == "r1388-n17"
