#!/usr/bin/env bash
# Template push to N simulated agents against N etcd watchers; see BENCHMARKS.md.
#
# Usage: scripts/bench-agents.sh [CapstanBench agents options...]
#   e.g. scripts/bench-agents.sh --agents 1000 --runs 1
# Installs etcd (Debian/Ubuntu package etcd-server) when /usr/bin/etcd is missing, and raises the
# open-file limit: 10,000 agents and 10,000 watchers need as many connections.
# Set CAPSTAN_BENCH_SCRATCH to build in another directory than .build.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ ! -x /usr/bin/etcd ]]; then
    echo "bench-agents.sh: /usr/bin/etcd is missing; installing etcd-server" >&2
    sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update
    $sudo apt-get install -y etcd-server
fi

ulimit -n "$(ulimit -Hn)" || true

scratch=()
if [[ -n "${CAPSTAN_BENCH_SCRATCH:-}" ]]; then
    scratch=(--scratch-path "$CAPSTAN_BENCH_SCRATCH")
fi

exec swift run -c release "${scratch[@]}" CapstanBench agents "$@"
