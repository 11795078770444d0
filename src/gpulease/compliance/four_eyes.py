"""Four-eyes: when two officers' approvals are two independent sign-offs, and when not.

Vocabulary. An **approver** is an officer approving a KYC case: its user id, who created its
account (``created_by``) and its **controllers**: every person who could have presented a
credential of that officer when it approved, that is the officer itself and whoever issued
one of its tokens still live at that moment (an operator-admin creating an officer is shown
the officer's first token; an admin may mint further tokens of any user).

The rule (:func:`refusal`). Under four-eyes an approval counts as a second pair of eyes only
if, against every approval already given in the same screening round:

1. it is another officer;
2. neither officer created the other's account (an officer that created its peer chose who
   that peer is);
3. no person controls both: the two sets of controllers are disjoint. This covers an admin
   who created two officers and still holds their first tokens, and an admin who minted a
   token of each later. An officer whose account an admin created becomes independent of it
   by issuing its own token and revoking the first one (``gpulease tokens issue``, ``gpulease
   tokens revoke``): from then on only the officer can act as itself.

Controllers are fixed when each approval is recorded (:class:`Approver` is built at that
moment and stored with the decision), so revoking a token after approving does not clean a
past approval. The number of approvals needed is the setting in force when each decision is
taken, never a number frozen at submission.

Pure: plain values in, a reason or None out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Approver:
    officer_id: str
    created_by: str  # "" when unknown (an account created before it was recorded)
    controllers: frozenset[str]  # the officer and the issuers of its live tokens

    @classmethod
    def of(cls, officer_id: str, created_by: str, token_issuers: Iterable[str]) -> Approver:
        return cls(
            officer_id, created_by, frozenset({officer_id, *(i for i in token_issuers if i)})
        )


def refusal(earlier: Iterable[Approver], new: Approver) -> str | None:
    """Why ``new`` cannot count as another pair of eyes beside ``earlier`` (None: it can)."""
    for first in earlier:
        if first.officer_id == new.officer_id:
            return "you already approved this case in this round; four-eyes needs another officer"
        if new.created_by == first.officer_id:
            return (
                f"four-eyes: your account was created by {first.officer_id}, who already "
                "approved this case; another officer must approve"
            )
        if first.created_by == new.officer_id:
            return (
                f"four-eyes: you created the account of {first.officer_id}, who already "
                "approved this case; another officer must approve"
            )
        shared = sorted((first.controllers & new.controllers) - {new.officer_id})
        if shared or new.officer_id in first.controllers:
            who = ", ".join(shared) or new.officer_id
            return (
                f"four-eyes: {who} could act as both you and {first.officer_id} (issued a "
                "live token of each); each officer must hold only tokens it issued itself "
                "(issue your own token and revoke the ones others issued)"
            )
    return None
