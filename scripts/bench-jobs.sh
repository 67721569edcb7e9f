#!/usr/bin/env bash
# A trivial job on N simulated agents, and on real agents against Ansible; see BENCHMARKS.md.
#
# Usage: scripts/bench-jobs.sh [CapstanBench jobs options...]
#   e.g. scripts/bench-jobs.sh --agents 100 --runs 1 --real-agents 5
# Installs what is missing (Debian/Ubuntu packages etcd-server, ansible, openssh-server) and
# prepares the Ansible side: a host key for sshd, sshd on 127.0.0.1 port 22 when nothing listens
# there, and a key of the benchmark's own (~/.ssh/capstan-bench) added to the user's
# ~/.ssh/authorized_keys (nothing of the user's is changed or removed). Raises the open-file
# limit: 10,000 agents need as many connections. Builds the capstan binary (the real agents and
# the CLI) beside the benchmark. Set CAPSTAN_BENCH_SCRATCH to build in another directory than .build.
set -euo pipefail

cd "$(dirname "$0")/.."

sudo=""
if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi

missing=()
[[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
command -v ansible >/dev/null || missing+=(ansible)
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
if ((${#missing[@]})); then
    echo "bench-jobs.sh: installing ${missing[*]}" >&2
    $sudo apt-get update >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi

# sshd for Ansible: host keys, its privilege separation directory, and a daemon on loopback.
if ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
    $sudo ssh-keygen -A
fi
listening() { (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; }
if ! listening; then
    echo "bench-jobs.sh: starting sshd on 127.0.0.1:22" >&2
    $sudo mkdir -p /run/sshd
    # Ansible opens one session per host at once (-f), all to this one daemon: let it take them.
    # SHLVL=1 makes the login shell of each session a nested one, so bash does not source the
    # user's ~/.bashrc for every command Ansible sends (as a server's non-interactive shells do
    # not): a development machine's .bashrc (pyenv, nvm) would otherwise be what is measured.
    $sudo /usr/sbin/sshd -o ListenAddress=127.0.0.1 -o Port=22 -o MaxStartups=200 -o MaxSessions=200 -o SetEnv=SHLVL=1
    for _ in $(seq 50); do listening && break; sleep 0.1; done
fi

# The key Ansible logs in with.
key="$HOME/.ssh/capstan-bench"
mkdir -p "$HOME/.ssh"
chmod 700 "$HOME/.ssh"
if [[ ! -f "$key" ]]; then
    ssh-keygen -q -t ed25519 -N "" -C capstan-bench -f "$key"
fi
touch "$HOME/.ssh/authorized_keys"
chmod 600 "$HOME/.ssh/authorized_keys"
if ! grep -qxF "$(cat "$key.pub")" "$HOME/.ssh/authorized_keys"; then
    cat "$key.pub" >>"$HOME/.ssh/authorized_keys"
fi
if ! ssh -i "$key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    "$(id -un)@127.0.0.1" true; then
    echo "bench-jobs.sh: cannot log in to 127.0.0.1 over SSH with $key; Ansible would fail" >&2
    exit 1
fi

ulimit -n "$(ulimit -Hn)" || true

scratch=()
if [[ -n "${CAPSTAN_BENCH_SCRATCH:-}" ]]; then
    scratch=(--scratch-path "$CAPSTAN_BENCH_SCRATCH")
fi

# Standard output is the report alone.
swift build -c release "${scratch[@]}" --product capstan >&2
exec swift run -c release "${scratch[@]}" CapstanBench jobs "$@"
