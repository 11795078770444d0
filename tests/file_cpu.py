"""CPU time by test file, for measuring the suite on a loaded machine (a pytest plugin loaded
by the root conftest; it does nothing unless ``GPULEASE_TEST_CPU`` names a file).

    GPULEASE_TEST_CPU=/tmp/cpu.jsonl make test
    python tests/file_cpu.py /tmp/cpu.jsonl          # a table, heaviest file first
    python tests/file_cpu.py --weights /tmp/cpu.jsonl > tests/file_weights.json

Wall time per file depends on what else the machine runs; CPU time much less. Each process
that runs tests (each xdist worker, or the one process) adds, per test, the CPU it used
running the test's setup, call and teardown: its own (every thread) and that of the
children it waited for in that time (servers, CLI runs, Slurm daemons, a browser; a child
counts once reaped). When a file's last test ends it appends one JSON line to the named
file: ``{"file", "tests", "cpu_s", "children_s", "wall_s", "worker"}`` (a file that a worker
ran in two pieces has two lines, added up by the table). A session fixture is counted in
the file whose test first asked for it.

``--weights`` prints instead the wall seconds of every file, longest first: the weights by
which tests/conftest.py orders the files (a file's wall time, not its CPU, is what it keeps
a worker busy).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "GPULEASE_TEST_CPU"


def _times() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


class FileCpu:
    def __init__(self, out: Path, rootdir: Path) -> None:
        self.out = out
        self.rootdir = rootdir
        self.current: str | None = None
        self.entry = [0, 0.0, 0.0, 0.0]  # tests, own CPU, children's CPU, wall

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Iterator[None]:
        own, children = _times()
        wall = time.monotonic()
        yield
        own2, children2 = _times()
        path = str(item.path.relative_to(self.rootdir))
        if path != self.current:
            self.current, self.entry = path, [0, 0.0, 0.0, 0.0]
        self.entry[0] += 1
        self.entry[1] += own2 - own
        self.entry[2] += children2 - children
        self.entry[3] += time.monotonic() - wall
        if nextitem is None or nextitem.path != item.path:
            self._write(path)

    def _write(self, path: str) -> None:
        """One line per file as it ends (a run stopped half-way keeps what it measured)."""
        tests, cpu, kids, wall = self.entry
        line = {"file": path, "tests": tests, "cpu_s": round(cpu, 2)}
        line |= {"children_s": round(kids, 2), "wall_s": round(wall, 2)}
        line |= {"worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}
        with self.out.open("a") as out:
            out.write(json.dumps(line) + "\n")
        self.current = None


def pytest_configure(config: pytest.Config) -> None:
    target = os.environ.get(ENV)
    if target:
        config.pluginmanager.register(FileCpu(Path(target), config.rootpath), "file-cpu")


def _rows(path: str) -> list[dict[str, float]]:
    merged: dict[str, dict[str, float]] = {}
    for line in Path(path).read_text().splitlines():
        if line:
            row = json.loads(line)
            into = merged.setdefault(
                row["file"], dict.fromkeys(("tests", "cpu_s", "children_s", "wall_s"), 0.0)
            )
            for key in into:
                into[key] += row[key]
    return [{"file": f, **r} for f, r in merged.items()]  # type: ignore[dict-item]


def main(path: str) -> None:
    """Print the table of a ``GPULEASE_TEST_CPU`` file: heaviest file first, with totals."""
    rows = _rows(path)
    rows.sort(key=lambda r: -(r["cpu_s"] + r["children_s"]))
    total_cpu = sum(r["cpu_s"] + r["children_s"] for r in rows)
    print(f"{'file':<56} {'tests':>5} {'cpu s':>7} {'of which children':>18} {'wall s':>7}")
    for r in rows:
        cpu = r["cpu_s"] + r["children_s"]
        kids, wall = r["children_s"], r["wall_s"]
        print(f"{r['file']:<56} {r['tests']:>5.0f} {cpu:7.1f} {kids:18.1f} {wall:7.1f}")
    wall = sum(r["wall_s"] for r in rows)
    print(
        f"{'total':<56} {sum(r['tests'] for r in rows):>5.0f} {total_cpu:7.1f} {'':>18} {wall:7.1f}"
    )


def weights(path: str) -> None:
    ordered = sorted(((r["file"], r["wall_s"]) for r in _rows(path)), key=lambda x: -x[1])
    print(json.dumps({f: round(s, 1) for f, s in ordered}, indent=0))


if __name__ == "__main__":
    if sys.argv[1] == "--weights":
        weights(sys.argv[2])
    else:
        main(sys.argv[1])
