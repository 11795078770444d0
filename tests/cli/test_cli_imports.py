"""The CLI starts without the server's libraries: a remote command needs only HTTP.

A person types ``gpulease job list`` many times a day and the CLI end-to-end tests run it
hundreds of times; importing SQLAlchemy and the services (the report templates do) tripled
its start. Only the commands that work on a database themselves import them, when run.
"""

from __future__ import annotations

import subprocess
import sys

SERVER_SIDE = ("sqlalchemy", "gpulease.services", "gpulease.persistence", "fastapi", "uvicorn")


def test_the_cli_imports_no_server_side_module() -> None:
    probe = (
        "import sys, gpulease.cli.app\n"
        f"loaded = [m for m in sys.modules if m.startswith({SERVER_SIDE!r})]\n"
        "print(','.join(sorted(loaded)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"the CLI imports {out.stdout.strip()} at start"
