"""The fewest racks a job could span on the GPUs free when it starts: a check of the placer.

Placement quality has two yardsticks. Against an *empty* site (``min_racks_needed``), a
``preferred`` job that spans two racks because no rack had room counts as spread, though
spanning rather than waiting is exactly what ``preferred`` asks for. Against the GPUs
*free at the moment it starts* (this module), a start is spread only if the scheduler
could have put the job on fewer racks right then: the placer's own promise ("a job that
fits in one rack goes in one rack; larger jobs span the fewest racks").

:func:`fewest_racks_free` is written apart from the placer's choice of racks on purpose,
so that it checks rather than repeats it; it shares only the definitions of what a rack
offers a job (``rack_capacity``) and which pieces must stay in one rack (``rack_piece``).
It is a covering count: with per-rack capacity ``c_r`` (free GPUs,
or, when the job sets ``gpus_per_node``, that many per node having them) and pieces of
``p`` GPUs that must each sit in one rack (the job's segment, the whole job under
``required`` locality, or single GPUs), the fewest racks are the smallest ``k`` such that
the ``k`` largest values of ``c_r // p`` sum to at least ``gpus / p``. Taking the largest
racks first is optimal for a covering count, so the figure is exact, not an estimate.

Invariant: for any placement the placer returns on the same free map,
``racks_spanned(placement) >= fewest_racks_free(job, free)``; equality is what the placer
promises when ``keep_blocks`` is off.
"""

from __future__ import annotations

from gpulease.domain.models import JobSpec
from gpulease.scheduler.placement import FreeMap, rack_capacity, rack_piece


def fewest_racks_free(job: JobSpec, free: FreeMap) -> int:
    """Fewest racks ``job`` could span on ``free``; 0 if it cannot be placed there at all."""
    gpn = job.gpus_per_node
    piece = rack_piece(job) or 1
    caps = rack_capacity(free, gpn)
    if gpn is not None and piece == 1:
        piece = gpn  # whole nodes are the unit then
    units = sorted((cap // piece for cap in caps), reverse=True)
    need = -(-job.gpus // piece)
    covered = 0
    for count, have in enumerate(units, start=1):
        covered += have
        if covered >= need:
            return count
    return 0
