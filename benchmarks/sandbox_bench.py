"""Benchmark: sandbox start-up time and request throughput through our client vs a naive client.

Prints a table. Same sandbox, same run. The naive baseline opens a new connection per request
(plain `requests.get`), as a hand-written script would; ours reuses a pooled Session.
Run: python benchmarks/sandbox_bench.py [--requests N] [--latency-ms MS]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import time

import requests

from reconciler.client import ApiClient
from reconciler.sandbox import Sandbox, SandboxConfig


def startup_seconds(runs: int = 5) -> list[float]:
    """Wall time from launching `reconciler sandbox serve` to its base URL being printed."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "reconciler", "sandbox", "serve", "--state-file",
                                     f"{tmp}/s.json"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            assert proc.stdout is not None
            proc.stdout.readline()
            times.append(time.perf_counter() - started)
            proc.terminate()
            proc.wait()
    return times


def throughput(base_url: str, token: str, n: int, workers: int, naive: bool) -> float:
    url = f"{base_url}api/service/v1/apps/snowflake-crawler/inputs"
    headers = {"Authorization": f"Bearer {token}"}
    client = ApiClient(base_url, token)

    def one(_: int) -> None:
        if naive:
            requests.get(url, headers=headers, timeout=30).raise_for_status()
        else:
            client.get_input_contract("snowflake-crawler")

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(n)))
    client.close()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()

    starts = startup_seconds()
    print(f"sandbox serve start-up: median {statistics.median(starts):.2f} s, max {max(starts):.2f} s over {len(starts)} runs")
    print()
    print(f"{'client':<28}{'workers':>8}{'requests/s':>14}")
    with Sandbox(SandboxConfig(token="bench", latency_ms=args.latency_ms, persist_interval=0.2)).start() as sandbox:
        for workers in (1, 8):
            for naive in (True, False):
                rate = throughput(sandbox.base_url, "bench", args.requests, workers, naive)
                name = "naive (connection per call)" if naive else "reconciler ApiClient"
                print(f"{name:<28}{workers:>8}{rate:>14.0f}")


if __name__ == "__main__":
    main()
