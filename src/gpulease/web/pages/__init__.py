"""The dashboard's pages, one module each: its ``router`` (made with
:func:`gpulease.web.render.page_router`) and its navigation entry (``nav.register``).

To add a page: write ``pages/<name>.py`` with both, and list the module in :data:`MODULES`.
"""

from __future__ import annotations

from types import ModuleType

from gpulease.web.pages import compliance, fleet, leases, ledger, queue, usage

MODULES: tuple[ModuleType, ...] = (fleet, queue, leases, ledger, compliance, usage)
