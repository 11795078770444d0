"""Metering, rating and invoices: the pure core that turns GPU allocations into money.

Data flows one way through four small modules, each pure and deterministic (no clock, no
I/O, no SQLAlchemy; ``now`` and every setting are arguments):

* :mod:`.usage` cuts allocation intervals (one GPU, one run) into usage records at UTC
  period boundaries and price-plan changes; overlaps are errors, never double counts.
* :mod:`.plans` holds versioned, dated price plans; :mod:`.money` rounds to a currency's
  minor units from CLDR data (Babel), never by hand-written tables.
* :mod:`.rating` prices a tenant's period: reserved commitments, usage by capacity class,
  lending credits and SLA credits with their evidence.
* :mod:`.invoices` issues immutable invoices and credit notes; :mod:`.render` writes them
  as CSV and JSON.

Money is ``Decimal``, time is timezone-aware UTC, ids are stable strings.
"""
