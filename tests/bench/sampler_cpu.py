#!/usr/bin/env python3
"""CPU of Granular's OS sampler thread (`granular-os-sampler`) in the release demo-service,
with wait sampling on (GRANULAR_WAIT_SAMPLE_HZ=200, the default) and off (0), side by side:
idle, and under a closed-loop load of healthy `GET /messages?steps=yield` requests from four
client threads. The service runs one worker, GRANULAR_SAMPLE=violations, artifacts off, and
exports to a closed port (nothing is violating; export failures are not on this path).

Figures: the sampler thread's on-CPU ns (`/proc/<pid>/task/<tid>/schedstat`) over each phase
divided by its wall time, per round; configurations alternate within a round.

Usage: cargo build --release -p granular-examples --bin demo-service
       python3 tests/bench/sampler_cpu.py [--rounds 3] [--seconds 10]
"""
import argparse
import os
import socket
import subprocess
import threading
import time
import urllib.request

EXE = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "demo-service")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sampler_ns(pid):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith("granular-os"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                return int(f.read().split()[0])
        except OSError:
            continue
    raise SystemExit(f"no granular-os-sampler thread in process {pid}")


def phase(wait_hz, busy, seconds):
    port = free_port()
    env = dict(
        os.environ,
        DEMO_LISTEN=f"127.0.0.1:{port}",
        DEMO_WORKERS="1",
        GRANULAR_WAIT_SAMPLE_HZ=str(wait_hz),
        GRANULAR_SAMPLE="violations",
        GRANULAR_ARTIFACTS="none",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_METRICS_EXPORTER="none",
        RUST_LOG="error",
    )
    proc = subprocess.Popen([EXE], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/messages"
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"{EXE} did not answer on port {port}")
        time.sleep(1)
        served = [0]
        end = time.time() + seconds

        def client():
            while time.time() < end:
                urllib.request.urlopen(base + "?steps=yield", timeout=5).read()
                served[0] += 1

        before, t0 = sampler_ns(proc.pid), time.time()
        if busy:
            clients = [threading.Thread(target=client) for _ in range(4)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
        else:
            time.sleep(seconds)
        after, wall = sampler_ns(proc.pid), time.time() - t0
        return (after - before) / wall / 1e6, served[0] / wall
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    if not os.access(EXE, os.X_OK):
        raise SystemExit(f"{EXE} is missing: cargo build --release -p granular-examples --bin demo-service")
    print("| round | load | wait sampling | sampler CPU ms/s | req/s |")
    print("|---|---|---|---|---|")
    for r in range(1, args.rounds + 1):
        for busy in (False, True):
            for hz in (200, 0):
                ms, rps = phase(hz, busy, args.seconds)
                print(f"| {r} | {'busy' if busy else 'idle'} | {'200 Hz' if hz else 'off'} | {ms:.2f} | {rps:.0f} |", flush=True)


if __name__ == "__main__":
    main()
