"""Benchmark: a trace replayed over four sites under three dispatch policies (issue 19).

The sites are the demo's shapes scaled down so that where a job goes matters: Jakarta with
4 GB200 NVL72 racks (288 GPUs), Singapore, Johor Bahru and Bangkok with 2 HGX racks of
4 x 8 GPUs each (64 GPUs each). The trace is the shipped Philly digest's first ``--jobs``
jobs of its four busiest virtual clusters, one tenant each, homed one per site, each with a
lease of a quarter of its home site; jobs larger than 72 GPUs are dropped (no site could
place them). Johor Bahru refuses the Jakarta tenant (as the Malaysian pack refuses a tenant
headquartered in an arms-embargoed country). Arrivals are compressed to an offered load of
``--load`` of the four sites' GPUs together. Each policy runs the same jobs:

* ``home``: every tenant's jobs at its home site;
* ``first-admits``: the first site (in the order jkt1, sgp1, jhb1, bkk1) that admits the
  tenant and could place the shape;
* ``gpulease``: ``scheduler.dispatch``, fed from every site's state at the arrival.

Figures are simulated (the same on any machine): average JCT, utilisation of every site's
GPUs over the run's window, jobs refused, and per site jobs, JCT and utilisation.

    PYTHONPATH=src python benchmarks/bench_multisite_sim.py [--jobs 3000] [--load 0.8]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from gpulease.domain.models import LeaseGuarantee
from gpulease.inventory.topology import ClusterSpec
from gpulease.sim.multisite import DispatchPolicy, SimSite, simulate_sites
from gpulease.sim.traces import compress_to_load, load_philly
from gpulease.sim.workload import Workload

PHILLY = Path(__file__).parents[1] / "src" / "gpulease" / "data" / "traces" / "philly.csv.xz"
SHAPES = {
    "jkt1": ("ID", ClusterSpec(4, 18, 4, "gb200-nvl72")),
    "sgp1": ("SG", ClusterSpec(2, 4, 8, "hgx-8gpu")),
    "jhb1": ("MY", ClusterSpec(2, 4, 8, "hgx-8gpu")),
    "bkk1": ("TH", ClusterSpec(2, 4, 8, "hgx-8gpu")),
}


def scenario(jobs: int, load: float) -> tuple[Workload, list[SimSite], dict[str, str]]:
    trace = load_philly(PHILLY)
    busiest = [vc for vc, _ in Counter(j.spec.tenant for j in trace.jobs).most_common(4)]
    chosen = [j for j in trace.jobs if j.spec.tenant in busiest and j.spec.gpus <= 72][:jobs]
    total = sum(spec.total_gpus for _country, spec in SHAPES.values())
    workload = compress_to_load(Workload("philly-4vc", chosen), total, load)
    home = dict(zip(busiest, SHAPES, strict=True))
    end = max(j.spec.submit_time for j in workload.jobs) * 10 + 1e9
    sites = [
        SimSite(
            site_id,
            country,
            spec,
            leases=tuple(
                LeaseGuarantee(f"lease-{vc}", vc, spec.total_gpus // 4, 0.0, end)
                for vc, at in home.items()
                if at == site_id
            ),
            refuses=frozenset({busiest[0]}) if site_id == "jhb1" else frozenset(),
        )
        for site_id, (country, spec) in SHAPES.items()
    ]
    return workload, sites, home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--load", type=float, default=0.8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    workload, sites, home = scenario(args.jobs, args.load)
    print(
        f"{len(workload.jobs)} jobs of 4 Philly VCs over 4 sites "
        f"({', '.join(f'{s.site_id} {s.cluster.total_gpus} GPUs' for s in sites)}), "
        f"offered load {args.load:g}; homes: {home}"
    )
    summaries = []
    header = (
        f"{'policy':13} {'avg JCT h':>10} {'util':>6} {'refused':>7}  per site: jobs / JCT h / util"
    )
    print(header)
    for policy in DispatchPolicy:
        run = simulate_sites(workload.jobs, sites, home, dispatch_policy=policy)
        summary = run.summary()
        summaries.append(summary)
        per_site = "  ".join(
            f"{site} {fig['jobs']}/{(fig['avg_jct_s'] or 0) / 3600:.2f}/{fig['utilization']:.0%}"
            for site, fig in summary["sites"].items()
        )
        print(
            f"{policy.value:13} {(summary['avg_jct_s'] or 0) / 3600:>10.2f} "
            f"{summary['utilization']:>6.1%} {summary['jobs_refused']:>7}  {per_site}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(summaries, indent=2))


if __name__ == "__main__":
    main()
