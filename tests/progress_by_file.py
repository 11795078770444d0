"""Progress by test file: one line when a file's last test has finished, instead of a dot per
test (loaded by the root conftest through ``pytest_plugins``).

    tests/api/test_api_flows.py                      20 passed          14.2 s   [ 312/1,327]

Under pytest-xdist the lines come from the controller as the workers report (with
``--dist loadfile`` a file runs on one worker, so its line is printed when that worker
finishes it); without xdist they come from the one process. Only under ``-q`` (the
project's default, pyproject.toml): without it pytest names the files itself. The summary
at the end is pytest's, unchanged: this plugin only replaces the dots of passed and skipped
tests (a failure's letter is still printed, before its file's line).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


@dataclass
class _File:
    tests: int = 0
    done: int = 0
    started: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)


class ProgressByFile:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.files: dict[str, _File] = {}
        self.total = 0
        self.finished = 0
        self.worst: dict[str, str] = {}  # nodeid -> its outcome so far
        self.letters = False  # pytest printed a letter (a failure) on the current line

    # ------------------------------------------------------------------ what will run
    def expect(self, nodeids: list[str]) -> None:
        if self.total:  # every xdist worker reports the same collection
            return
        for nodeid in nodeids:
            self.files.setdefault(nodeid.split("::", 1)[0], _File()).tests += 1
        self.total = len(nodeids)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if not hasattr(self.config, "workerinput"):
            self.expect([item.nodeid for item in items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self.expect(list(ids))

    # ------------------------------------------------------------------ what ran
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        if hasattr(report, "wasxfail"):
            return None
        if report.passed and report.when == "call":
            return "passed", "", "PASSED"  # the file's line stands for the dot
        if report.skipped:
            return "skipped", "", "SKIPPED"
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = report.nodeid.split("::", 1)[0]
        entry = self.files.setdefault(path, _File())
        if not entry.started:
            entry.started = time.monotonic()
        outcome = self._outcome(report)
        if outcome in ("failed", "error", "xpassed"):
            self.letters = True
        if outcome is not None and self.worst.get(report.nodeid) in (None, "passed"):
            self.worst[report.nodeid] = outcome
        if report.when != "teardown":
            return
        entry.done += 1
        self.finished += 1
        entry.outcomes[self.worst.pop(report.nodeid, "passed")] += 1
        if entry.done >= entry.tests:
            self._line(path, entry)

    @staticmethod
    def _outcome(report: pytest.TestReport) -> str | None:
        if hasattr(report, "wasxfail"):
            return "xfailed" if report.skipped else "xpassed"
        if report.failed:
            return "failed" if report.when == "call" else "error"
        if report.skipped:
            return "skipped"
        return "passed" if report.when == "call" else None

    def _line(self, path: str, entry: _File) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        counts = ", ".join(f"{entry.outcomes[o]} {o}" for o in OUTCOMES if entry.outcomes[o])
        seconds = time.monotonic() - entry.started
        width = len(f"{self.total:,}")
        progress = f"[{self.finished:>{width},}/{self.total:,}]"
        if self.letters:
            reporter.write("\n")
            self.letters = False
        reporter.write_line(f"{path:<52} {counts:<24} {seconds:6.1f} s   {progress}")


def pytest_configure(config: pytest.Config) -> None:
    if config.option.verbose >= 0 or hasattr(config, "workerinput"):
        return  # without -q pytest names the files itself; an xdist worker: the controller

    config.pluginmanager.register(ProgressByFile(config), "progress-by-file")
