"""The dashboard's navigation: which pages a role sees, decided by the access table.

Each page module declares its :class:`NavItem`; the entry is shown to a principal that may
perform its ``needs`` action on some record (``Principal.can``), so navigation follows
:data:`gpulease.domain.access.PERMISSIONS` and cannot drift from what the page's services
allow. The page itself still asks the services, which check every record.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulease.domain.access import Action, Principal


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str  # under /ui
    needs: Action | None = None  # None: every signed-in user
    order: int = 100  # left to right

    def shown_to(self, principal: Principal) -> bool:
        return self.needs is None or principal.can(self.needs)


_ITEMS: list[NavItem] = []


def register(item: NavItem) -> NavItem:
    """Add a page's entry (each page module calls it once, at import)."""
    if all(known.path != item.path for known in _ITEMS):
        _ITEMS.append(item)
        _ITEMS.sort(key=lambda known: (known.order, known.label))
    return item


def items_for(principal: Principal) -> list[NavItem]:
    return [item for item in _ITEMS if item.shown_to(principal)]
