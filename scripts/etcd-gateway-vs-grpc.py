#!/usr/bin/env python3
"""What etcd's HTTP/JSON gateway costs over its native gRPC API, measured on etcd itself.

Starts a throwaway single-member etcd on loopback and drives it with puts of 256-byte values
through each path in turn (gRPC with etcd's own protobuf stubs, and the gateway's POST
/v3/kv/put with JSON over keep-alive HTTP/1.1 connections), from the same asyncio client at
the same concurrency. Reports, per path, the median over the runs of puts per second and of
etcd's CPU time per put (from /proc), which is the part a client library cannot change.
The client is Python, so absolute throughput is client-bound; the CPU per put is not.

Usage: scripts/etcd-gateway-vs-grpc.py [--clients 16] [--seconds 5] [--runs 3]
Needs: etcd (apt-get install etcd-server) and `pip install etcd3` (for the gRPC stubs).
"""
import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
import grpc  # noqa: E402
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc  # noqa: E402

VALUE = b"v" * 256


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def grpc_worker(stub, worker, deadline, counter):
    n = 0
    while time.monotonic() < deadline:
        await stub.Put(rpc_pb2.PutRequest(key=f"grpc/{worker}/{n}".encode(), value=VALUE))
        n += 1
    counter.append(n)


async def gateway_worker(port, worker, deadline, counter):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    value = base64.b64encode(VALUE).decode()
    while time.monotonic() < deadline:
        key = base64.b64encode(f"gw/{worker}/{n}".encode()).decode()
        body = json.dumps({"key": key, "value": value}).encode()
        writer.write(
            b"POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        headers = head.decode().lower()
        if "content-length:" in headers:
            length = int(headers.split("content-length:")[1].split("\r\n")[0])
            await reader.readexactly(length)
        else:  # chunked
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        n += 1
    writer.close()
    counter.append(n)


async def measure(path, pid, port, clients, seconds):
    counter = []
    deadline = time.monotonic() + seconds
    before = cpu_seconds(pid)
    started = time.monotonic()
    if path == "gRPC":
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rpc_pb2_grpc.KVStub(channel)
            await asyncio.gather(*(grpc_worker(stub, w, deadline, counter) for w in range(clients)))
    else:
        await asyncio.gather(*(gateway_worker(port, w, deadline, counter) for w in range(clients)))
    elapsed = time.monotonic() - started
    puts = sum(counter)
    return puts / elapsed, (cpu_seconds(pid) - before) / puts * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="etcd-gw-vs-grpc-")
    port, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    etcd = subprocess.Popen(
        [args.etcd, "--name", "m", "--data-dir", f"{directory}/data", "--listen-client-urls", url,
         "--advertise-client-urls", url, "--listen-peer-urls", peer_url,
         "--initial-advertise-peer-urls", peer_url, "--initial-cluster", f"m={peer_url}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1)
        results = {"gRPC": [], "gateway": []}
        for run in range(args.runs):
            order = ["gRPC", "gateway"] if run % 2 == 0 else ["gateway", "gRPC"]
            for path in order:
                rate, cpu = asyncio.run(measure(path, etcd.pid, port, args.clients, args.seconds))
                results[path].append((rate, cpu))
                print(f"run {run + 1}/{args.runs} {path:8} {rate:8.0f} puts/s  etcd CPU {cpu:6.1f} µs/put", flush=True)
        print(f"\n{args.clients} clients, {args.seconds:g} s per run, medians of {args.runs} runs:")
        print("| Path | Puts/s (client-bound) | etcd CPU per put |")
        print("|---|---:|---:|")
        medians = {}
        for path, values in results.items():
            rate = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            medians[path] = cpu
            print(f"| {path} | {rate:.0f} | {cpu:.1f} µs |")
        print(f"| gateway / gRPC | | {medians['gateway'] / medians['gRPC']:.2f}× |")
    finally:
        etcd.terminate()
        etcd.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
