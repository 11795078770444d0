"""Checked bearer tokens, kept per process, trusted only while the authentication epoch holds.

Design. A request's token is looked up by its SHA-256. Once checked against the database
(token unrevoked and unexpired, user not disabled) it is kept here as a :class:`Credential`:
the principal, the token's expiry and the *authentication epoch* read in the same statement
(``persistence.auth``). A later request uses the entry only after reading the current epoch
(one indexed read; for a job submission, inside the submission's own statement) and finding
it unchanged, and only while ``now`` is before the token's expiry. Every change that can
withdraw a credential (``tokens.revoke``, ``identity.set_disabled``; any future role change)
bumps the epoch in its own transaction, so after it commits the next request in *every* API
process reads another epoch, drops its entries and reads the token again: revocation is
immediate, across workers, without a message bus.

Invariants:

* an entry is never used without an epoch read made after the request began;
* failures (unknown, revoked, expired, disabled) are never cached: they are read each time
  (the authentication limit in ``api.ratelimit`` bounds how often);
* at most ``limit`` entries are kept; a full cache is emptied (entries are cheap to re-read).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from gpulease.domain.access import Principal
from gpulease.services.context import ServiceContext
from gpulease.services.tokens import hash_token

CACHE_KEY = "auth_cache"
DEFAULT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Credential:
    """A token as checked at ``epoch``: whom it authenticates, and until when."""

    token_hash: str
    principal: Principal
    epoch: int
    expires_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class AuthCache:
    """Token hash -> :class:`Credential` (the module docstring gives the rules)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[str, Credential] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, token_hash: str) -> Credential | None:
        """The entry as kept, not yet confirmed against the epoch."""
        return self._entries.get(token_hash)

    def valid(self, known: Credential, epoch: int, now: datetime) -> bool:
        """Whether ``known`` may be used at ``epoch`` (read now) and ``now``; at another
        epoch every entry is dropped."""
        if known.epoch != epoch:
            self.drop_other_epochs(epoch)
            return False
        return not known.expired(now)

    def put(self, credential: Credential) -> None:
        with self._lock:
            if len(self._entries) >= self.limit:
                self._entries.clear()
            self._entries[credential.token_hash] = credential

    def drop_other_epochs(self, epoch: int) -> None:
        with self._lock:
            stale = [h for h, c in self._entries.items() if c.epoch != epoch]
            for token_hash in stale:
                del self._entries[token_hash]


def recall(ctx: ServiceContext, token: str | None, now: datetime) -> Credential | None:
    """The credential this process keeps for ``token``, unexpired at ``now``, from memory
    alone (None: no token, or none kept: check it against the database, which refuses what
    it must, a token longer than any issued included). Its epoch is not confirmed here: the
    caller confirms it in the transaction of the work it authorizes (``identity.confirm``; a
    job submission)."""
    if not token:
        return None
    known = of(ctx).peek(hash_token(token))
    if known is None or known.expired(now):
        return None
    return known


def of(ctx: ServiceContext) -> AuthCache:
    """The process's cache, kept in the service context."""
    found = ctx.cache.get(CACHE_KEY)
    if not isinstance(found, AuthCache):
        found = ctx.cache.setdefault(CACHE_KEY, AuthCache())
    assert isinstance(found, AuthCache)
    return found
