#!/usr/bin/env bash
# Run gpulease as deployed: the API server and the scheduler, two processes on one database.
# Ctrl-C (INT) or TERM stops both; if either exits, the other is stopped too. Nothing is
# left running. Usage: scripts/run-both.sh [serve options...]  (GPULEASE_* from the
# environment; GPULEASE_BIN names the gpulease executable, default .venv/bin/gpulease)
set -uo pipefail
bin=${GPULEASE_BIN:-.venv/bin/gpulease}

"$bin" scheduler &
scheduler=$!
"$bin" serve "$@" &
api=$!

stop() {
    trap - INT TERM EXIT
    kill -TERM "$api" "$scheduler" 2>/dev/null
    wait "$api" 2>/dev/null
    wait "$scheduler" 2>/dev/null
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT
wait -n "$api" "$scheduler"
status=$?
echo "gpulease: a process exited (status $status); stopping the other" >&2
exit "$status"
