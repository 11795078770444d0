"""The officers behind KYC approvals, as four-eyes sees them (:mod:`gpulease.compliance.four_eyes`).

:func:`now` reads, in the decision's transaction, who created the officer's account and who
issued each of its live tokens; :func:`recorded` gives the earlier approvals of a round as
they stood when each was given (their controllers are stored with the decision). Reads only.
"""

from __future__ import annotations

from datetime import datetime

from gpulease.compliance.four_eyes import Approver
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import ApiToken, KycDecision, User
from gpulease.services import tokens


def now(tx: Tx, user_id: str, moment: datetime) -> Approver:
    """The officer at ``moment``: its creator and the issuers of its live tokens."""
    user = tx.get(User, user_id)
    issuers = [
        t.created_by
        for t in tx.all(tx.select(ApiToken).where(ApiToken.user_id == user_id))
        if tokens.live(t, moment)
    ]
    return Approver.of(user_id, user.created_by if user else "", issuers)


def recorded(tx: Tx, decisions: list[KycDecision]) -> list[Approver]:
    """The officers of earlier approvals, with the controllers recorded when each approved."""
    ids = sorted({d.officer_id for d in decisions})
    creators = {u.id: u.created_by for u in tx.all(tx.select(User).where(User.id.in_(ids)))}
    return [
        Approver(
            d.officer_id, creators.get(d.officer_id, ""), frozenset({d.officer_id, *d.controllers})
        )
        for d in decisions
    ]
