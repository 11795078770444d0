"""gpulease leases mirrored as Slurm reservations, for operators who let tenants use Slurm
directly: a tenant's own ``sbatch --reservation=<name>`` then runs on the nodes gpulease
leased to it, in the lease's window, and other users' jobs stay off them.

Design. Executor-side primitives on :class:`~gpulease.executors.slurm.SlurmExecutor`
(``mirror_reservation``, ``drop_reservation``, ``reservations``) built on the functions
here, each given a ``run`` that runs one client command of the site and returns its
standard output (raising :class:`subprocess.CalledProcessError` on failure). Keeping a
reservation in step with its lease (calling ``mirror_reservation`` again when the lease
changes, ``drop_reservation`` when it ends) is the lease service's.

Invariants.

* The name is derived from the lease id alone (:func:`reservation_name`: the site's job
  prefix then the id, ``gpulease-lease-3f...``), so any leader finds it again, and every
  reservation so named is gpulease's (:func:`lease_of`).
* Idempotent: :func:`mirror` reads the reservation first (``scontrol show reservation``,
  or what the caller has just read of every reservation: one read for a whole sync);
  absent, it is created; present and equal in window, nodes, users, accounts and flags,
  nothing is sent; else only what differs is updated. Times are sent and read in UTC (the
  client runs with ``TZ=UTC``) to the second. A start in the past means ``now`` (Slurm
  refuses past starts, and a started reservation's start cannot move: it is left alone).
  A reservation already started whose lease now starts later is deleted and created anew.
* Flags are compared as gpulease manages them: ``SPEC_NODES``, which Slurm adds to every
  reservation naming its nodes, is ignored; a flag gpulease no longer wants is removed
  (``flags-=``), one it wants added (``flags=`` adds).
* ``users`` and ``accounts``: Slurm lets a job in only if it matches every list given, so
  each list is set exactly (an emptied one is cleared with ``-=``).
* :func:`drop` is idempotent: a reservation already gone is not an error.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

Run = Callable[[Sequence[str]], str]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
IMPLICIT_FLAGS = frozenset({"SPEC_NODES"})  # set by Slurm itself on reservations naming nodes
_LEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GONE = ("not found", "invalid")  # what scontrol says of a reservation that does not exist


class ReservationError(RuntimeError):
    """Slurm refused a reservation change; the message is scontrol's."""


@dataclass(frozen=True, slots=True)
class SlurmReservation:
    """A gpulease reservation as Slurm holds it."""

    name: str
    lease_id: str
    site_id: str
    nodes: tuple[str, ...]  # Slurm node names, sorted
    start: datetime  # UTC
    end: datetime
    users: tuple[str, ...]
    accounts: tuple[str, ...]
    flags: frozenset[str]  # without the implicit ones
    state: str  # ACTIVE (in its window) or INACTIVE


def reservation_name(prefix: str, lease_id: str) -> str:
    if not _LEASE_ID.match(lease_id):
        raise ValueError(f"lease id {lease_id!r} cannot name a Slurm reservation")
    return f"{prefix}{lease_id}"


def lease_of(prefix: str, name: str) -> str | None:
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def expand_hostlist(expression: str) -> list[str]:
    """Slurm's host list (``n[00-02,07],gpu-a``) as names, without a client command."""
    names: list[str] = []
    for item in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", expression):
        parts = re.split(r"\[([^\]]*)\]", item)  # text, ranges, text, ranges, ..., text
        choices: list[list[str]] = []
        for index, part in enumerate(parts):
            if index % 2 == 0:
                choices.append([part])
                continue
            values: list[str] = []
            for bound in part.split(","):
                first, _, last = bound.partition("-")
                if not last:
                    values.append(first)
                    continue
                width = len(first)
                values += [f"{n:0{width}d}" for n in range(int(first), int(last) + 1)]
            choices.append(values)
        names += ["".join(combo) for combo in itertools.product(*choices)]
    return names


def parse_reservations(out: str) -> dict[str, dict[str, str]]:
    """``scontrol -o show reservation`` lines -> name -> fields."""
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(?:^|\s)(\w+)=(\S*)", line))
        if fields.get("ReservationName"):
            found[fields["ReservationName"]] = fields
    return found


def to_reservation(site_id: str, prefix: str, fields: dict[str, str]) -> SlurmReservation:
    name = fields["ReservationName"]
    return SlurmReservation(
        name=name,
        lease_id=lease_of(prefix, name) or name,
        site_id=site_id,
        nodes=tuple(sorted(expand_hostlist(fields.get("Nodes", "")))),
        start=_time(fields.get("StartTime", "")),
        end=_time(fields.get("EndTime", "")),
        users=_names(fields.get("Users", "")),
        accounts=_names(fields.get("Accounts", "")),
        flags=_flags(fields.get("Flags", "")),
        state=fields.get("State", ""),
    )


def show(run: Run, name: str) -> dict[str, str] | None:
    """The fields of reservation ``name``; None if Slurm has none of that name."""
    try:
        out = run(["scontrol", "-o", "show", "reservation", name])
    except subprocess.CalledProcessError as error:
        if any(word in _message(error).lower() for word in _GONE):
            return None
        raise ReservationError(_message(error)) from error
    return parse_reservations(out).get(name)


def mirror(
    run: Run,
    name: str,
    nodes: Iterable[str],
    start: datetime,
    end: datetime,
    users: Sequence[str] = (),
    accounts: Sequence[str] = (),
    flags: Iterable[str] = (),
    now: datetime | None = None,
    *,
    known: Mapping[str, dict[str, str]] | None = None,
) -> str:
    """Make reservation ``name`` hold exactly this; what was done: ``created``,
    ``updated``, ``recreated`` or ``unchanged``. ``known``: every reservation as just read
    (``parse_reservations``), so that none is read again; None: read this one."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    start, end = _utc(start), _utc(end)
    want_nodes = tuple(sorted(set(nodes)))
    want_flags = frozenset(f.upper() for f in flags) - IMPLICIT_FLAGS
    if not want_nodes:
        raise ValueError("a reservation needs nodes")
    if not users and not accounts:
        raise ValueError("a reservation needs users or accounts (who may use it)")
    if end <= max(start, now):
        raise ValueError("the reservation's window is over or empty")
    access = [f"users={','.join(users)}"] if users else []
    access += [f"accounts={','.join(accounts)}"] if accounts else []
    create = [
        "scontrol",
        "create",
        "reservation",
        f"reservationname={name}",
        f"nodes={','.join(want_nodes)}",
        f"starttime={'now' if start <= now else _slurm_time(start)}",
        f"endtime={_slurm_time(end)}",
        *access,
        *([f"flags={','.join(sorted(want_flags))}"] if want_flags else []),
    ]
    fields = show(run, name) if known is None else known.get(name)
    if fields is None:
        _change(run, create)
        return "created"
    have = to_reservation("", "", fields)
    if have.start <= now < start:  # started, and the lease now starts later
        drop(run, name)
        _change(run, create)
        return "recreated"
    update = ["scontrol", "update", f"reservationname={name}"]
    changes: list[str] = []
    if have.start > now and have.start != max(start, now):
        changes.append(f"starttime={'now' if start <= now else _slurm_time(start)}")
    if have.end != end:
        changes.append(f"endtime={_slurm_time(end)}")
    if have.nodes != want_nodes:
        changes.append(f"nodes={','.join(want_nodes)}")
    for key, want, got in (("users", users, have.users), ("accounts", accounts, have.accounts)):
        if set(want) == set(got):
            continue
        if want:
            changes.append(f"{key}={','.join(want)}")
        else:
            changes.append(f"{key}-={','.join(got)}")
    if want_flags - have.flags:
        changes.append(f"flags={','.join(sorted(want_flags - have.flags))}")
    unwanted = have.flags - want_flags
    if not changes and not unwanted:
        return "unchanged"
    if changes:
        _change(run, [*update, *changes])
    if unwanted:  # on its own: one flags argument per command
        _change(run, [*update, f"flags-={','.join(sorted(unwanted))}"])
    return "updated"


def drop(run: Run, name: str) -> bool:
    """Delete reservation ``name``; False if there was none."""
    try:
        run(["scontrol", "delete", f"reservationname={name}"])
    except subprocess.CalledProcessError as error:
        if any(word in _message(error).lower() for word in _GONE):
            return False
        raise ReservationError(_message(error)) from error
    return True


# ----------------------------------------------------------------------------- helpers
def _change(run: Run, argv: Sequence[str]) -> None:
    try:
        run(argv)
    except subprocess.CalledProcessError as error:
        raise ReservationError(f"{' '.join(argv[:3])}: {_message(error)}") from error


def _message(error: subprocess.CalledProcessError) -> str:
    text = f"{error.stdout or ''} {error.stderr or ''}".strip()
    return " ".join(text.split()) or str(error)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("reservation times must be aware (UTC)")
    return moment.astimezone(UTC).replace(microsecond=0)


def _slurm_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def _time(text: str) -> datetime:
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


def _names(text: str) -> tuple[str, ...]:
    return () if text in ("", "(null)") else tuple(sorted(text.split(",")))


def _flags(text: str) -> frozenset[str]:
    return frozenset(text.split(",")) - IMPLICIT_FLAGS - {"", "(null)"}
