"""The ledger's pure core: a tamper-evident, append-only log of audit records.

* :mod:`~gpulease.ledger.canonical`: RFC 8785 canonical JSON, the bytes of a record's leaf.
* :mod:`~gpulease.ledger.merkle`: RFC 9162 Merkle trees (appends, roots, inclusion and
  consistency proofs and their verification).
* :mod:`~gpulease.ledger.keys` and :mod:`~gpulease.ledger.heads`: Ed25519 keys and key ids,
  and signed tree heads, verified against keys with validity periods.
* :mod:`~gpulease.ledger.proofs`: a record's inclusion proof under a signed head, and the
  consistency of two heads, in the JSON form reports carry.
* :mod:`~gpulease.ledger.bundle`: the export bundle and ``verify_bundle``, an auditor's
  offline check that names the first bad record.

Pure and deterministic (no database, no clock: timestamps are arguments; no file I/O: the
private key files are ``services.ledger_keys``'s). The package imports none of its modules here,
so the hashing modules load without the signature library.
"""
