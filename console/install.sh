#!/usr/bin/env bash
# What the console's build and browser tests need, installed once: Debian's chromium (driven by
# playwright-core, which downloads no browser) and the pinned npm packages of package-lock.json
# (uPlot, whose built file the console serves from its own assets; playwright-core).
# Idempotent and cheap when already installed: each step is skipped when its result is present.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium is missing: run this script as root (apt-get install chromium)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# npm ci only when the lock changed since the last install (its copy is kept in node_modules).
if ! cmp -s package-lock.json node_modules/.package-lock.json.installed 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.json.installed
fi
# The console serves uPlot from its own assets (chalicelib/console/), so the page needs no network but the
# API's; the copies follow the lock (tests/unit/test_console_assets.py checks they match).
for pair in "uPlot.iife.min.js:uplot.js" "uPlot.min.css:uplot.css"; do
  cmp -s "node_modules/uplot/dist/${pair%%:*}" "../chalicelib/console/${pair##*:}" ||
    cp "node_modules/uplot/dist/${pair%%:*}" "../chalicelib/console/${pair##*:}"
done
