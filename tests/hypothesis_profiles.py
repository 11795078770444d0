"""Hypothesis profiles of the suite and the example budget of each property test (a pytest
plugin loaded by the root conftest through ``pytest_plugins``).

Two profiles, chosen by the environment variable ``GPULEASE_HYPOTHESIS`` (read when the
test session starts):

* ``make-test`` (the default; ``make test``, ``make test-fast``): each property test runs
  the examples it names with :func:`examples`, a count chosen so that the whole suite
  stays within its time on two cores while every branch the test's ``event()`` statistics
  show is still reached in a typical run (``pytest --hypothesis-show-statistics``). Runs
  are not derandomized: each run draws new examples, so the runs of a day together cover
  far more than one; a failure found once is saved in ``.hypothesis/`` and replayed first
  by every later run on that clone until it passes;
* ``nightly`` (``GPULEASE_HYPOTHESIS=nightly make test``, or ``make test-nightly``): every
  count multiplied by :data:`NIGHTLY_FACTOR`, at least the counts these tests ran with
  before they had a budget.

Both profiles: no deadline and no ``too_slow`` health check, since timing never decides a
test on a loaded machine (a slow example is not a failure); a failure prints the blob that
reproduces it (``@reproduce_failure``).

Invariant: a test's ``@settings(max_examples=examples(n))`` is the only place its count is
written; the profile scales it, never a test on its own.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "GPULEASE_HYPOTHESIS"
MAKE_TEST = "make-test"
NIGHTLY = "nightly"
NIGHTLY_FACTOR = 10

_COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(MAKE_TEST, _COMMON)
settings.register_profile(NIGHTLY, _COMMON, max_examples=100 * NIGHTLY_FACTOR)

PROFILE = os.environ.get(PROFILE_ENV, MAKE_TEST)
if PROFILE not in (MAKE_TEST, NIGHTLY):
    raise ValueError(f"{PROFILE_ENV}={PROFILE!r}: say {MAKE_TEST!r} or {NIGHTLY!r}")
settings.load_profile(PROFILE)


def examples(make_test: int) -> int:
    """The examples a property test runs: ``make_test`` under ``make test``, that times
    :data:`NIGHTLY_FACTOR` under the nightly profile."""
    if make_test < 1:
        raise ValueError(f"a property test runs at least one example, not {make_test}")
    return make_test * NIGHTLY_FACTOR if PROFILE == NIGHTLY else make_test


def pytest_report_header() -> str:
    return f"hypothesis profile: {PROFILE} ({PROFILE_ENV})"
