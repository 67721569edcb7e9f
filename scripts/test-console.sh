#!/usr/bin/env bash
# The console's browser tests: Debian's Chromium, headless, driven by Selenium through
# chromium-driver, against real server and agent processes (Tests/browser). Screenshots of every
# page go to .build/screenshots/ (or $CAPSTAN_SCREENSHOTS). Expects the build scripts/test.sh made.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import selenium" 2>/dev/null || python3 -m pip install -q "selenium>=4.10"
python3 -m unittest discover -s Tests/browser -p 'test_*.py' -v "$@"
