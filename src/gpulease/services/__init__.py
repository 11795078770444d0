"""Use cases: the only package that opens transactions; cores decide, services persist."""
