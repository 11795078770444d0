"""Run ``python -m gpulease.cli ARGS`` under cProfile and write its stats to a file:
``python _profiled.py OUT ARGS`` (``bench_submit.py --profile OUT`` serves the API so).
The profile covers the main thread, where uvicorn's event loop runs the submissions."""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from typing import Any


def _stop(_signal: int, _frame: Any) -> None:
    raise SystemExit(0)


out = sys.argv.pop(1)
# uvicorn shuts down on TERM, restores the handler it found and raises TERM again: this one
# ends the run with the stats written
signal.signal(signal.SIGTERM, _stop)
profile = cProfile.Profile(time.thread_time)  # CPU time: the machine is shared
profile.enable()
try:
    runpy.run_module("gpulease.cli", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(out)
