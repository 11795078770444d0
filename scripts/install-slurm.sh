#!/usr/bin/env bash
# Install Slurm (slurm-wlm) and munge with apt-get, only if missing, and make sure a munge
# key exists. Idempotent: exits 0 without touching anything when both are already present.
# Needs root (apt-get, /etc/munge). Usage: scripts/install-slurm.sh
set -euo pipefail

need=()
for bin in slurmctld slurmd sbatch sinfo; do
    command -v "$bin" >/dev/null 2>&1 || { need+=(slurm-wlm); break; }
done
for bin in munged munge unmunge; do
    command -v "$bin" >/dev/null 2>&1 || { need+=(munge); break; }
done

if ((${#need[@]} > 0)); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-slurm: must run as root to install: ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "install-slurm: installing ${need[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

key=/etc/munge/munge.key
if [[ ! -s $key ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-slurm: must run as root to create $key" >&2
        exit 1
    fi
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey -c -k "$key"
    else
        dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
    fi
    if getent passwd munge >/dev/null; then
        chown munge:munge /etc/munge "$key"
    fi
    chmod 0700 /etc/munge
    chmod 0400 "$key"
    echo "install-slurm: created $key" >&2
fi

echo "install-slurm: ok ($(slurmctld -V 2>/dev/null || echo 'slurm ?'), $(munged -V 2>/dev/null | head -n1 || echo 'munge ?'))"
