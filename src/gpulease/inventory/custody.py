"""Chain of custody: the provenance events of racks, trays and GPUs, and the rules a chain obeys.

Vocabulary. A *unit* is a rack, a tray (a node) or a GPU, named by its kind and id. Its
*chain* is the list of its own :class:`CustodyEntry` in time order. A GPU also *inherits* the
chains of its tray and its rack (events recorded on the rack happened to every chip in it):
its *story* (:func:`story`) is the three chains merged by time.

Events are of two sorts:

* **physical** events move a unit through *phases*: ``manufactured`` -> ``shipped`` ->
  ``received`` -> ``installed`` -> ``moved`` / ``repaired`` -> ``decommissioned``, along
  :data:`PHASE_TRANSITIONS` (a unit that has no event yet may only be ``manufactured``);
* ``sold`` changes the holder, not the place: it may come in any phase but before the first
  event and after ``decommissioned``, and names its seller (who must be the holder at that
  moment), its buyer and an invoice; an export licence or licence exception and an
  end-user statement are recorded with it when the sale has them.

Invariants (checked by :func:`check_next` for each new event, and by :func:`problems` for a
whole chain): events of a chain are in time order; each physical event is allowed from the
phase before it (so ``installed`` before ``received`` is refused, naming why); nothing
follows ``decommissioned``; a sale's seller is the holder and differs from the buyer; every
text is bounded (:data:`TEXT_MAX`). Refusals are :class:`InvalidRequest` naming the field
(an API answers 422). The core reads no clock and no database: ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from gpulease.domain.errors import InvalidRequest

TEXT_MAX = 200  # holder, location, parties, document references
NOTE_MAX = 500
FUTURE_SKEW = timedelta(minutes=5)  # an event may be dated this far past "now" (clock skew)


class UnitKind(StrEnum):
    RACK = "rack"
    TRAY = "tray"  # a node: one compute tray of a rack
    GPU = "gpu"


# a GPU's story merges its own chain with its tray's and its rack's; on a tie in time the
# enclosing unit's event comes first (a rack is received before its chips are installed)
UNIT_ORDER = {UnitKind.RACK: 0, UnitKind.TRAY: 1, UnitKind.GPU: 2}


class CustodyKind(StrEnum):
    MANUFACTURED = "manufactured"
    SOLD = "sold"
    SHIPPED = "shipped"
    RECEIVED = "received"
    INSTALLED = "installed"
    MOVED = "moved"
    REPAIRED = "repaired"
    DECOMMISSIONED = "decommissioned"


FIRST: frozenset[CustodyKind] = frozenset({CustodyKind.MANUFACTURED})
# physical events: from the phase a unit is in, the events that may come next. A phase absent
# from the keys (decommissioned) is terminal. ``sold`` is not a phase (module doc).
PHASE_TRANSITIONS: dict[CustodyKind, frozenset[CustodyKind]] = {
    CustodyKind.MANUFACTURED: frozenset({CustodyKind.SHIPPED, CustodyKind.DECOMMISSIONED}),
    CustodyKind.SHIPPED: frozenset({CustodyKind.RECEIVED}),
    CustodyKind.RECEIVED: frozenset(
        {CustodyKind.INSTALLED, CustodyKind.SHIPPED, CustodyKind.DECOMMISSIONED}
    ),
    CustodyKind.INSTALLED: frozenset(
        {
            CustodyKind.MOVED,
            CustodyKind.REPAIRED,
            CustodyKind.SHIPPED,
            CustodyKind.DECOMMISSIONED,
        }
    ),
    CustodyKind.MOVED: frozenset(
        {
            CustodyKind.MOVED,
            CustodyKind.REPAIRED,
            CustodyKind.SHIPPED,
            CustodyKind.DECOMMISSIONED,
        }
    ),
    CustodyKind.REPAIRED: frozenset(
        {
            CustodyKind.MOVED,
            CustodyKind.REPAIRED,
            CustodyKind.SHIPPED,
            CustodyKind.DECOMMISSIONED,
        }
    ),
}
# why an event cannot come yet, for the common slips (else the allowed ones are listed)
_NEEDS = {
    CustodyKind.RECEIVED: "it was not shipped",
    CustodyKind.INSTALLED: "it was not received",
    CustodyKind.MOVED: "it is not installed",
    CustodyKind.REPAIRED: "it is not installed",
}
_LOCATED = frozenset(
    {CustodyKind.MANUFACTURED, CustodyKind.RECEIVED, CustodyKind.INSTALLED, CustodyKind.MOVED}
)


def parse_kind(text: str) -> CustodyKind:
    try:
        return CustodyKind(text.strip().lower())
    except ValueError:
        names = ", ".join(k.value for k in CustodyKind)
        raise InvalidRequest(
            f"unknown custody event {text!r}; use one of {names}", field="event"
        ) from None


def parse_unit(text: str) -> UnitKind:
    try:
        return UnitKind(text.strip().lower())
    except ValueError:
        names = ", ".join(k.value for k in UnitKind)
        raise InvalidRequest(
            f"unknown unit kind {text!r}; use one of {names}", field="unit_kind"
        ) from None


@dataclass(frozen=True, slots=True)
class Documents:
    """The papers of a sale (references, not the papers): the invoice, the export licence or
    licence exception (``NLR``, ``EAR 740.x``, a licence number), the end-user statement."""

    invoice: str = ""
    export_authorization: str = ""
    end_user_statement: str = ""

    def listed(self) -> list[tuple[str, str]]:
        return [
            (name, value)
            for name, value in (
                ("invoice", self.invoice),
                ("export authorization", self.export_authorization),
                ("end-user statement", self.end_user_statement),
            )
            if value
        ]


@dataclass(frozen=True, slots=True)
class CustodyEntry:
    """One event of one unit. ``holder``: who holds the unit after it (a sale's buyer)."""

    unit_kind: UnitKind
    unit_id: str
    at: datetime
    kind: CustodyKind
    holder: str
    location: str = ""
    from_party: str = ""  # a sale's seller
    to_party: str = ""  # a sale's buyer
    documents: Documents = field(default_factory=Documents)
    note: str = ""  # the maker's or carrier's reference, a repair ticket...


def phase_of(chain: Sequence[CustodyEntry]) -> CustodyKind | None:
    """The phase the chain leaves its unit in: its last physical event (None: no event)."""
    for entry in reversed(chain):
        if entry.kind is not CustodyKind.SOLD:
            return entry.kind
    return None


def holder_of(chain: Sequence[CustodyEntry]) -> str:
    return chain[-1].holder if chain else ""


def _bounded(entry: CustodyEntry) -> None:
    texts = {
        "holder": entry.holder,
        "location": entry.location,
        "from_party": entry.from_party,
        "to_party": entry.to_party,
        "invoice": entry.documents.invoice,
        "export_authorization": entry.documents.export_authorization,
        "end_user_statement": entry.documents.end_user_statement,
        "unit_id": entry.unit_id,
    }
    for name, value in texts.items():
        if len(value) > TEXT_MAX:
            raise InvalidRequest(f"{name} is longer than {TEXT_MAX} characters", field=name)
    if len(entry.note) > NOTE_MAX:
        raise InvalidRequest(f"note is longer than {NOTE_MAX} characters", field="note")
    if entry.at.tzinfo is None:
        raise InvalidRequest("the event's time must carry its time zone (UTC)", field="at")


def normalised(entry: CustodyEntry) -> CustodyEntry:
    """The entry with its texts stripped and a sale's holder set to its buyer."""
    docs = entry.documents
    clean = replace(
        entry,
        holder=entry.holder.strip(),
        location=entry.location.strip(),
        from_party=entry.from_party.strip(),
        to_party=entry.to_party.strip(),
        note=entry.note.strip(),
        documents=Documents(
            docs.invoice.strip(), docs.export_authorization.strip(), docs.end_user_statement.strip()
        ),
    )
    if clean.kind is CustodyKind.SOLD and clean.to_party:
        clean = replace(clean, holder=clean.to_party)
    return clean


def check_next(
    chain: Sequence[CustodyEntry], new: CustodyEntry, *, now: datetime | None = None
) -> CustodyEntry:
    """``new`` normalised, if it may follow the unit's ``chain`` (module doc); else
    :class:`InvalidRequest` saying why, with the offending field."""
    new = normalised(new)
    _bounded(new)
    unit = f"{new.unit_kind.value} {new.unit_id}" if new.unit_id else f"the {new.unit_kind.value}s"
    if now is not None and new.at > now + FUTURE_SKEW:
        raise InvalidRequest(f"{new.kind.value} of {unit} is dated in the future", field="at")
    if chain and new.at < chain[-1].at:
        last = chain[-1]
        raise InvalidRequest(
            f"{new.kind.value} of {unit} is dated {new.at.isoformat()}, before its last "
            f"event ({last.kind.value} at {last.at.isoformat()}); events are recorded in order",
            field="at",
        )
    if not new.holder:
        raise InvalidRequest(f"say who holds {unit} after this event", field="holder")
    phase = phase_of(chain)
    if phase is CustodyKind.DECOMMISSIONED:
        raise InvalidRequest(
            f"{unit} was decommissioned; nothing can follow ({new.kind.value})", field="event"
        )
    if new.kind is CustodyKind.SOLD:
        _check_sale(chain, new, unit)
    elif phase is None:
        if new.kind not in FIRST:
            raise InvalidRequest(
                f"{unit} cannot be {new.kind.value} before it was manufactured", field="event"
            )
    elif new.kind not in PHASE_TRANSITIONS[phase]:
        allowed = ", ".join([*sorted(k.value for k in PHASE_TRANSITIONS[phase]), "sold"])
        why = _NEEDS.get(new.kind, f"its last event was {phase.value}")
        raise InvalidRequest(
            f"{unit} cannot be {new.kind.value} now: {why} (it is {phase.value}; "
            f"next may be: {allowed})",
            field="event",
            phase=phase.value,
        )
    if new.kind in _LOCATED and not new.location:
        raise InvalidRequest(f"say where {unit} is {new.kind.value}", field="location")
    return new


def _check_sale(chain: Sequence[CustodyEntry], new: CustodyEntry, unit: str) -> None:
    if not chain:
        raise InvalidRequest(f"{unit} cannot be sold before it was manufactured", field="event")
    if not new.from_party or not new.to_party:
        raise InvalidRequest("a sale names its seller and its buyer", field="from_party")
    if new.from_party.casefold() == new.to_party.casefold():
        raise InvalidRequest("a sale's buyer is not its seller", field="to_party")
    holder = holder_of(chain)
    if holder and holder.casefold() != new.from_party.casefold():
        raise InvalidRequest(
            f"{unit} is held by {holder!r}, not by the seller {new.from_party!r}",
            field="from_party",
        )
    if not new.documents.invoice:
        raise InvalidRequest("a sale names its invoice", field="invoice")


def problems(chain: Iterable[CustodyEntry]) -> list[str]:
    """Every event of a stored chain that would not be accepted after those before it
    (an empty list: the chain is consistent). Used to check chains recorded before the
    rules, or edited outside gpulease."""
    found: list[str] = []
    accepted: list[CustodyEntry] = []
    for entry in chain:
        try:
            accepted.append(check_next(accepted, entry))
        except InvalidRequest as refused:
            found.append(refused.message)
            accepted.append(normalised(entry))
    return found


def story(*chains: Sequence[CustodyEntry]) -> list[CustodyEntry]:
    """A GPU's story: its rack's, tray's and own chains merged by time (on a tie the
    enclosing unit first, then the order recorded)."""
    indexed = [
        (entry.at, UNIT_ORDER[entry.unit_kind], n, i, entry)
        for n, chain in enumerate(chains)
        for i, entry in enumerate(chain)
    ]
    return [entry for *_key, entry in sorted(indexed, key=lambda t: t[:4])]
