"""Benchmark: plan N apps against the sandbox with injected latency, ours vs a naive baseline.

Same sandbox, same run. The baseline is what a first script does: list with the default page
size, then GET every app one by one. Ours: the largest pages, no per-app GET (list items carry
the rendered DAG), one contract fetch per app id, all concurrent.
Run: python benchmarks/plan_bench.py [--apps 1000] [--latency-ms 50] [--parallelism 8]
"""

from __future__ import annotations

import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

from reconciler.client import ApiClient
from reconciler.engine import make_plan
from reconciler.sandbox import Sandbox, SandboxConfig

from common import TOKEN, app_manifests, arguments, introspect, seeded_apps


def main() -> None:
    args = arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp, Sandbox(SandboxConfig(token=TOKEN, seed=1)).start() as sandbox:
        introspect(sandbox, "seed", {"apps": seeded_apps(args.apps)})
        manifests = Path(tmp) / "m"
        app_manifests(manifests, args.apps)
        introspect(sandbox, "config", {"latency_ms": args.latency_ms})

        introspect(sandbox, "reset", {"state": False, "stats": True})
        started = time.perf_counter()
        with ApiClient(sandbox.base_url, TOKEN) as client:
            items = list(client.iter_cursor("v1/app", "workflows"))
            for item in items:
                client.get_app(item["slug"])
        naive_s = time.perf_counter() - started
        naive_requests = introspect(sandbox, "stats")["total"]

        introspect(sandbox, "reset", {"state": False, "stats": True})
        started = time.perf_counter()
        with ApiClient(sandbox.base_url, TOKEN) as client:
            plan = make_plan([str(manifests)], client, api_key=TOKEN, env={}, parallelism=args.parallelism,
                             now=dt.datetime.now(dt.timezone.utc)).plan
        ours_s = time.perf_counter() - started
        ours_requests = introspect(sandbox, "stats")["total"]
        assert len(plan.changes) == args.apps and not plan.has_changes
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"plan of {args.apps} unchanged apps, {args.latency_ms:.0f} ms injected latency per request")
    print(f"{'':<36}{'requests':>10}{'seconds':>10}")
    print(f"{'naive (default pages + GET per app)':<36}{naive_requests:>10}{naive_s:>10.2f}")
    print(f"{'reconciler plan':<36}{ours_requests:>10}{ours_s:>10.2f}")
    print(f"peak memory of this process (sandbox included): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
