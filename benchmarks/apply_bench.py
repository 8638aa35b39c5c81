"""Benchmark: apply N app creates, then N app updates, against the sandbox; ours vs naive.

Same sandbox, same run. First the tenant is built: an apply that creates the N apps (no latency).
Then, with injected latency, the updates: the naive baseline updates one app after another (GET,
then PUT), as a first script would; ours makes one concurrent fetch, then the updates under the
shared request budget. Each of our rows shows the CPU this process spent in the apply (the sandbox
runs in a process of its own) per created or updated object, how many times the state file was
rewritten whole, and how many fsyncs were made (journal appends and rewrites), so that the cost of
recording a change can be compared across sizes: it must not grow with the tenant.

Run: python benchmarks/apply_bench.py [--apps 1000] [--latency-ms 50] [--parallelism 8]
                                      [--creates-only] [--schedules] [--profile FILE]
``--creates-only``: only the create run (a creation-heavy run at 10,000 apps takes a minute or two);
``--schedules``: one schedule per app (a create then also writes an intent ahead and its trigger id);
``--profile FILE``: profile the create run and write its statistics to FILE (pstats format; every
thread's with yappi when it is installed, else cProfile's of the main thread only).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import reconciler.state
from reconciler.client import ApiClient
from reconciler.engine import apply

from common import TOKEN, ServedSandbox, app_manifests, introspect


class Counted:
    """Counts the state file's full rewrites and every fsync of this process while it is installed."""

    def __init__(self) -> None:
        self.rewrites = self.fsyncs = 0
        self._write, self._fsync = reconciler.state.write_text_atomic, os.fsync

    def __enter__(self) -> Counted:
        def write(path: Path, text: str) -> None:
            self.rewrites += 1
            self._write(path, text)

        def fsync(fd: int) -> None:
            self.fsyncs += 1
            self._fsync(fd)
        reconciler.state.write_text_atomic = write  # type: ignore[assignment]
        os.fsync = fsync
        return self

    def __exit__(self, *exc: object) -> None:
        reconciler.state.write_text_atomic = self._write  # type: ignore[assignment]
        os.fsync = self._fsync


def measured(run: Callable[[], Any], profile: Path | None = None) -> tuple[float, float, Counted]:
    """Wall seconds, CPU seconds of this process, and the counts of one call; with ``profile``, its
    CPU profile written there."""
    with Counted() as counts, _profiled(profile):
        started, cpu = time.perf_counter(), time.process_time()
        run()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return seconds, cpu, counts


@contextlib.contextmanager
def _profiled(profile: Path | None) -> Iterator[None]:
    if profile is None:
        yield
        return
    try:
        import yappi  # the apply's work is in its worker threads, which cProfile does not see
    except ImportError:
        profiler = cProfile.Profile()
        profiler.enable()
        yield
        profiler.disable()
        profiler.dump_stats(str(profile))
        return
    yappi.set_clock_type("cpu")
    yappi.start()
    yield
    yappi.stop()
    yappi.get_func_stats().save(str(profile), type="pstat")  # read it with pstats
    yappi.clear_stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--creates-only", action="store_true", help="only the create run")
    parser.add_argument("--schedules", action="store_true",
                        help="one schedule per app (each create then records an intent and its trigger id too)")
    parser.add_argument("--profile", type=Path, help="CPU profile of the create run (pstats), written here")
    args = parser.parse_args()
    rows: list[tuple[str, int, float, float | None, Counted | None]] = []
    with tempfile.TemporaryDirectory() as tmp, ServedSandbox(tmp) as sandbox:
        folder = Path(tmp) / "m"
        app_manifests(folder, args.apps, "v0", schedule=args.schedules)

        def create() -> None:
            with ApiClient(sandbox.base_url, TOKEN) as client:  # the starting tenant, without latency
                plan, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id="bench", parallelism=16)
            assert plan.counts()["create"] == args.apps and not report.failed
        seconds, cpu, counts = measured(create, args.profile)
        what = "creates with a schedule" if args.schedules else "creates"
        rows.append((f"reconciler apply, {args.apps} {what} (0 ms), par. 16", introspect(sandbox, "stats")["total"],
                     seconds, cpu, counts))
        introspect(sandbox, "config", {"latency_ms": args.latency_ms})

        for parallelism in [] if args.creates_only else sorted({args.parallelism, 16}):
            app_manifests(folder, args.apps, f"p{parallelism}", schedule=args.schedules)
            introspect(sandbox, "reset", {"state": False, "stats": True})

            def update(parallelism: int = parallelism) -> None:
                with ApiClient(sandbox.base_url, TOKEN, parallelism=parallelism) as client:
                    plan, report = apply([str(folder)], client, api_key=TOKEN, env={}, tenant_id="bench",
                                         parallelism=parallelism)
                assert plan.counts()["update"] == args.apps and not report.failed
            seconds, cpu, counts = measured(update)
            rows.append((f"reconciler apply, {args.apps} updates, par. {parallelism}", introspect(sandbox, "stats")["total"],
                         seconds, cpu, counts))

        if not args.creates_only:
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
            rows.insert(1, (f"naive sequential GET+PUT (from {naive_count}, scaled)", naive_requests, naive_s, None, None))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"apply of {args.apps} apps: creates without latency, updates at {args.latency_ms:.0f} ms injected latency "
          "per request; CPU is this process's (the sandbox runs in its own)")
    print(f"{'':<56}{'requests':>9}{'seconds':>9}{'CPU s':>8}{'CPU ms/obj':>11}{'rewrites':>9}{'fsyncs':>8}")
    for name, count, seconds, cpu, counted in rows:
        figures = (f"{cpu:>8.1f}{cpu * 1000 / args.apps:>11.2f}{counted.rewrites:>9}{counted.fsyncs:>8}"
                   if cpu is not None and counted is not None else "")
        print(f"{name:<56}{count:>9}{seconds:>9.1f}{figures}")
    print(f"peak memory of the reconciler process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
