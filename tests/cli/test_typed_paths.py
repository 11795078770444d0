"""What a person types as an id is sent as one path segment, whatever characters it holds.

Without quoting, ``gpulease job show ../leases`` asked for ``/jobs/../leases`` (which the
HTTP client folds to ``/leases``), and ``?`` or ``#`` cut the path: a typed reference could
reach another route than the command's. Each command must answer for exactly what was typed
(a reference holding ``/`` is refused by the server's router: it decodes ``%2F`` before
routing, so such a reference can never name a record; it never reaches another route).
"""

from __future__ import annotations

import pytest
from cli_support import Cli

# "%2e%2e" is checked against the real server (tests/e2e/test_cli_e2e.py): Starlette's
# TestClient decodes a path twice, which a real server does not.
TYPED = ["../leases", "x?limit=1", "a#b", "a/b"]
COMMANDS = [
    ("inftech", ("job", "show"), "job"),
    ("inftech", ("job", "logs"), "job"),
    ("inftech", ("job", "cancel"), "job"),
    ("inftech", ("lease", "show"), "lease"),
    ("officer", ("kyc", "show"), "kyc case"),
    ("operator", ("report", "gpu"), "gpu"),
    ("operator", ("tokens", "revoke"), "token"),
    ("operator", ("users", "disable"), "user"),
]


@pytest.mark.parametrize("typed", TYPED)
@pytest.mark.parametrize(("who", "command", "kind"), COMMANDS, ids=lambda c: str(c))
def test_a_typed_reference_is_one_path_segment(
    cli: Cli, who: str, command: tuple[str, ...], kind: str, typed: str
) -> None:
    extra = ("--reason", "test") if command[-1] in {"cancel", "revoke", "disable"} else ()
    run = cli(who, *command, typed, *extra, check=False)
    assert run.exit_code == 2, (run.stdout, run.stderr)
    assert "not_found" in run.stderr, run.stderr
    assert run.stdout == "", run.stdout  # nothing of another route was shown
    if "/" in typed:
        # The server routes on the decoded path, so an encoded "/" still splits it: the
        # answer is that no such route exists, never another route's records.
        assert "no route" in run.stderr, run.stderr
    else:
        assert repr(typed) in run.stderr, run.stderr
