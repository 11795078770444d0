"""The limiter itself: fixed windows on a clock the test drives, bounded memory."""

from __future__ import annotations

from gpulease.api.ratelimit import FixedWindowLimit, whole_seconds


class Seconds:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_blocked_for_the_rest_of_its_window_and_refusals_do_not_extend_it() -> None:
    clock = Seconds()
    limit = FixedWindowLimit(3, 60.0, clock)
    assert [limit.hit("a") for _ in range(3)] == [None, None, None]
    clock.now += 20
    assert limit.hit("a") == 40.0
    assert limit.wait("a") == 40.0
    assert limit.hit("b") is None  # keys are independent
    clock.now += 39.5
    assert limit.hit("a") == 0.5
    assert whole_seconds(0.5) == 1
    clock.now += 0.5  # the window opened at the first hit has closed
    assert limit.wait("a") is None
    assert limit.hit("a") is None


def test_memory_stays_bounded_and_closed_windows_are_dropped() -> None:
    clock = Seconds()
    limit = FixedWindowLimit(5, 60.0, clock, max_keys=100)
    for n in range(10_000):
        limit.hit(f"198.51.100.{n}")
    assert len(limit) == 100  # the least recently used went first
    clock.now += 61
    limit.hit("203.0.113.1")
    assert len(limit) == 1  # every closed window expired
