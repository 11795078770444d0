"""``gpulease ledger``: verify the ledger, export it, sign and show heads, rotate the key.

Run on a host with the database (and, to sign, the key directory): these commands open the
database themselves, as ``gpulease init`` does, instead of asking the API.

``verify-bundle`` is the auditor's command and needs nothing of the operator's: it reads
one bundle file and imports only the pure ledger core (``gpulease.ledger``), no database,
settings or server code. ``python -m gpulease.cli.ledger verify-bundle FILE`` runs it with
the standard library's argument parser alone. Exit status: 0 verified, 1 a finding (the
first bad record is named), 2 a file that is not a bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gpulease.ledger.bundle import Report
    from gpulease.services.context import ServiceContext

ledger_app = typer.Typer(
    help="The tamper-evident ledger of audit records (docs/ledger.md).", no_args_is_help=True
)


# ------------------------------------------------------------------ offline (auditor)
def check_bundle(
    path: Path, *, trusted_keys: Path | None = None, known_heads: Path | None = None
) -> tuple[int, dict[str, Any]]:
    """Verify a bundle file; returns (exit status, what to print). Imports the core only."""
    from gpulease.domain.errors import DomainError
    from gpulease.ledger.bundle import Bundle, verify_bundle
    from gpulease.ledger.heads import KeyPeriod, SignedTreeHead
    from gpulease.ledger.rotation import KeyChain

    try:
        data = path.read_bytes()
        keys = None
        if trusted_keys is not None:
            keys = [KeyPeriod.from_json(k) for k in json.loads(trusted_keys.read_text())]
        heads = []
        if known_heads is not None:
            heads = [
                SignedTreeHead.from_json(json.loads(line))
                for line in known_heads.read_text().splitlines()
                if line.strip()
            ]
        bundle = Bundle.loads(data)
        report = verify_bundle(bundle, trusted_keys=keys, known_heads=heads)
    except (OSError, ValueError, DomainError) as error:
        message = getattr(error, "message", None) or str(error)
        return 2, {"ok": False, "error": f"{path}: {message}"}
    chain = KeyChain()  # the keys as the bundle's own records created and rotated them
    for position, record in enumerate(bundle.records):
        if isinstance(record, dict):
            chain.see(position, record)
    chain.check_periods(bundle.keys if keys is None else keys)
    result = _report_json(report)
    result["findings"] += [
        {"kind": kind, "position": position, "message": message}
        for kind, message, position in chain.problems
    ]
    result["warnings"] = chain.warnings
    result["ok"] = report.ok and not chain.problems
    return (0 if result["ok"] else 1), result


def _report_json(report: Report) -> dict[str, Any]:
    first = report.first_bad_record
    return {
        "ok": report.ok,
        "summary": report.summary(),
        "records": report.record_count,
        "covered": report.covered,
        "heads": list(report.verified_heads),
        "key_ids": list(report.key_ids),
        "first_bad_record": None
        if first is None
        else {"kind": first.kind.value, "position": first.index, "message": first.message},
        "findings": [
            {"kind": f.kind.value, "position": f.index, "message": f.message}
            for f in report.findings
        ],
    }


def _print_check(status: int, result: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print(json.dumps(result, indent=2))
    elif "error" in result:
        print(result["error"], file=sys.stderr)
    elif result["ok"]:
        print(result["summary"])
        print("keys: " + ", ".join(result["key_ids"]))
    else:
        first = result["first_bad_record"]
        if first is not None:
            print(f"first bad record: {first['message']}")
        for finding in result["findings"]:
            print(f"- {finding['message']}")
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")


TrustedKeys = Annotated[
    Path | None,
    typer.Option(help="A JSON list of key periods to trust instead of the bundle's own."),
]
KnownHeads = Annotated[
    Path | None,
    typer.Option(help="Heads kept from earlier publications (JSON lines) to check it against."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@ledger_app.command("verify-bundle")
def verify_bundle_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle file (`gpulease ledger export`).")],
    trusted_keys: TrustedKeys = None,
    known_heads: KnownHeads = None,
    json_out: JsonFlag = False,
) -> None:
    """Auditor: verify an exported bundle offline, with nothing but the bundle."""
    status, result = check_bundle(bundle, trusted_keys=trusted_keys, known_heads=known_heads)
    _print_check(status, result, json_out)
    raise typer.Exit(status)


# ------------------------------------------------------------------ on the operator's host
def _context() -> ServiceContext:
    from gpulease.services.setup import open_context
    from gpulease.settings import Settings

    return open_context(Settings())


@ledger_app.command("verify")
def verify_command(json_out: JsonFlag = False) -> None:
    """Check the whole ledger against the database; name the first bad record."""
    from gpulease.services import ledger

    ctx = _context()
    try:
        verdict = ledger.verify(ctx)
    finally:
        ctx.db.dispose()
    first = verdict.first_bad_record
    if json_out:
        print(
            json.dumps(
                {
                    "ok": verdict.ok,
                    "summary": verdict.summary(),
                    "size": verdict.size,
                    "covered": verdict.covered,
                    "heads": list(verdict.heads),
                    "key_ids": list(verdict.key_ids),
                    "first_bad_record": None if first is None else _problem(first),
                    "problems": [_problem(p) for p in verdict.problems],
                    "warnings": list(verdict.warnings),
                },
                indent=2,
            )
        )
    else:
        print(verdict.summary())
        for problem in verdict.problems:
            print(f"- {problem.message}")
        for warning in verdict.warnings:
            print(f"warning: {warning}")
    raise typer.Exit(0 if verdict.ok else 1)


def _problem(problem: Any) -> dict[str, Any]:
    return {
        "kind": problem.kind,
        "position": problem.position,
        "audit_id": problem.audit_id,
        "message": problem.message,
    }


@ledger_app.command("export")
def export_command(
    out: Annotated[Path, typer.Argument(help="Where to write the bundle (a new file).")],
) -> None:
    """Write the ledger as a bundle (records, signed heads, public keys) for an auditor."""
    from gpulease.services import ledger

    ctx = _context()
    try:
        bundle = ledger.export(ctx)
    finally:
        ctx.db.dispose()
    with out.open("xb") as handle:  # never overwrite
        handle.write(bundle.dumps())
    print(f"{out}: {len(bundle.records)} records, {len(bundle.heads)} signed heads")


@ledger_app.command("head")
def head_command(
    sign: Annotated[bool, typer.Option(help="Sign a head over the ledger now.")] = False,
    size: Annotated[int | None, typer.Option(min=1, help="The head of this size.")] = None,
) -> None:
    """Show the latest signed head (or one by size); --sign signs one now and publishes it."""
    from gpulease.services import ledger

    ctx = _context()
    try:
        signed = ledger.sign_head(ctx) if sign else ledger.latest_head(ctx, size)
    finally:
        ctx.db.dispose()
    print(json.dumps(None if signed is None else signed.to_json(), indent=2))


@ledger_app.command("rotate-key")
def rotate_key_command(
    reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")] = "",
    unendorsed: Annotated[
        bool,
        typer.Option(help="The old key file was lost: rotate without its endorsement."),
    ] = False,
) -> None:
    """Start a new signing key, endorsed by the old one; recorded in the ledger itself."""
    from gpulease.services import ledger

    ctx = _context()
    try:
        old, new = ledger.rotate_key(ctx, reason=reason[:1000], endorsed=not unendorsed)
    finally:
        ctx.db.dispose()
    print(f"rotated: {old} -> {new}")


def main(argv: list[str] | None = None) -> int:
    """``python -m gpulease.cli.ledger verify-bundle FILE``: the standard library only."""
    parser = argparse.ArgumentParser(prog="python -m gpulease.cli.ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify-bundle", help="verify an exported bundle offline")
    check.add_argument("bundle", type=Path)
    check.add_argument("--trusted-keys", type=Path)
    check.add_argument("--known-heads", type=Path)
    check.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    status, result = check_bundle(
        args.bundle, trusted_keys=args.trusted_keys, known_heads=args.known_heads
    )
    _print_check(status, result, args.json)
    return status


if __name__ == "__main__":
    sys.exit(main())
