"""Copying a run's output into its log file: capped on disk, never blocking the run.

Design. A local run's standard output and error are one pipe. The executor keeps the read
end and gives it to a :class:`LogPump`: one daemon thread per run that drains the pipe as
fast as the run writes, so the run never stalls on a full pipe whatever the scheduler is
doing. The log file is opened by the server (append, owner-only, in a directory only the
server's user can enter) and held by the pump alone; the run never holds it, so it can
neither read another run's log nor rewrite or grow its own past the cap.

Invariants.

* At most ``cap`` bytes of the run's output reach the file. The first byte past the cap
  writes one line ``[gpulease] log cut at <cap> bytes``; the rest of the output is drained
  and discarded (``os.splice`` into ``/dev/null``: the kernel moves it, Python never copies
  it), and the run goes on undisturbed: printing too much is neither fatal nor blocking.
* A file that cannot be written (a full disk) stops the copying, never the draining.
* The executor's own lines (:meth:`LogPump.note`: a preemption warning, a stop) are written
  whole and are not counted against the cap; there are a few short ones per run.
* Every write to the file holds one lock, so a note never splits a chunk of the run's output.
* :meth:`LogPump.finish` waits for end of file (every writer of the pipe gone); a pipe still
  held after that (a process that escaped the run's session) is abandoned: the pump stops
  reading and closes its end, and the escapee's next write fails.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading

CHUNK = 1 << 16  # bytes read from the pipe at a time
DISCARD_CHUNK = 1 << 20  # bytes spliced to /dev/null at a time once the cap is reached
POLL_MS = 200  # how often an idle pump checks whether it was abandoned
ABANDON_WAIT_S = 2.0  # how long ``finish`` waits for an abandoned pump thread to notice


class LogPump:
    """Drains ``source_fd`` (a pipe's read end) into ``log_fd`` (appending), up to ``cap``
    bytes of output. Owns both descriptors from construction: ``close`` closes the log, the
    thread closes the pipe when it ends."""

    def __init__(self, source_fd: int, log_fd: int, cap: int, name: str) -> None:
        self.cap = cap
        self.kept = 0  # bytes of the run's output in the file
        self.cut = False  # output past the cap was discarded
        self.broken: OSError | None = None  # the file could not be written
        self._source = source_fd
        self._log: int | None = log_fd
        self._ends_line = True  # the file's last byte is a newline (or nothing written yet)
        self._lock = threading.Lock()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._drain, name=f"log-pump {name}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the executor's side
    def note(self, line: str) -> None:
        """Write one of the executor's own lines (``[gpulease] <line>``), outside the cap."""
        with self._lock:
            prefix = "" if self._ends_line else "\n"
            self._write(f"{prefix}[gpulease] {line}\n".encode(errors="replace"))

    def finish(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for end of file; then abandon the pipe. True if
        every writer closed it (all the run's output is in the file)."""
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        self._abandon.set()
        self._thread.join(ABANDON_WAIT_S)
        return False

    def close(self) -> None:
        """Close the log file (after ``finish``); later notes are dropped."""
        with self._lock:
            if self._log is not None:
                with contextlib.suppress(OSError):
                    os.close(self._log)
                self._log = None

    # ------------------------------------------------------------------- the thread's side
    def _drain(self) -> None:
        poller = select.poll()
        poller.register(self._source, select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            while True:
                if not poller.poll(POLL_MS):
                    if self._abandon.is_set():
                        return
                    continue
                moved = self._discard() if self.cut or self.broken else self._copy()
                if moved == 0:
                    return  # end of file: every writer is gone
        except OSError:
            return  # the pipe itself failed: nothing more can be read
        finally:
            os.close(self._source)

    def _copy(self) -> int:
        chunk = os.read(self._source, CHUNK)
        room = self.cap - self.kept
        kept = chunk[:room]
        with self._lock:
            if kept:
                self._write(kept)
                self.kept += len(kept)
            if len(chunk) > len(kept) and not self.cut:
                self.cut = True
                prefix = "" if self._ends_line else "\n"
                self._write(f"{prefix}[gpulease] log cut at {self.cap} bytes\n".encode())
        return len(chunk)

    def _discard(self) -> int:
        try:
            return _splice_to_null(self._source)
        except OSError:
            return len(os.read(self._source, DISCARD_CHUNK))

    def _write(self, data: bytes) -> None:
        """Append ``data`` whole (the caller holds the lock); a failing file is given up."""
        if self._log is None or self.broken is not None:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._log, view)
                view = view[written:]
        except OSError as error:
            self.broken = error
            return
        self._ends_line = data.endswith(b"\n")


_null_fd: int | None = None
_null_lock = threading.Lock()


def _splice_to_null(source: int) -> int:
    """Move up to ``DISCARD_CHUNK`` bytes from the pipe to /dev/null inside the kernel."""
    global _null_fd  # one descriptor for the whole process, opened on first use
    with _null_lock:
        if _null_fd is None:
            _null_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    return os.splice(source, _null_fd, DISCARD_CHUNK)
