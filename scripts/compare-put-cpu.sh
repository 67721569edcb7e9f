#!/usr/bin/env bash
# Compares the server CPU per durable put of two or more CapstanBench builds, side by side.
#
# Usage: scripts/compare-put-cpu.sh [--rounds N] [--clients C] [--seconds S] BENCH_BINARY...
#   e.g. scripts/compare-put-cpu.sh --rounds 4 /tmp/before/CapstanBench .build/release/CapstanBench
#
# Each round starts every binary's `CapstanBench serve` in turn (a fresh data directory each
# time), warms it for 2 s, then drives it with wrk writing fresh 256-byte `.txt` keys from C
# connections (default 256) for S seconds (default 8), and prints puts/s and the server's CPU
# (user + system, from /proc) per put. Binaries alternate within each round, so a slow phase of
# the machine hits all of them. This is how the put-path changes in BENCHMARKS.md ("Where a
# put's time goes") were compared; the targets are judged by scripts/bench.sh, against etcd.
set -euo pipefail

rounds=3
clients=256
seconds=8
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "compare-put-cpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done
if [[ $# -eq 0 ]]; then
    echo "compare-put-cpu.sh: name at least one CapstanBench binary (see --help)" >&2
    exit 2
fi
for binary in "$@"; do
    if [[ ! -x "$binary" ]]; then echo "compare-put-cpu.sh: $binary is not an executable" >&2; exit 2; fi
done
command -v wrk >/dev/null || { echo "compare-put-cpu.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
server=""
cleanup() {
    if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Each wrk run writes keys of its own (`run` is set per run below), so every measured put creates a key.
cat > "$work/put.lua" <<'EOF'
local run = os.getenv("PUT_RUN") or "0"
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local n = 0
local prefix
local value = string.rep("x", 256)
local headers = {["Authorization"] = "Bearer capstan-bench-root-token", ["Content-Type"] = "text/plain; charset=utf-8"}
function init(args)
  prefix = "/v1/config/bench/" .. run .. "/p" .. id .. "-"
end
function request()
  n = n + 1
  return wrk.format("PUT", prefix .. n .. ".txt", headers, value)
end
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() {
    local binary="$1" port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -rf "$work/data" && mkdir -p "$work/data"
    "$binary" serve --data-dir "$work/data" --port "$port" > "$work/serve.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer capstan-bench-root-token" -H 'Content-Type: application/json' \
        -d '{"name":"bench"}' "http://127.0.0.1:$port/v1/namespaces"
    PUT_RUN=warmup wrk -t2 -c"$clients" -d2s -s "$work/put.lua" "http://127.0.0.1:$port" > /dev/null
    local before after rate report
    before=$(cpu_ticks "$server")
    report=$(PUT_RUN=measured wrk -t2 -c"$clients" -d"${seconds}s" -s "$work/put.lua" "http://127.0.0.1:$port")
    after=$(cpu_ticks "$server")
    if grep -q "Non-2xx" <<<"$report"; then
        echo "compare-put-cpu.sh: $binary refused puts:" >&2
        echo "$report" >&2
        exit 1
    fi
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$report")
    if [[ -z "$rate" ]] || ! python3 -c "import sys; sys.exit(0 if float('$rate') > 0 else 1)"; then
        echo "compare-put-cpu.sh: $binary served no puts:" >&2
        echo "$report" >&2
        exit 1
    fi
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
    local ticks_per_second
    ticks_per_second=$(getconf CLK_TCK)
    python3 -c "r = float('$rate'); print(f'{r:9.0f} puts/s  {($after - $before) / $ticks_per_second * 1e6 / (r * $seconds):5.0f} µs CPU/put  $binary')"
}

for round in $(seq "$rounds"); do
    echo "round $round"
    for binary in "$@"; do measure "$binary"; done
done
