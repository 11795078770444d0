"""Domain errors with stable codes.

Every error a user can see is a :class:`DomainError` with a ``code`` that never changes
between releases (clients and the API's HTTP mapping key on it), a message that says what
was wrong and how to fix it, and optional structured ``details``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error gpulease reports to a user."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRequest(DomainError):
    """The input is malformed or inconsistent (names the offending field in ``details``)."""

    code = "invalid_request"


class PayloadTooLarge(DomainError):
    """A request body larger than the server takes (refused before it is parsed)."""

    code = "payload_too_large"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The request contradicts the current state (duplicate id, capacity exhausted...)."""

    code = "conflict"


class Denied(DomainError):
    code = "denied"


class InvalidTransition(Conflict):
    """A status change that the status's transition table does not allow."""

    code = "invalid_transition"


class InsufficientCapacity(Conflict):
    """A lease would oversell a site at some instant of its window."""

    code = "insufficient_capacity"


class Unauthenticated(DomainError):
    """No credentials, or credentials that match no live token."""

    code = "unauthenticated"


class IdempotencyMismatch(Conflict):
    """An ``Idempotency-Key`` was reused with a different request."""

    code = "idempotency_mismatch"


class RateLimited(DomainError):
    """Too many requests of one kind from one client address or tenant in a short time;
    ``details.retry_after_s`` says when to try again (HTTP 429 with ``Retry-After``)."""

    code = "rate_limited"


class Ambiguous(Conflict):
    """A prefix or name that matches several records the caller can see;
    ``details.candidates`` lists them (visible ones only) so the caller can type more."""

    code = "ambiguous"


class AlreadyEnded(Conflict):
    """An action on a record that has already ended (a job that succeeded or failed): there
    is nothing left to do; the message says how and when it ended."""

    code = "already_ended"
