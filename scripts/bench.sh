#!/usr/bin/env bash
# Benchmarks Capstan against etcd on this machine; see BENCHMARKS.md.
#
# Usage: scripts/bench.sh [CapstanBench store options...]
#   e.g. scripts/bench.sh --duration 2s --runs 1
# Installs etcd (Debian/Ubuntu package etcd-server) when /usr/bin/etcd is missing.
# Set CAPSTAN_BENCH_SCRATCH to build in another directory than .build.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ ! -x /usr/bin/etcd ]]; then
    echo "bench.sh: /usr/bin/etcd is missing; installing etcd-server" >&2
    sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update
    $sudo apt-get install -y etcd-server
fi

scratch=()
if [[ -n "${CAPSTAN_BENCH_SCRATCH:-}" ]]; then
    scratch=(--scratch-path "$CAPSTAN_BENCH_SCRATCH")
fi

exec swift run -c release "${scratch[@]}" CapstanBench store "$@"
