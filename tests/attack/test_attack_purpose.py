"""Attack: getting a prohibited purpose past the purpose classifier, or a held job past its
officer.

The classifier reads a purpose the way an officer would see it on screen; a purpose that
*displays* as "for weapons" must be read as that, whatever code points spell it: letters of
other scripts drawn like Latin ones (Unicode TR39 confusables, not only the Cyrillic and
Greek subset), text turned around by a bidi override, and the leetspeak "vv" and "\\/\\/"
for "w". Fresh spellings below were each read as nothing before the fix. Then through the
API: such a purpose is refused for a tenant, and a tenant can neither see nor decide a
review, whatever tenant it is of.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gpulease.compliance.purpose_classifier import Level, classify
from gpulease.services import demo as demo_service

Client = Callable[[str | None], TestClient]  # the ``raw_api`` fixture: a 500 is a response
EMAILS = {
    "inftech": "admin@inftech.example",
    "bank": "admin@bank.example",
    "operator": "ops@indosat.example",
    "compliance": "compliance@indosat.example",
}
QUEUE = "/compliance/purpose-reviews"
RLO, PDF, LRE = "\u202e", "\u202c", "\u202a"

EVASIONS = {
    # bidi override: stored "snopaew", shown "weapons"
    "rlo": f"{RLO}snopaew",
    "rlo-closed": f"model training {RLO}snopaew rof{PDF} and more",
    "rlo-nested-empty-embedding": f"{RLO}snop{LRE}{PDF}aew",
    # TR39 look-alikes of scripts the hand-made table had not: Cherokee (one drawn like an
    # "O" with a stroke), Cherokee small letters, Lisu, Canadian syllabics
    "cherokee": "\u13b3\u13ac\u13aa\u13e2\u13beNS",
    "cherokee-small": "\uab83\uab7c\uab7a\uabb2\uab8ens",
    "lisu": "\ua4ea\ua4f0\ua4ee\ua4d1\ua4f3\ua4e0\ua4e2",
    "canadian-syllabics": "\u15f0\u144cNITION",
    # leetspeak for w, and "rn" for "m"
    "vv": "vv3apons",
    "rn": "rnilitary end use",
    "slashes": "\\/\\/eapons",
}


# Shown "weapons" by reordering pieces, which no reading of the stored text predicts: an
# officer must look (the invisible formatting is itself a review finding)
REORDERED = {
    "rlm-separated": "\u200fpons\u200fwea",
    "rlo-nested-lro": f"{RLO}\u202dpons{PDF}\u202dwea{PDF}{PDF}",
    "rli-nested-lri": "\u2067\u2066pons\u2069\u2066wea\u2069\u2069",
    "rli-alone": "\u2067snopaew\u2069",
}


@pytest.mark.parametrize("text", EVASIONS.values(), ids=EVASIONS.keys())
def test_a_disguised_weapons_purpose_is_refused(text: str) -> None:
    found = classify(text)
    assert found.level is Level.REFUSE, (text, found.record())


@pytest.mark.parametrize("text", REORDERED.values(), ids=REORDERED.keys())
def test_a_purpose_shown_in_another_order_goes_to_an_officer(text: str) -> None:
    found = classify(text)
    assert found.level is Level.REVIEW, (text, found.record())
    assert "directional formatting" in found.describe()


def test_the_fixes_leave_plain_and_rtl_text_alone() -> None:
    """Right-to-left text without directional formatting is not turned around (an Arabic or
    Hebrew purpose reads as written), and the look-alike table does not invent terms."""
    assert classify("model training for a savvy retailer").level is None
    assert classify("\u05de\u05d7\u05e7\u05e8 \u05e8\u05e4\u05d5\u05d0\u05d9").level is None
    assert classify("\u0628\u062d\u062b \u0637\u0628\u064a").level is None
    assert classify(f"no {RLO}snopaew{PDF} at all").negated  # negation still read


def test_a_long_hostile_purpose_is_classified_quickly() -> None:
    """The longest text the API lets through (a KYC statement: 5000 characters) in shapes
    that make matching work hard; bounded well under a second each (pure; no regex
    backtracking: the tokenizer's patterns are linear)."""
    shapes = [
        f"{RLO}" + "snopaew " * 625,
        "vv" * 2500,
        "\u13b3\u13ac" * 2500,
        "not " + "anthrax production " * 263,
        "w.e.a.p.o.n." * 416,
    ]
    for text in shapes:
        started = time.perf_counter()
        classify(text[:5000])
        assert time.perf_counter() - started < 5.0  # a hang guard, not a timing claim


def _job(purpose: str) -> dict[str, object]:
    return {"gpus": 8, "purpose": purpose, "command": "train"}


def test_a_tenant_cannot_run_a_disguised_purpose_or_decide_a_review(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    clients = {who: raw_api(by_email[email].token) for who, email in EMAILS.items()}
    as_user = clients.__getitem__
    tenant = as_user("inftech")
    for huge in ("drug-discovery: " + "a" * 1_000_000, "drug-discovery: " + "w e " * 100):
        refused = tenant.post("/jobs", json=_job(huge))  # bounded at the edge, never a 500
        assert refused.status_code in (413, 422), refused.text[:300]
    hidden = tenant.post("/jobs", json=_job(f"drug-discovery: {RLO}snopaew rof"))
    assert hidden.status_code == 403, hidden.text  # shown "drug-discovery: for weapons"
    assert hidden.json()["details"]["field"] == "purpose"
    held = tenant.post("/jobs", json=_job("drug-discovery: anthrax genomics"))
    assert held.status_code == 201, held.text
    [review] = as_user("compliance").get(QUEUE, params={"state": "pending"}).json()
    for who in ("inftech", "bank", "operator"):
        for verb in ("approve", "reject"):
            answer = as_user(who).post(f"{QUEUE}/{review['id']}/{verb}", json={"reason": "x"})
            assert answer.status_code == 403, (who, verb, answer.text)
        assert as_user(who).get(f"{QUEUE}/{review['id']}").status_code == 403
    assert as_user("compliance").get(f"{QUEUE}/{review['id']}").json()["state"] == "pending"
    job = tenant.get(f"/jobs/{held.json()['id']}").json()
    assert job["state"] == "queued"
    assert job["wait_reason"].startswith("held until")
