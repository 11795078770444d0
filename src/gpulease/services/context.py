"""What every use case needs: the database, a clock and the settings.

Services never read the clock or the environment themselves: the context carries a
:class:`~gpulease.domain.clock.Clock` (a ManualClock in tests) and :class:`Settings`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gpulease.domain.clock import Clock, SystemClock
from gpulease.persistence.db import Database
from gpulease.settings import Settings


@dataclass
class ServiceContext:
    db: Database
    settings: Settings = field(default_factory=lambda: Settings())
    clock: Clock = field(default_factory=SystemClock)
    # Immutable facts worth keeping between requests (a site's topology).
    cache: dict[str, Any] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock.now()


def new_id(prefix: str) -> str:
    """A stable, unguessable id such as ``job-3f9a1c2b7d4e``."""
    return f"{prefix}-{secrets.token_hex(6)}"
