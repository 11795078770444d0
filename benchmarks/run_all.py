"""Run every benchmark in turn (``make bench``). Figures only; nothing passes or fails.

``--live REF`` also runs ``bench_live_pass.py`` (PostgreSQL; the live scheduler's passes at
the demo site's load, REF as the "before" side) for ``--live-minutes`` (default 10).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_tiresias.py",
    "bench_sim_speed.py",
    "bench_step_latency.py",
    "bench_reference_mix.py",
    "bench_submit.py",  # needs PostgreSQL; add --sbatch by hand for the Slurm comparison
    "bench_matching_quality.py",
    "bench_screening_speed.py",
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--live", metavar="REF", help="also run bench_live_pass.py against REF")
    parser.add_argument("--live-minutes", type=float, default=10.0)
    args = parser.parse_args()
    runs = [[script] for script in SCRIPTS]
    if args.live:
        runs.append(
            ["bench_live_pass.py", "--baseline", args.live, "--minutes", str(args.live_minutes)]
        )
    for script, *flags in runs:
        print(f"\n== {script} {' '.join(flags)}".rstrip(), flush=True)
        subprocess.run([sys.executable, str(HERE / script), *flags], check=True, cwd=HERE)
