"""Benchmark: apply N app updates against the sandbox with injected latency, ours vs naive.

Same sandbox, same run. The naive baseline updates one app after another (GET, then PUT), as a
first script would. Ours: one concurrent fetch, then the updates under the shared request budget.
Run: python benchmarks/apply_bench.py [--apps 1000] [--latency-ms 50] [--parallelism 8]
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from reconciler.client import ApiClient
from reconciler.engine import apply

from common import TOKEN, ServedSandbox, app_manifests, arguments, introspect


def main() -> None:
    args = arguments(__doc__)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ServedSandbox(tmp) as sandbox:
        folder = Path(tmp) / "m"
        app_manifests(folder, args.apps, "v0")
        with ApiClient(sandbox.base_url, TOKEN) as client:  # the starting tenant, without latency
            apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id="bench", parallelism=16)
        introspect(sandbox, "config", {"latency_ms": args.latency_ms})

        for parallelism in sorted({args.parallelism, 16}):
            app_manifests(folder, args.apps, f"p{parallelism}")
            introspect(sandbox, "reset", {"state": False, "stats": True})
            started = time.perf_counter()
            with ApiClient(sandbox.base_url, TOKEN, parallelism=parallelism) as client:
                plan, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id="bench",
                                           parallelism=parallelism)
            seconds = time.perf_counter() - started
            assert plan.counts()["update"] == args.apps and not report.failed
            rows.append((f"reconciler apply, parallelism {parallelism}", introspect(sandbox, "stats")["total"], seconds))

        introspect(sandbox, "reset", {"state": False, "stats": True})
        naive_count = min(args.apps, 200)  # the naive run is sequential: measure 200 and scale
        started = time.perf_counter()
        with ApiClient(sandbox.base_url, TOKEN) as client:
            for item in list(client.list_apps())[:naive_count]:
                args_now = client.get_app(item["slug"])["dag"]["extract"]["inputs"]["args"]
                client.update_app(item["slug"], {"connection": args_now["connection"], "credential_guid": "",
                                                 "extraction_method": "agent", "agent_json": {"agent": "a"},
                                                 "temp_table_regex": "naive"})
        naive_s = (time.perf_counter() - started) * args.apps / naive_count
        naive_requests = round(introspect(sandbox, "stats")["total"] * args.apps / naive_count)
        rows.insert(0, (f"naive sequential GET+PUT (from {naive_count}, scaled)", naive_requests, naive_s))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"apply of {args.apps} app updates, {args.latency_ms:.0f} ms injected latency per request")
    print(f"{'':<48}{'requests':>10}{'seconds':>10}")
    for name, count, seconds in rows:
        print(f"{name:<48}{count:>10}{seconds:>10.1f}")
    print(f"peak memory of the reconciler process (the sandbox runs in its own): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
