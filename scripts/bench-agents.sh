#!/usr/bin/env bash
# Template push to N simulated agents against N etcd watchers, or (with `rollout` first) a
# rollout's steps to 10 % then 100 % of N simulated agents against a plain push; see BENCHMARKS.md.
#
# Usage: scripts/bench-agents.sh [CapstanBench agents options...]
#        scripts/bench-agents.sh rollout [CapstanBench rollout options...]
#   e.g. scripts/bench-agents.sh --agents 1000 --runs 1
#        scripts/bench-agents.sh rollout --agents 1000,10000 --runs 3
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

command=agents
if [[ "${1:-}" == "rollout" ]]; then
    command=rollout
    shift
fi

exec swift run -c release "${scratch[@]}" CapstanBench "$command" "$@"
