"""Which munged a test run stops when it ends (tests/munge_guard.py), with other runs on the
host: the decision alone (starting and stopping the host's real munged here would pull it
from under another run's Slurm cluster)."""

from __future__ import annotations

from munge_guard import munged_to_stop

SYSTEM, OURS = 101, 202


def test_a_munged_that_ran_before_and_no_run_started_is_left_alone() -> None:
    assert munged_to_stop(SYSTEM, before=SYSTEM, started_by_a_run=None, others=False) is None
    assert munged_to_stop(SYSTEM, before=SYSTEM, started_by_a_run=OURS, others=False) is None


def test_the_munged_this_run_started_is_stopped_when_no_other_run_is_alive() -> None:
    assert munged_to_stop(OURS, before=None, started_by_a_run=OURS, others=False) == OURS
    assert munged_to_stop(OURS, before=None, started_by_a_run=None, others=False) == OURS


def test_while_another_run_is_alive_nothing_is_stopped() -> None:
    assert munged_to_stop(OURS, before=None, started_by_a_run=OURS, others=True) is None


def test_the_last_run_out_stops_the_munged_an_earlier_run_started() -> None:
    # this run began while another run's munged was running: it was there "before", but a
    # test run started it, so the last run out stops it instead of leaving it behind
    assert munged_to_stop(OURS, before=OURS, started_by_a_run=OURS, others=False) == OURS


def test_no_munged_running_nothing_to_stop() -> None:
    assert munged_to_stop(None, before=SYSTEM, started_by_a_run=OURS, others=False) is None
