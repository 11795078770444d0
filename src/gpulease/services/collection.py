"""When the scheduler collects cyclic garbage: between passes, never inside one.

Design. CPython's cyclic collector runs whenever allocations cross its thresholds, so a
collection of the young generations (60-100 ms at a 100,000-job site, measured with
``gc.callbacks``) lands inside whichever pass happens to allocate past them, and sets the
passes' tail. The scheduler's passes are short and a second apart, so the collector waits
for the pause between them: :func:`collected_after` turns automatic collection off for the
pass and, once it has ended, collects the young generations, and every
:data:`FULL_EVERY` passes all of them (objects frozen after a rebuild are never scanned).

A rebuild asks (:func:`freeze_after_pass`) for the new kept state to be frozen out of later
collections; that happens after the pass too, after a full collection of everything (frozen
objects included: the state the rebuild replaced is garbage now), so that no garbage is
frozen with it. That collection scans the whole kept state (1 to 1.85 s at 30,000 queued
jobs), so it is kept for rebuilds, which are rare (leadership taken, admission changed, a
divergence repaired). A consistency check that found the kept state right asks only for
the objects kept since the last freeze (the records of new jobs) to join the frozen ones
(:func:`refreeze_after_pass`): a collection of the unfrozen generations (what the periodic
full collection scans anyway), then a freeze, never scanning the frozen state again.

Invariants. A full freeze (unfreeze, collect everything, freeze) wins over a refreeze asked
in the same pass. Automatic collection is on again whenever no pass runs, whatever a pass
raised, so API threads in the same process are never left without a collector for longer
than a pass; garbage made by a pass is collected right after it, so memory stays bounded by
one pass's cycles. Reference counting, which frees almost everything, is untouched.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FULL_EVERY = 60  # passes between full collections (about a minute at the default interval)

_lock = threading.Lock()
_passes = 0
_freeze_requested = False
_refreeze_requested = False


def freeze_after_pass() -> None:
    """Ask for the objects alive after this pass to be frozen out of later collections
    (a rebuild's new kept state), once all garbage, frozen or not, has been collected."""
    global _freeze_requested
    with _lock:
        _freeze_requested = True


def refreeze_after_pass() -> None:
    """Ask for the objects kept since the last freeze to be frozen too, once the unfrozen
    generations' garbage has been collected (the frozen objects are not scanned)."""
    global _refreeze_requested
    with _lock:
        _refreeze_requested = True


@contextmanager
def collected_after() -> Iterator[None]:
    """Run the block with automatic collection off, then collect (see the module docstring)."""
    global _passes
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        global _freeze_requested, _refreeze_requested
        with _lock:
            _passes += 1
            full = _passes % FULL_EVERY == 0
            freeze, _freeze_requested = _freeze_requested, False
            refreeze, _refreeze_requested = _refreeze_requested, False
        if freeze:  # collect everything first, or garbage alive now stays frozen for good
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        elif refreeze:  # the unfrozen generations only: the frozen state is not scanned
            gc.collect()
            gc.freeze()
        else:
            gc.collect(2 if full else 1)
