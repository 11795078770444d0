"""Run every benchmark in turn (``make bench``). Figures only; nothing passes or fails."""

from __future__ import annotations

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
    for script in SCRIPTS:
        print(f"\n== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
