"""The scheduler's collector runs between passes, never inside one (services/collection.py)."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest

from gpulease.executors.simulated import SimulatedExecutor
from gpulease.services import demo as demo_service
from gpulease.services.collection import collected_after, freeze_after_pass, refreeze_after_pass
from gpulease.services.context import ServiceContext
from gpulease.services.scheduler_loop import SchedulerLoop
from gpulease.services.scheduling import LiveScheduler


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def _cycles(n: int) -> list[weakref.ref[_Node]]:
    return [weakref.ref(_Node()) for _ in range(n)]


class _Watch:
    """Records the collections that start while ``inside`` is set (with ``passes``, the
    number of the pass they started in)."""

    def __init__(self) -> None:
        self.inside = False
        self.passes = 0
        self.during: list[tuple[int, int]] = []
        self.after: list[int] = []

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            if self.inside:
                self.during.append((self.passes, info["generation"]))
            else:
                self.after.append(info["generation"])


@pytest.fixture
def watch() -> Any:
    seen = _Watch()
    gc.callbacks.append(seen)
    try:
        yield seen
    finally:
        gc.callbacks.remove(seen)


def test_no_collection_inside_the_block_and_its_cycles_freed_after(watch: _Watch) -> None:
    assert gc.isenabled()
    threshold = gc.get_threshold()[0]
    with collected_after():
        watch.inside = True
        garbage = _cycles(threshold * 5)  # far past the young generation's threshold
        assert not gc.isenabled()
        watch.inside = False
    assert watch.during == []
    assert watch.after  # the collection after the block
    assert all(ref() is None for ref in garbage)
    assert gc.isenabled()


def test_a_block_that_raises_still_collects_and_turns_the_collector_back_on() -> None:
    garbage: list[weakref.ref[_Node]] = []

    def failing_pass() -> None:
        with collected_after():
            garbage.extend(_cycles(1000))
            raise RuntimeError("a failed pass")

    with pytest.raises(RuntimeError):
        failing_pass()
    assert gc.isenabled()
    assert all(ref() is None for ref in garbage)


def test_a_refreeze_collects_only_the_unfrozen_and_a_freeze_everything() -> None:
    gc.collect()
    old = _Node()  # frozen, then dropped: only a collection of the frozen objects frees it
    gc.freeze()
    frozen_garbage = weakref.ref(old)
    del old
    try:
        with collected_after():
            young = _cycles(100)  # garbage made since the freeze
            kept = _Node()  # alive: frozen by the refreeze
            refreeze_after_pass()
        assert all(ref() is None for ref in young)
        assert frozen_garbage() is not None  # the frozen objects were not scanned
        assert gc.is_tracked(kept)
        assert gc.get_freeze_count() > 0
        del kept
        with collected_after():
            freeze_after_pass()  # a rebuild's: everything collected, frozen ones included
        assert frozen_garbage() is None
    finally:
        gc.unfreeze()


class _AllocatingScheduler(LiveScheduler):
    """The real scheduler, whose passes also make cyclic garbage and note the collector."""

    def __init__(self, *args: Any, watch: _Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = watch
        self.enabled_in_pass: list[bool] = []
        self.garbage: list[weakref.ref[_Node]] = []

    def tick(self) -> Any:
        self.watch.inside = True
        self.watch.passes += 1
        try:
            self.enabled_in_pass.append(gc.isenabled())
            self.garbage.extend(_cycles(gc.get_threshold()[0] * 3))
            return super().tick()
        finally:
            self.watch.inside = False


def test_the_loop_collects_between_passes(
    ctx: ServiceContext, demo: list[demo_service.DemoUser], watch: _Watch
) -> None:
    gc.unfreeze()  # whatever earlier tests froze: this test's rebuild must freeze anew
    scheduler = _AllocatingScheduler(ctx, SimulatedExecutor(), name="gc", watch=watch)
    loop = SchedulerLoop(scheduler, interval_s=0.05)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while len(scheduler.enabled_in_pass) < 3:
            assert time.monotonic() < deadline, "no passes"
            time.sleep(0.02)
    finally:
        loop.stop()
    assert scheduler.enabled_in_pass
    assert not any(scheduler.enabled_in_pass)
    assert watch.during == []  # no collection starts inside a pass, the rebuild's included
    assert gc.get_freeze_count() > 0  # the rebuilt state was frozen after its pass
    assert watch.after
    assert all(ref() is None for ref in scheduler.garbage)
    assert gc.isenabled()
