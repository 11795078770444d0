"""Stop, once, the ``munged`` that this test run started (a pytest plugin).

The Slurm tests need ``munged``; a test cluster starts it when it is not running
(``support.slurm_host.ensure_munge``) and never stops it, because under ``pytest-xdist``
several workers (each with its own cluster, and the node-failure test with another) share
the one ``munged`` of the host: a worker that stopped "its" munged would pull it from under
another worker's cluster, and each worker seeing a different "before" let one outlive the
suite.

So the controlling process (the only process under plain ``pytest``; the xdist controller,
which finishes after every worker, under ``-n N``) notes the ``munged`` running when the
session starts and, when the session ends, stops the one running then if it is a different
process: a ``munged`` that ran before the tests is left alone, one they started is stopped.

Several test runs on one host (two clones, or one run beside a benchmark's) share the one
``munged`` too: each controlling process registers itself in
``support.slurm_host.MUNGE_USERS_DIR`` while its session lasts, and ``ensure_munge`` notes
there the pid of the ``munged`` it started. A run that ends while another live run is
registered leaves ``munged`` to it; the last one out stops it if it is not the one that ran
before this run, or if a test run started it (so a run that began after another started
``munged`` does not leave it behind).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from support.slurm_host import (
    MUNGE_STARTED,
    MUNGE_USERS_DIR,
    pid_alive,
    running_munged,
    stop_munged_started_since,
)

_BEFORE = pytest.StashKey[int | None]()


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # xdist sets workerinput on its workers only


def _registration() -> Path:
    return MUNGE_USERS_DIR / str(os.getpid())


def _other_live_runs() -> list[int]:
    try:
        names = [p.name for p in MUNGE_USERS_DIR.iterdir()]
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit() and int(n) != os.getpid() and pid_alive(int(n))]


def _started_by_a_run() -> int | None:
    try:
        text = MUNGE_STARTED.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session.config):
        session.config.stash[_BEFORE] = running_munged()
        with contextlib.suppress(OSError):  # nowhere to write: the single-run rule alone
            MUNGE_USERS_DIR.mkdir(parents=True, exist_ok=True)
            _registration().write_text("")


def munged_to_stop(
    running: int | None, before: int | None, started_by_a_run: int | None, others: bool
) -> int | None:
    """The munged a run that ends stops (None: none): the one ``running`` now, unless
    another live test run is registered (``others``) or it is the one that ran ``before``
    this run and no test run started it."""
    if running is None or others:
        return None
    if running == before and running != started_by_a_run:
        return None
    return running


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not _is_controller(config) or _BEFORE not in config.stash:
        return
    with contextlib.suppress(OSError):
        _registration().unlink()
    running = running_munged()
    stop = munged_to_stop(
        running, config.stash[_BEFORE], _started_by_a_run(), bool(_other_live_runs())
    )
    if stop is not None:
        stop_munged_started_since(None)  # the one running, checked again by its pid file
