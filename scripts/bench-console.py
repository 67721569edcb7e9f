#!/usr/bin/env python3
"""Times the console's pages with many nodes: enrolls N nodes (no agents: the registry and its
store are what a page reads), runs a job on all of them (each node's result is `unreachable`, so
the job holds N results), logs in through the form, then times each page R times from the request
to the last byte (curl's time_total), printing the median and the slowest.

    scripts/bench-console.py [--nodes 10000] [--runs 7] [--binary PATH]

Builds nothing: give --binary (default: the release build, else the debug build).
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "browser"))
from harness import Process, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_binary():
    for config in ("release", "debug"):
        path = subprocess.run(["swift", "build", "-c", config, "--show-bin-path"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        if os.path.exists(os.path.join(path, "capstan")):
            return os.path.join(path, "capstan")
    sys.exit("build capstan first (swift build -c release)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--binary", default=None)
    args = parser.parse_args()
    binary = args.binary or default_binary()
    directory = tempfile.mkdtemp(prefix="capstan-bench-console-")
    token = "bench-console-root-token-0123456789"
    with open(os.path.join(directory, "root"), "w") as f:
        f.write(token)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Process([binary, "server", "--plain-http", "--data-dir", os.path.join(directory, "data"), "--listen", f"127.0.0.1:{port}",
                      "--root-token-file", os.path.join(directory, "root"), "--rate-limit-enroll", "0", "--rate-limit-api", "0",
                      "--log-level", "warning"])
    try:
        join = server.wait_for_line(r"agents join with: .* --join-token (\S+)").group(1)
        facts = {"hostname": "h", "os": "linux", "kernel": "6", "arch": "x86_64", "cpuCount": 2, "memoryBytes": 1 << 30,
                 "addresses": [], "agentVersion": "bench"}

        def enroll(index):
            body = json.dumps({"joinToken": join, "name": f"n{index:05d}", "labels": {"rack": f"r{index % 10}"}, "facts": facts}).encode()
            request = urllib.request.Request(url + "/v1/agent/enroll", data=body, method="POST", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=60).read()

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(enroll, range(args.nodes)))
        # Log in as a browser does.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        form = opener.open(url + "/ui/login").read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        opener.open(url + "/ui/login", data=urllib.parse.urlencode({"token": token, "csrf": csrf}).encode())
        cookie = next(c for c in opener.handlers if isinstance(c, urllib.request.HTTPCookieProcessor)).cookiejar
        session = next(c.value for c in cookie if c.name == "capstan_session")
        # A job on every node: none has an agent connected, so each ends at once, unreachable, and
        # the job holds a result per node.
        request = urllib.request.Request(url + "/v1/jobs", data=json.dumps({"selector": "", "command": ["true"]}).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        job = json.loads(urllib.request.urlopen(request, timeout=120).read())["id"]
        pages = ["/ui/", "/ui/nodes", f"/ui/nodes?page={max(1, args.nodes // 100)}", "/ui/nodes?selector=rack%3Dr3", "/ui/templates",
                 f"/ui/jobs/{job}", f"/ui/jobs/{job}?page={max(1, args.nodes // 100)}", "/ui/jobs"]
        print(f"{args.nodes} nodes, {args.runs} runs per page, binary {binary}")
        print("| Page | Median | Slowest | Size |")
        print("|---|---:|---:|---:|")
        for page in pages:
            times = []
            size = 0
            for _ in range(args.runs):
                out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download} %{http_code}",
                                      "-H", f"Cookie: capstan_session={session}", url + page], capture_output=True, text=True).stdout.split()
                assert out[2] == "200", f"{page}: HTTP {out[2]}"
                times.append(float(out[0]) * 1000)
                size = int(out[1])
            print(f"| `{page}` | {statistics.median(times):.0f} ms | {max(times):.0f} ms | {size // 1024} KiB |")
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
