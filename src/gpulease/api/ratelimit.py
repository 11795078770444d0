"""Rate limits of the API: failed authentications per client address, job submissions per
tenant, ad-hoc screening requests per officer. Per API process, in memory, bounded.

Counting. A fixed window per key (:class:`FixedWindowLimit`): the window opens at the key's
first counted event and lasts ``window_s``; at most ``limit`` events count in it; past that
the key waits until the window closes, and ``Retry-After`` says how long (whole seconds,
at least 1). Fixed rather than sliding windows so "blocked for the window" is exact and
``Retry-After`` is a promise: the first request after it is admitted.

Memory. Windows live in a :class:`cachetools.TTLCache` whose entries expire when their window
closes and of which at most ``max_keys`` are kept (least recently used evicted first), so a
flood of distinct addresses cannot grow the process. A key evicted early loses its count:
bounded memory wins over exactness under such a flood. Every map is guarded by a lock
(FastAPI runs sync dependencies in a thread pool).

Clock. The service clock drives the windows and the expiry (``ctx.clock``: a ManualClock in
tests, so a test passes a window without sleeping). The ``limits`` library's in-memory
storage reads ``time.time()`` and runs a timer thread; it cannot be driven by that clock,
hence cachetools for the bounded expiring map and the little counting here.

Scope. Each API process counts on its own: behind ``serve --workers N`` (or N servers) a
client may get up to N times a limit. A shared count would need a shared store on every
request's path; these limits bound floods, they are not quotas.

Authentication failures (:class:`AuthFailures`). Only failures count (a request with a
token that matches no live token; a request with no token makes no guess and is not
counted), per client address as the trusted-proxy rule gives it. Once an address has
``auth_failures_per_minute`` failures in its window, it is blocked until the window closes:
its requests get 429 *before* the token is looked up, so guesses cost nothing and teach
nothing. One exception keeps a NAT (or a proxy whose address was not configured as
trusted) usable while one client behind it misbehaves: a token that already authenticated
from that address in the last :data:`KNOWN_TOKEN_S` seconds still works. A new token from a
blocked address waits for the window (a minute by default).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from gpulease.domain.clock import Clock, to_seconds
from gpulease.domain.errors import RateLimited
from gpulease.services.tokens import hash_token
from gpulease.settings import Settings

MAX_KEYS = 65_536  # addresses or tenants remembered per limit
KNOWN_TOKEN_S = 3600.0  # a token seen valid from an address passes that address's block
MINUTE = 60.0


def clock_seconds(clock: Clock) -> Callable[[], float]:
    """The service clock as float seconds, for the windows and the caches' expiry."""
    return lambda: to_seconds(clock.now())


def whole_seconds(wait: float) -> int:
    """A ``Retry-After`` value: whole seconds, never 0 (0 invites an immediate retry)."""
    return max(1, math.ceil(wait))


@dataclass(slots=True)
class _Window:
    opened: float
    count: int


class FixedWindowLimit:
    """At most ``limit`` events per key in a window of ``window_s`` opened by the first."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float],
        max_keys: int = MAX_KEYS,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a limit needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        # an entry is written once, when its window opens, so it expires when the window closes
        self._windows: TTLCache[str, _Window] = TTLCache(max_keys, window_s, timer=clock)
        self._lock = threading.Lock()

    def wait(self, key: str) -> float | None:
        """Seconds ``key`` must wait before its next event counts; None if it may act now.
        Counts nothing."""
        with self._lock:
            now = self._clock()
            window = self._open(key, now)
            if window is None or window.count < self.limit:
                return None
            return window.opened + self.window_s - now

    def hit(self, key: str) -> float | None:
        """Count one event of ``key``. None if it was within the limit; else the seconds to
        wait (and the event was not counted: a refused request does not extend the block)."""
        with self._lock:
            now = self._clock()
            window = self._open(key, now)
            if window is None:
                self._windows[key] = _Window(now, 1)
                return None
            if window.count >= self.limit:
                return window.opened + self.window_s - now
            window.count += 1
            return None

    def refund(self, key: str) -> None:
        """Uncount one event of ``key`` counted in its open window (one that turned out not
        to be its own, e.g. a revoked credential's); nothing if no window is open."""
        with self._lock:
            window = self._open(key, self._clock())
            if window is not None and window.count > 0:
                window.count -= 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._windows)

    def _open(self, key: str, now: float) -> _Window | None:
        window = self._windows.get(key)
        if window is not None and now >= window.opened + self.window_s:
            del self._windows[key]  # closed (the cache's own expiry may lag by a tick)
            return None
        return window


class AuthFailures:
    """Failed authentications per client address; see the module's docstring."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float], max_keys: int = MAX_KEYS
    ) -> None:
        self.failures = FixedWindowLimit(per_minute, MINUTE, clock, max_keys)
        self._known: TTLCache[str, bool] = TTLCache(max_keys, KNOWN_TOKEN_S, timer=clock)
        self._lock = threading.Lock()

    def check(self, address: str, token: str | None) -> None:
        """Raise RateLimited if ``address`` is blocked and ``token`` is not known there."""
        wait = self.failures.wait(address)
        if wait is None:
            return
        if token:
            with self._lock:
                if _known_key(address, hash_token(token)) in self._known:
                    return
        seconds = whole_seconds(wait)
        raise RateLimited(
            f"too many failed authentications from {address}: at most "
            f"{self.failures.limit:,} a minute; retry in {seconds} s",
            retry_after_s=seconds,
            limit=self.failures.limit,
        )

    def failed(self, address: str) -> None:
        self.failures.hit(address)

    def succeeded(self, address: str, token_hash: str) -> None:
        """The token of this hash (``tokens.hash_token``) authenticated from ``address``."""
        with self._lock:
            self._known[_known_key(address, token_hash)] = True


def _known_key(address: str, token_hash: str) -> str:
    return f"{address} {token_hash}"


class Submissions:
    """Job submissions per tenant (operators acting for no tenant: per user)."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float], max_keys: int = MAX_KEYS
    ) -> None:
        self.limit = FixedWindowLimit(per_minute, MINUTE, clock, max_keys)

    def count(self, key: str, who: str) -> None:
        """Count one submission of ``key``; raise RateLimited if it is over the limit."""
        wait = self.limit.hit(key)
        if wait is None:
            return
        seconds = whole_seconds(wait)
        raise RateLimited(
            f"{who} submitted {self.limit.limit:,} jobs in the last minute, the most allowed; "
            f"retry in {seconds} s",
            retry_after_s=seconds,
            limit=self.limit.limit,
        )

    def refund(self, key: str) -> None:
        """Give back one submission counted for ``key`` (:meth:`FixedWindowLimit.refund`)."""
        self.limit.refund(key)


class Screenings:
    """Ad-hoc screening requests per officer (each screens up to a hundred names against
    every list: a flood would take the process's CPU from everyone else)."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float], max_keys: int = MAX_KEYS
    ) -> None:
        self.limit = FixedWindowLimit(per_minute, MINUTE, clock, max_keys)

    def count(self, user_id: str) -> None:
        """Count one screening request of ``user_id``; RateLimited past the limit."""
        wait = self.limit.hit(user_id)
        if wait is None:
            return
        seconds = whole_seconds(wait)
        raise RateLimited(
            f"you sent {self.limit.limit:,} screening requests in the last minute, the most "
            f"allowed; retry in {seconds} s (a batch file is sent 100 names per request)",
            retry_after_s=seconds,
            limit=self.limit.limit,
        )


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """The limits of one API process (``app.state.limits``)."""

    auth: AuthFailures
    submissions: Submissions
    screenings: Screenings

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> ApiLimits:
        seconds = clock_seconds(clock)
        return cls(
            AuthFailures(settings.auth_failures_per_minute, seconds),
            Submissions(settings.submissions_per_minute, seconds),
            Screenings(settings.screenings_per_minute, seconds),
        )
