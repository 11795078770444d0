"""Ledger core figures: appends, roots, proofs, proof sizes, head signatures, bundle checks.

For each size N (default 10^4, 10^5, 10^6) it builds audit-like records (seeded), their RFC
8785 bytes, then measures in CPU time (``time.process_time``, so other processes on a shared
machine do not count):

* canonical JSON: records/s;
* appends/s into :class:`MerkleTree` (keeps every subtree, answers proofs) and into
  :class:`MerkleFrontier` (right edge only), leaf data given;
* root of the whole tree, and of a past size (N/3);
* inclusion proofs (random leaves, tree size N) and consistency proofs (random old size to N):
  generation and verification time per proof, and proof size in hashes and bytes;
* Ed25519 head signing and verification (when ``cryptography`` is importable);
* ``verify_bundle`` over all N records with a head every ``--head-every`` records (skipped
  with ``--no-bundle``): the offline auditor's check, canonicalisation included, from the
  in-memory bundle and from its bytes (strict JSON read included).

Figures are printed, never judged: timing on a shared machine is noisy.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_ledger_core.py \
        [--sizes 10000,100000,1000000] [--proofs 2000] [--head-every 4096] [--no-bundle]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import peak_rss_mib
from gpulease.ledger.canonical import canonical_json
from gpulease.ledger.merkle import (
    MerkleFrontier,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def records(count: int, rng: random.Random) -> list[dict[str, Any]]:
    kinds = ["job.started", "job.finished", "lease.created", "node.drained", "kyc.approved"]
    return [
        {
            "seq": seq,
            "kind": rng.choice(kinds),
            "actor": f"user-{rng.randrange(500)}",
            "tenant": f"tenant-{rng.randrange(80)}",
            "at": (T0 + timedelta(seconds=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "detail": {"gpus": rng.randrange(1, 73), "site": rng.choice(["jkt-1", "sgp-2"])},
        }
        for seq in range(count)
    ]


def cpu(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def per_op_us(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:8.1f} us"


def bench_size(size: int, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    recs = records(size, rng)
    datas: list[bytes] = []
    seconds = cpu(lambda: datas.extend(canonical_json(r) for r in recs))
    print(f"\n== N = {size:,} records (mean {sum(map(len, datas)) / size:.0f} bytes canonical)")
    print(f"canonical JSON          {size / seconds:12,.0f} records/s")

    tree = MerkleTree()
    seconds = cpu(lambda: [tree.append(d) for d in datas])
    print(f"append, MerkleTree      {size / seconds:12,.0f} leaves/s   (leaf hash included)")
    frontier = MerkleFrontier()
    seconds = cpu(lambda: [frontier.append(d) for d in datas])
    print(f"append, MerkleFrontier  {size / seconds:12,.0f} leaves/s")
    hashes = [leaf_hash(d) for d in datas]
    again = MerkleTree()
    seconds = cpu(lambda: [again.append_leaf_hash(h) for h in hashes])
    print(f"append leaf hash, tree  {size / seconds:12,.0f} leaves/s   (hash given)")
    stored = sum(len(level) for level in tree._levels)
    print(f"tree storage            {stored / 2**20:12.1f} MiB of digests")

    assert tree.root() == frontier.root()
    reps = 200
    seconds = cpu(lambda: [tree.root() for _ in range(reps)])
    print(f"root (size N)           {per_op_us(seconds, reps)}")
    seconds = cpu(lambda: [tree.root(size // 3) for _ in range(reps)])
    print(f"root (size N/3)         {per_op_us(seconds, reps)}")
    seconds = cpu(lambda: [frontier.root() for _ in range(reps)])
    print(f"root, frontier          {per_op_us(seconds, reps)}")

    root = tree.root()
    leaves = [rng.randrange(size) for _ in range(args.proofs)]
    proofs: list[list[bytes]] = []
    seconds = cpu(lambda: proofs.extend(tree.inclusion_proof(i) for i in leaves))
    print(f"inclusion proof, make   {per_op_us(seconds, len(leaves))}")
    checks: list[bool] = []
    seconds = cpu(
        lambda: checks.extend(
            verify_inclusion(hashes[i], i, size, p, root)
            for i, p in zip(leaves, proofs, strict=True)
        )
    )
    assert all(checks)
    lengths = [len(p) for p in proofs]
    print(f"inclusion proof, verify {per_op_us(seconds, len(leaves))}")
    print(
        f"inclusion proof size    {min(lengths)}..{max(lengths)} hashes, "
        f"max {max(lengths) * 32} bytes"
    )

    olds = [rng.randrange(1, size) for _ in range(args.proofs)]
    consistency: list[list[bytes]] = []
    seconds = cpu(lambda: consistency.extend(tree.consistency_proof(m, size) for m in olds))
    print(f"consistency proof, make {per_op_us(seconds, len(olds))}")
    old_roots = [tree.root(m) for m in olds]
    checks.clear()
    seconds = cpu(
        lambda: checks.extend(
            verify_consistency(m, size, r, root, p)
            for m, r, p in zip(olds, old_roots, consistency, strict=True)
        )
    )
    assert all(checks)
    lengths = [len(p) for p in consistency]
    print(f"consistency, verify     {per_op_us(seconds, len(olds))}")
    print(
        f"consistency proof size  {min(lengths)}..{max(lengths)} hashes, "
        f"max {max(lengths) * 32} bytes"
    )
    if args.bundle:
        bench_bundle(recs, tree, args.head_every)


def bench_bundle(recs: list[dict[str, Any]], tree: MerkleTree, every: int) -> None:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from gpulease.ledger.bundle import build_bundle, verify_bundle
        from gpulease.ledger.heads import KeyPeriod, sign_tree_head, verify_tree_head
        from gpulease.ledger.keys import public_key_bytes
    except ImportError:
        print("heads and bundle       skipped: cryptography is not installed")
        return
    key = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
    keys = (KeyPeriod(public_key_bytes(key), valid_from=T0),)
    sizes = list(range(every, len(recs) + 1, every)) or [len(recs)]
    heads: list[Any] = []
    seconds = cpu(
        lambda: heads.extend(
            sign_tree_head(key, tree_size=s, root_hash=tree.root(s), timestamp=T0) for s in sizes
        )
    )
    print(f"head: root + sign       {per_op_us(seconds, len(sizes))}   ({len(sizes)} heads)")
    seconds = cpu(lambda: [verify_tree_head(h, keys) for h in heads])
    print(f"head: verify signature  {per_op_us(seconds, len(heads))}")
    bundle = build_bundle(recs, heads, keys, [tree.leaf_hash(i) for i in range(len(recs))])
    reports: list[Any] = []
    seconds = cpu(lambda: reports.append(verify_bundle(bundle)))
    assert reports[0].ok, reports[0].summary()
    print(
        f"verify_bundle           {seconds:8.2f} s CPU for {len(recs):,} records "
        f"({len(recs) / seconds:,.0f} records/s), heads every {every}"
    )
    data: list[bytes] = []
    seconds = cpu(lambda: data.append(bundle.dumps()))
    print(f"bundle bytes            {len(data[0]) / 2**20:8.1f} MiB (written in {seconds:.2f} s)")
    reports.clear()
    seconds = cpu(lambda: reports.append(verify_bundle(data[0])))
    assert reports[0].ok, reports[0].summary()
    print(f"verify_bundle, bytes    {seconds:8.2f} s CPU (strict JSON read included)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--head-every", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-bundle", dest="bundle", action="store_false")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args)
    print(f"\npeak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
