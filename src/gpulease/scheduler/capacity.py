"""Whose capacity a start runs on: its own lease, another's idle lease, or unleased GPUs.

Design. Leases are quotas (a number of GPUs over a window, ``quota``), not named chips, so
"whose GPUs" is an attribution the core makes at each start and the drivers record with the
run's allocations (the metering reads it back: ``metering.usage.Allocation``). A
:class:`LeaseBook` counts, for every lease, the GPUs attributed to it by running jobs (its
holder's guaranteed GPUs and the GPUs it lends), and the borrowed GPUs attributed to
unleased capacity. :func:`grant` splits one start into :class:`Share` s:

* a start within its tenant's guarantee (``Start.borrowed`` False) is attributed to the
  tenant's own active leases, earliest first, each up to its room (GPUs not yet
  attributed); what exceeds the rooms (a reclaim whose borrowers are still in their grace
  period) goes to the first of them all the same: the holder paid for it;
* a borrowed start takes unleased capacity first (the site's GPUs beyond every active
  guarantee, less the borrowed GPUs already there), then other tenants' active leases with
  room, earliest first: a holder is credited for lending only when its idle GPUs were
  needed. What is left (the book says every lease is full: GPUs of ended runs not yet given
  back in the same step, which cannot happen after :func:`attribute`'s releases) is
  unleased.

:func:`attribute` gives every start of a step its shares, after the step's timeouts and
requeues have given theirs back, in the order the starts are applied, so two starts of one
step never both count one lease's room. Same state, same decisions, same shares.

Invariants: a start's shares add up to its GPUs; a guaranteed share names a lease of the
job's own tenant; a lent share names another tenant's lease and that tenant; an attribution
is fixed for the run (a lease that ends while the run goes on is cut by the metering, not
here: ``metering.usage.split_at_leases``).
"""

from __future__ import annotations

from gpulease.scheduler.decisions import Decisions, Start
from gpulease.scheduler.lease_book import LeaseBook, Share, grant, ordered
from gpulease.scheduler.state import SchedulerState

__all__ = ["LeaseBook", "Share", "attribute", "grant"]


def attribute(state: SchedulerState, decisions: Decisions) -> None:
    """Give every start of ``decisions`` its shares (in place), as the state will be when the
    step's timeouts and requeues have released their GPUs (module doc)."""
    if not decisions.starts:
        return
    book = state.book.copy()
    for job_id in [*decisions.timeouts, *(p.job_id for p in decisions.requeues)]:
        book.give(state.jobs[job_id].shares)
    leases = ordered(state.leases, decisions.now)
    site_gpus = state.cluster.total_gpus
    jobs = state.jobs
    starts = []
    for start in decisions.starts:
        spec = jobs[start.job_id].spec
        shares = grant(
            spec.tenant,
            spec.gpus,
            borrowed=start.borrowed,
            leases=leases,
            book=book,
            site_gpus=site_gpus,
        )
        book.take(shares)
        # not ``dataclasses.replace``: its introspection costs more than the rest per start
        starts.append(Start(start.job_id, start.placement, start.borrowed, shares))
    decisions.starts = starts
