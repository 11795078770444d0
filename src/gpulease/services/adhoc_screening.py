"""Ad-hoc screening: an officer screens names outside any KYC case (a new counterparty, a
payment source), with the same index, thresholds and explanations as a KYC screening.

Design. :func:`screen_names` takes up to :data:`MAX_QUERIES` queries (a name, and optionally
its kind, countries, aliases and identifiers, which adjust the score exactly as they do for
a case's party), screens each with :meth:`ScreeningIndex.screen` against the lists in force
under today's policy (``kyc.policy_on``, ``screening_lists.current_lists``: the very index a
case is screened with) and decides it with :func:`~gpulease.compliance.matching.decide` at
the installation's thresholds. The answer is bounded: at most :data:`RESULT_BUDGET` results
in all (:func:`results_per_query`: ten for one name, two each for a hundred; every response
keeps its outcome, reason and ``total``, and says how many results it ``omitted``), where an
answer of a hundred names with ten results each ran to megabytes of features. The answer
follows the shape of yente's ``/match`` (one
response per query, keyed by the query's id, each with its results best first, a total, and
per result a score, a ``match`` flag and the features that made the score) and of the
Consolidated Screening List search API (each result names its source list, entry id,
programs and list name; the answer names the lists searched). With no list in force every
query answers ``review`` and says why, as a case would.

Invariants: compliance staff only (``Action.SCREENING_SEARCH``: the answer shows scores,
thresholds and list entries); bounded input (at most :data:`MAX_QUERIES` queries, a name at
most :data:`MAX_NAME` characters, a few aliases, countries and identifiers), refused whole
with the offending field named before anything is screened; every screening writes one
audit record (who, when, the names screened and each outcome), in its own transaction, so
an ad-hoc search is as accountable as a case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpulease.compliance.matching import Outcome, decide
from gpulease.compliance.model import Hit, Party, PartyKind
from gpulease.compliance.screening import party_reason
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest
from gpulease.services import audit, kyc, metrics
from gpulease.services.context import ServiceContext, new_id
from gpulease.services.kyc_screening import NO_LIST_PARTY
from gpulease.services.screening_lists import current_lists

MAX_QUERIES = 100  # names in one request (a batch file is sent in requests of this many)
MAX_NAME = 300  # characters of a name or alias
MAX_ALIASES = 10
MAX_COUNTRIES = 10
MAX_IDENTIFIERS = 10
MAX_RESULTS = 10  # results shown per query (``total`` counts them all)
RESULT_BUDGET = 200  # results shown in one answer, all queries together
REF_MAX = 64


@dataclass(frozen=True, slots=True)
class ScreeningQuery:
    """One name to screen; ``ref`` is the caller's id for it (default ``q1``, ``q2``...)."""

    name: str
    kind: str = "unknown"
    ref: str = ""
    aliases: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    identifiers: tuple[tuple[str, str], ...] = ()


def validate(queries: Sequence[ScreeningQuery]) -> list[ScreeningQuery]:
    """The queries with their refs filled in, or InvalidRequest naming the field."""
    if not queries:
        raise InvalidRequest("give at least one name to screen", field="queries")
    if len(queries) > MAX_QUERIES:
        raise InvalidRequest(
            f"at most {MAX_QUERIES} names per request (got {len(queries)}); send the rest "
            "in further requests",
            field="queries",
        )
    seen: set[str] = set()
    out = []
    for i, q in enumerate(queries):
        at = f"queries.{i}"
        ref = q.ref or f"q{i + 1}"
        if len(ref) > REF_MAX or not ref.isprintable():
            raise InvalidRequest(f"an id is 1 to {REF_MAX} printable characters", field=f"{at}.id")
        if ref in seen:
            raise InvalidRequest(f"id {ref!r} is given twice", field=f"{at}.id")
        seen.add(ref)
        for where, text in (
            ("name", q.name),
            *((f"aliases.{j}", a) for j, a in enumerate(q.aliases)),
        ):
            if not text.strip():
                raise InvalidRequest("a name must not be empty", field=f"{at}.{where}")
            if len(text) > MAX_NAME or not text.isprintable():
                raise InvalidRequest(
                    f"a name is at most {MAX_NAME} printable characters", field=f"{at}.{where}"
                )
        try:
            kind = PartyKind(q.kind or "unknown")
        except ValueError:
            kinds = ", ".join(k.value for k in PartyKind)
            raise InvalidRequest(f"kind is one of {kinds}", field=f"{at}.kind") from None
        if len(q.aliases) > MAX_ALIASES:
            raise InvalidRequest(f"at most {MAX_ALIASES} aliases", field=f"{at}.aliases")
        if len(q.countries) > MAX_COUNTRIES or any(
            len(c) != 2 or not c.isascii() or not c.isalpha() for c in q.countries
        ):
            raise InvalidRequest(
                f"countries are ISO 3166 alpha-2 codes, at most {MAX_COUNTRIES}",
                field=f"{at}.countries",
            )
        if len(q.identifiers) > MAX_IDENTIFIERS or any(
            not 0 < len(k) <= 40 or not 0 < len(v) <= 100 or not (k + v).isprintable()
            for k, v in q.identifiers
        ):
            raise InvalidRequest(
                f"at most {MAX_IDENTIFIERS} identifiers, each a type (40 characters) and a "
                "value (100)",
                field=f"{at}.identifiers",
            )
        out.append(
            ScreeningQuery(
                q.name.strip(),
                kind.value,
                ref,
                tuple(a.strip() for a in q.aliases),
                tuple(c.upper() for c in q.countries),
                q.identifiers,
            )
        )
    return out


def screen_names(
    ctx: ServiceContext, actor: Principal, queries: Sequence[ScreeningQuery]
) -> dict[str, Any]:
    """Screen each query against the lists in force (see the module docstring)."""
    actor.scope(Action.SCREENING_SEARCH)
    checked = validate(queries)
    now = ctx.now()
    settings = ctx.settings
    review, block = settings.review_threshold, settings.block_threshold
    policy = kyc.policy_on(ctx, now)
    lists = current_lists(ctx, policy.screening_lists or None)
    unscreened = not lists.snapshot_ids
    shown = results_per_query(len(checked))
    responses: dict[str, dict[str, Any]] = {}
    for q in checked:
        party = Party(
            id=q.ref,
            kind=PartyKind(q.kind),
            name=q.name,
            aliases=q.aliases,
            countries=q.countries,
            identifiers=q.identifiers,
        )
        hits = lists.index.screen(party, review_threshold=review, block_threshold=block)
        verdict = decide(hits, review, block)
        outcome = Outcome.REVIEW if unscreened else verdict.outcome
        responses[q.ref] = {
            "query": {
                "name": q.name,
                "kind": q.kind,
                "aliases": list(q.aliases),
                "countries": list(q.countries),
                "identifiers": [{"type": k, "value": v} for k, v in q.identifiers],
            },
            "outcome": outcome.value,
            "reason": NO_LIST_PARTY if unscreened else party_reason(verdict),
            "total": len(verdict.hits),
            "omitted": max(0, len(verdict.hits) - shown),
            "results": [_result(h, review) for h in verdict.hits[:shown]],
        }
    screening_id = new_id("screen")
    with ctx.db.transaction() as tx:
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="screening.adhoc",
            subject_type="screening",
            subject_id=screening_id,
            after={
                "names": [q.name for q in checked],
                "outcomes": {ref: r["outcome"] for ref, r in responses.items()},
                "lists": list(lists.snapshot_ids),
                "policy": list(policy.packs),
                "thresholds": {"review": review, "block": block},
            },
            reason=f"ad-hoc screening of {len(checked)} name(s)",
        )
    for response in responses.values():  # once recorded
        metrics.count_screening("adhoc", response["outcome"])
    return {
        "id": screening_id,
        "screened_at": now.isoformat(),
        "screened_by": actor.user_id,
        "thresholds": {"review": review, "block": block},
        "results_per_query": shown,
        "lists": [
            {"snapshot_id": sid, "label": label}
            for sid, label in zip(lists.snapshot_ids, lists.labels, strict=True)
        ],
        "policy_packs": list(policy.packs),
        "responses": responses,
    }


def results_per_query(queries: int) -> int:
    """How many results each response shows: :data:`MAX_RESULTS`, fewer when many names
    are screened at once, so that one answer shows at most :data:`RESULT_BUDGET` results
    (a hundred names, two each; the best always): each response's outcome and reason are
    decided on all its hits, ``total`` counts them and ``omitted`` says how many are not
    shown. Screen fewer names at once to see more of each."""
    return max(1, min(MAX_RESULTS, RESULT_BUDGET // max(1, queries)))


def _result(hit: Hit, review: float) -> dict[str, Any]:
    entry = hit.entry
    return {
        "source": entry.source,
        "entry_id": entry.entry_id,
        "caption": entry.name,
        "kind": entry.kind.value,
        "listed_name": hit.listed_name,
        "our_name": hit.our_name,
        "score": round(hit.score, 1),
        "match": hit.identifier_match or hit.score >= review,
        "identifier_match": hit.identifier_match,
        "programs": list(entry.programs),
        "list_name": entry.list_name,
        "countries": list(entry.countries),
        "features": [
            {"name": f.name, "detail": f.detail, "weight": f.weight} for f in hit.features
        ],
    }
