#!/usr/bin/env bash
# Benchmarks Capstan against etcd on this machine; see BENCHMARKS.md.
#
# Usage: scripts/bench.sh [CapstanBench store options...]
#   e.g. scripts/bench.sh --duration 2s --runs 1
# Installs etcd (Debian/Ubuntu package etcd-server) when /usr/bin/etcd is missing, and wrk (the
# load generator the targets are judged on) when it is not in PATH.
# Set CAPSTAN_BENCH_SCRATCH to build in another directory than .build.
set -euo pipefail

cd "$(dirname "$0")/.."

missing=()
if [[ ! -x /usr/bin/etcd ]]; then missing+=(etcd-server); fi
if ! command -v wrk >/dev/null; then missing+=(wrk); fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "bench.sh: installing ${missing[*]}" >&2
    sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update
    $sudo apt-get install -y "${missing[@]}"
fi

scratch=()
if [[ -n "${CAPSTAN_BENCH_SCRATCH:-}" ]]; then
    scratch=(--scratch-path "$CAPSTAN_BENCH_SCRATCH")
fi

exec swift run -c release "${scratch[@]}" CapstanBench store "$@"
