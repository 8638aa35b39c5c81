"""Benchmark: one apply under 30% injected faults of one kind at a time: duplicates, retries, time.

Same sandbox settings for every row (served in this process, 50 ms latency, the server's 1 s
Retry-After). Each row is one apply of a fresh tenant, never re-run, so what it leaves is what an
unattended CI job would leave: duplicated credentials or triggers, changes left unverified.
The manifests: 50 credentials and 50 apps, each app with one schedule (100 resources).
Run: python benchmarks/faults_bench.py [--kinds 429,drop-after] [--rate 0.3] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from reconciler.client import ApiClient
from reconciler.engine import apply
from reconciler.sandbox import Sandbox, SandboxConfig

from common import TOKEN, introspect

ENV = {"USER": "loader", "PW": "bench-secret"}


def manifests(folder: Path, count: int) -> None:
    docs: list[dict[str, Any]] = []
    for i in range(count):
        docs.append({"kind": "Credential", "metadata": {"name": f"cred-{i:02d}"},
                     "spec": {"connector": "postgres", "authType": "basic", "host": f"db{i}.example.com",
                              "username": "${env:USER}", "password": "${env:PW}"}})
        docs.append({"kind": "App", "metadata": {"name": f"app-{i:02d}"},
                     "spec": {"appId": "postgres-crawler", "credentialRef": f"cred-{i:02d}", "connection": {"name": f"c{i}"},
                              "inputs": {}, "schedules": [{"cron": f"{i % 60} 3 * * *"}]}})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.yaml").write_text(yaml.safe_dump_all([{"apiVersion": "reconciler/v1", **d} for d in docs]))


def one(kind: str, rate: float, latency_ms: float, count: int) -> tuple[Any, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(SandboxConfig(token=TOKEN, seed=3, latency_ms=latency_ms, fault_rate=rate, fault_kinds=(kind,),
                                        persist_interval=0)).start()
        try:
            folder = Path(tmp) / "m"
            manifests(folder, count)
            started = time.perf_counter()
            with ApiClient(sandbox.base_url, TOKEN, max_retries=8) as client:
                _, report = apply([str(folder)], client, api_key=TOKEN, env=ENV, tenant_id=sandbox.base_url,
                                        parallelism=8)
                lowest = client.budget.lowest if client.budget is not None else None
            seconds = time.perf_counter() - started
            state = introspect(sandbox, "state")
            names = collections.Counter(c["record"]["name"] for c in state["credentials"].values())
            triggers = collections.Counter(s["slug"] for s in state["schedules"].values())
            statuses = collections.Counter(o.status.value for o in report.outcomes)
            return (kind, round(seconds, 1), introspect(sandbox, "stats")["total"], sum(report.retries.values()), lowest,
                    sum(n - 1 for n in names.values()), sum(n - 1 for n in triggers.values()),
                    statuses.get("unverified", 0), statuses.get("failed", 0) + statuses.get("skipped", 0))
        finally:
            sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kinds", default="429,500,502,503,504,drop,drop-after")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    header = ("fault", "seconds", "requests", "retries", "budget low", "dup creds", "dup triggers", "unverified",
              "failed/skipped")
    print(f"one apply of {args.count} credentials + {args.count} scheduled apps, {args.rate:.0%} faults, "
          f"{args.latency_ms:.0f} ms latency")
    print("".join(f"{h:>15}" for h in header))
    for kind in args.kinds.split(","):
        print("".join(f"{str(v):>15}" for v in one(kind, args.rate, args.latency_ms, args.count)), flush=True)


if __name__ == "__main__":
    main()
