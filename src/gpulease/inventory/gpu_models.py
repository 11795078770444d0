"""GPU models and their rated throughput: what a training-compute estimate multiplies by.

A job's estimated training compute is GPUs x seconds x *peak* x utilisation
(:mod:`gpulease.compliance.training_compute`). The peak is the GPU model's rated **dense**
(no structured sparsity) BF16 Tensor Core throughput, from the maker's published figures.
Dense, because training runs dense matrix products; BF16, because that is what large
training runs use. Where a datasheet gives only a figure with sparsity, the dense figure is
half of it (NVIDIA's own convention, stated in its footnotes); such a derivation is said in
``source``.

Invariants: every peak is positive; every model names its source; the table is data only
(no I/O, no clock). A model not in the table is estimated at :data:`UNKNOWN_MODEL_PEAK`, the
highest peak listed, so that an unknown chip can only over-state compute, never hide it;
the report says when that happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class GpuModelSpec:
    model: str  # as ``gpus.model`` stores it
    peak_flops: Decimal  # dense BF16 FLOP/s per GPU
    source: str


GPU_MODELS: dict[str, GpuModelSpec] = {
    spec.model: spec
    for spec in (
        GpuModelSpec(
            "B200",
            Decimal("2.5e15"),
            "NVIDIA GB200 NVL72 product brief: dense BF16 Tensor Core, 180 PFLOP/s per 72-GPU "
            "rack = 2.5e15 FLOP/s per Blackwell GPU",
        ),
        GpuModelSpec(
            "H100",
            Decimal("9.89e14"),
            "NVIDIA H100 Tensor Core GPU datasheet (SXM5): BF16 Tensor Core 1,979 TFLOP/s with "
            "sparsity, so 989 TFLOP/s dense (half, per the datasheet's footnote)",
        ),
        GpuModelSpec(
            "H200",
            Decimal("9.89e14"),
            "NVIDIA H200 Tensor Core GPU datasheet (SXM): BF16 Tensor Core 1,979 TFLOP/s with "
            "sparsity, so 989 TFLOP/s dense",
        ),
        GpuModelSpec(
            "A100",
            Decimal("3.12e14"),
            "NVIDIA A100 Tensor Core GPU datasheet: BF16 Tensor Core 312 TFLOP/s dense "
            "(624 with sparsity)",
        ),
    )
}
UNKNOWN_MODEL_PEAK = max(spec.peak_flops for spec in GPU_MODELS.values())
UNKNOWN_MODEL_SOURCE = (
    "model not in gpulease's table: estimated at the highest rated peak listed "
    f"({UNKNOWN_MODEL_PEAK:.3e} FLOP/s), so an unknown chip never lowers an estimate"
)


def peak_of(model: str) -> tuple[Decimal, str]:
    """The rated dense BF16 peak of ``model`` and where it comes from (module doc for an
    unknown model)."""
    spec = GPU_MODELS.get(model.strip().upper())
    if spec is None:
        return UNKNOWN_MODEL_PEAK, UNKNOWN_MODEL_SOURCE
    return spec.peak_flops, spec.source
