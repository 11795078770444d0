#!/usr/bin/env bash
# Install Debian's Chromium with apt-get, only if missing, for the docs page's browser test
# (tests/api/test_docs_browser.py drives it headless through Playwright). Idempotent: exits 0
# without touching anything when /usr/bin/chromium is already there. Needs root for apt-get.
# Usage: scripts/install-chromium.sh
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-chromium: must run as root to install chromium" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "install-chromium: installing chromium" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

echo "install-chromium: ok ($(chromium --version 2>/dev/null || echo 'chromium ?'))"
