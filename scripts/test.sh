#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone on Debian with the Swift toolchain:
# installs what the tests need when it is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)   # promtool checks /metrics
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)      # the etcd engine and the benchmark peer
command -v curl >/dev/null 2>&1 || need+=(curl)             # the README tour and raw API calls
command -v chromium >/dev/null 2>&1 || need+=(chromium)     # the console's browser tests
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

swift build --build-tests
# At most 12 tests at a time: the suite starts dozens of real servers, agents and etcd members,
# and with every test at once on two cores a slow answer passes a deadline and reads as a failure.
swift test --skip-build --experimental-maximum-parallelization-width "${CAPSTAN_TEST_WIDTH:-12}" "$@"
# The whole API fuzzed from its OpenAPI document (schemathesis): no 5xx, answers as documented.
# Skipped when the run was narrowed to some tests (arguments given).
if (($# == 0)); then
    ./scripts/fuzz-api.sh --max-examples 50
    ./scripts/test-console.sh
fi
