"""Benchmark: the whole tool at scale, on a realistic corpus, against a served sandbox.

For each size (apps; credentials are 80 % of that): one file per app and per credential, a mix of
Snowflake crawlers (one or two schedules), BigQuery crawlers, Snowflake miners and Postgres crawlers
through an agent (the only apps without a credential of their own), with filters. Each figure is a
whole command in its own process (wall, CPU = user + system, peak RSS, as the OS accounts the
finished child), against the sandbox served in a process of its own, in the same run:

* seed: ``apply`` of the corpus onto an empty tenant (creates only, no latency);
* the floor: a script that only walks the app list's cursor pages, one after another (the part
  of a plan that cannot overlap: each page names the next);
* ``plan`` with no changes; up to ``--naive-max`` apps (1,000) also the naive SDK loop
  (``client.app.get_all`` pages, then ``client.app.get`` per app), when pyatlan is installed;
* ``validate`` (offline);
* ``apply`` of 10 % and of 100 % changed apps, against the network floor (the cursor walk plus the
  apply's writes at ``--parallelism`` at a time);
* ``apply`` of 10 % under a rate limit (no latency): the time of its changes (the report's
  closing figure) against the time the limit allows for their requests.

Run: python benchmarks/scale_bench.py [--sizes 1000,5000,10000] [--latency-ms 50] [--parallelism 16]
                                      [--rate-limit 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from common import TOKEN, ServedSandbox, introspect

PASSWORD = "bench-secret-value"


# -- the corpus ---------------------------------------------------------------------------------------


def _app(i: int, revision: str) -> str:
    kind = i % 5
    schedules = '[{cron: "0 2 * * *", timezone: UTC}]'
    credential = f"  credentialRef: cred-{i:05d}\n"
    if kind in (0, 3):
        app_id = "snowflake-crawler"
        inputs = (f'    include_filter: {{"^DB{i}$": ["^PUBLIC$", "^MARTS$"], "^RAW$": ["^EVENTS{revision}$"]}}\n'
                  "    exclude_views: false\n")
        if kind == 3:
            schedules = '[{cron: "0 2 * * *", timezone: Asia/Kolkata}, {cron: "30 14 * * SAT", timezone: UTC}]'
    elif kind == 1:
        app_id = "bigquery-crawler"
        inputs = f'    include_filter: {{"^proj{i}$": ["^analytics{revision}$"]}}\n    enable_bigquery_tag_sync: true\n'
    elif kind == 2:
        app_id = "snowflake-miner"
        inputs = f"    popularity_window_days: 30\n    database_name: SNOWFLAKE{revision}\n"
    else:
        app_id, credential = "postgres-crawler", ""
        inputs = ("    extraction_method: agent\n    agent_json: {agent-name: onprem, secret-store: vault}\n"
                  f'    include_filter: {{"^orders{i}$": ["^public{revision}$"]}}\n')
    return (f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: app-{i:05d}}}\nspec:\n  appId: {app_id}\n"
            f"{credential}  connection: {{name: conn-{i}, adminRoles: [\"$admin\"]}}\n  inputs:\n{inputs}"
            f"  schedules: {schedules}\n")


def _credential(i: int) -> str:
    connector = "bigquery" if i % 5 == 1 else "snowflake"
    return (f"apiVersion: reconciler/v1\nkind: Credential\nmetadata: {{name: cred-{i:05d}}}\nspec:\n"
            f"  connector: {connector}\n  authType: basic\n  host: acct{i}.example.com\n  port: 443\n"
            "  username: ${env:BENCH_USER}\n  password: ${env:BENCH_PASSWORD}\n  extra: {role: LOADER}\n")


def write_corpus(root: Path, apps: int) -> None:
    (root / "apps").mkdir(parents=True)
    (root / "credentials").mkdir()
    (root / "reconciler.yaml").write_text("apiVersion: reconciler/v1\nkind: Project\nmetadata: {name: bench}\n"
                                          "spec: {parallelism: 16}\n")
    for i in range(apps):
        (root / "apps" / f"app-{i:05d}.yaml").write_text(_app(i, ""))
        if i % 5 != 4:
            (root / "credentials" / f"cred-{i:05d}.yaml").write_text(_credential(i))


def change_apps(root: Path, apps: int, share: float, revision: str) -> int:
    """Change the inputs of the first ``share`` of the apps; how many were changed."""
    count = round(apps * share)
    for i in range(count):
        (root / "apps" / f"app-{i:05d}.yaml").write_text(_app(i, revision))
    return count


# -- measuring one command ----------------------------------------------------------------------------


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run one command to its end: wall seconds, CPU seconds and peak RSS (MB) of that process, as
    the OS accounts the finished child (``wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return {"exit": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                "rss_mb": usage.ru_maxrss / 1024, "stdout": out.read(), "stderr": err.read()}


# -- the baselines, run as their own processes --------------------------------------------------------


def walk(base_url: str) -> None:
    """The floor: only the app list's cursor pages, one after another, the largest pages allowed."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    cursor, apps = None, 0
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = session.get(f"{base_url}api/service/v1/app", params=params, timeout=60).json()
        apps += len(page["workflows"])
        cursor = page.get("next_cursor")
        if not page.get("has_more"):
            break
    print(apps)


def naive_sdk(base_url: str) -> None:
    """What a first script with the official SDK does: list every page, then get each app."""
    from pyatlan.client.atlan import AtlanClient

    client = AtlanClient(base_url=base_url, api_key=TOKEN)
    slugs, cursor = [], None
    while True:
        page = client.app.get_all(cursor=cursor) if cursor else client.app.get_all()
        slugs += [w.slug for w in page.workflows]
        cursor = page.next_cursor
        if not page.has_more:
            break
    for slug in slugs:
        client.app.get(slug)
    print(len(slugs))


# -- the run ------------------------------------------------------------------------------------------


def one_size(apps: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        write_corpus(root, apps)
        sandbox = ServedSandbox(tmp)
        env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN,
               "BENCH_USER": "loader", "BENCH_PASSWORD": PASSWORD}
        env.pop("RECONCILER_FINGERPRINT_KEY", None)
        reconciler = [sys.executable, "-m", "reconciler"]
        me = [sys.executable, str(Path(__file__).resolve())]
        objects = apps + sum(1 for i in range(apps) if i % 5 != 4)

        def row(name: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
            if result["exit"] not in (0, 2):
                raise SystemExit(f"{name} failed (exit {result['exit']}):\n{result['stdout'][-2000:]}\n"
                                 f"{result['stderr'][-2000:]}")
            entry = {"apps": apps, "step": name, "requests": introspect(sandbox, "stats")["total"], "wall_s": round(result["wall_s"], 2),
                     "cpu_s": round(result["cpu_s"], 2), "rss_mb": round(result["rss_mb"]), **extra}
            rows.append(entry)
            lines = result["stdout"].strip().splitlines()
            entry["closing"] = lines[-1] if lines else ""
            print(f"  ({apps} apps: {name}: {entry['wall_s']} s)", file=sys.stderr, flush=True)  # progress
            introspect(sandbox, "reset", {"state": False, "stats": True})
            return entry

        try:
            introspect(sandbox, "reset", {"state": False, "stats": True})
            seeded = row("seed: apply, all created (0 ms)", measure(
                [*reconciler, "apply", str(root), "--auto-approve", "--parallelism", str(args.parallelism)], env, root))
            seeded["cpu_ms_per_object"] = round(seeded["cpu_s"] * 1000 / objects, 2)
            introspect(sandbox, "config", {"latency_ms": args.latency_ms})
            floor = row("floor: cursor walk", measure([*me, "--walk", sandbox.base_url], env, root))
            plan = row("plan, no changes", measure([*reconciler, "plan", str(root), "--detailed-exitcode"], env, root))
            plan["vs_floor"] = round(plan["wall_s"] / floor["wall_s"], 2)
            if apps <= args.naive_max:
                try:
                    import pyatlan  # noqa: F401
                except ImportError:
                    print("(pyatlan is not installed: no naive SDK row)")
                else:
                    naive = row("naive SDK loop (get_all + get)", measure([*me, "--naive-sdk", sandbox.base_url], env, root))
                    plan["vs_naive"] = round(naive["wall_s"] / plan["wall_s"], 1)
            row("validate (offline)", measure([*reconciler, "validate", str(root)], env, root))
            for share, revision in ((0.1, "-a"), (1.0, "-b")):
                changed = change_apps(root, apps, share, revision)
                result = row(f"apply, {changed} apps changed", measure(
                    [*reconciler, "apply", str(root), "--auto-approve", "--parallelism", str(args.parallelism)], env, root))
                writes = result["requests"] - plan["requests"]
                network = floor["wall_s"] + math.ceil(writes / args.parallelism) * args.latency_ms / 1000
                result["vs_network_floor"] = round(result["wall_s"] / network, 2)
                result["cpu_ms_per_object"] = round(result["cpu_s"] * 1000 / changed, 2)
            if args.rate_limit:
                introspect(sandbox, "config", {"latency_ms": 0, "rate_limit": args.rate_limit})
                changed = change_apps(root, apps, 0.1, "-c")
                result = row(f"apply, {changed} changed, {args.rate_limit:g} req/s limit", measure(
                    [*reconciler, "apply", str(root), "--auto-approve", "--parallelism", str(args.parallelism)], env, root))
                # The limit paces the changes: their time (the report's closing figure) against the
                # time the tenant allows for their requests.
                changes_s = float(re.findall(r"([0-9.]+) s\.$", result.pop("closing"))[-1])
                writes = result["requests"] - plan["requests"]
                result["vs_rate_floor"] = round(changes_s / (writes / args.rate_limit), 2)
        finally:
            sandbox.close()
    for entry in rows:
        entry.pop("closing", None)
    return rows


def _line(entry: dict[str, Any]) -> str:
    ratios = ", ".join(f"{k}={v}" for k, v in entry.items() if k.startswith(("vs_", "cpu_ms")))
    return (f"{entry['apps']:>6} {entry['step']:<40}{entry['requests']:>9}{entry['wall_s']:>9.2f}{entry['cpu_s']:>8.2f}"
            f"{entry['rss_mb']:>8}  {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--rate-limit", type=float, default=200, help="requests per second; 0: leave the row out")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--naive-max", type=int, default=1000,
                        help="run the naive SDK loop (one GET per app, one after another) up to this size")
    parser.add_argument("--walk", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--naive-sdk", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.walk:
        return walk(args.walk)
    if args.naive_sdk:
        return naive_sdk(args.naive_sdk)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{args.latency_ms:g} ms latency per request, parallelism {args.parallelism}; wall and CPU in seconds, "
          "peak RSS in MB, each a whole process")
    print(f"{'apps':>6} {'step':<40}{'requests':>9}{'wall':>9}{'cpu':>8}{'rss':>8}  ratios")
    rows = []
    for size in sizes:
        for entry in one_size(size, args):
            print(_line(entry), flush=True)
            rows.append(entry)
    if args.json:
        args.json.write_text(json.dumps({"latency_ms": args.latency_ms, "parallelism": args.parallelism,
                                         "rate_limit": args.rate_limit, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
