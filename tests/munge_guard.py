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
"""

from __future__ import annotations

import pytest

from support.slurm_host import running_munged, stop_munged_started_since

_BEFORE = pytest.StashKey[int | None]()


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # xdist sets workerinput on its workers only


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session.config):
        session.config.stash[_BEFORE] = running_munged()


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _is_controller(config) and _BEFORE in config.stash:
        stop_munged_started_since(config.stash[_BEFORE])
