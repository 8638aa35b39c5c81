"""Helpers shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

TOKEN = "bench"


def introspect(sandbox: Any, what: str, body: object = None) -> dict:
    """GET (or, with a body, POST) one of the sandbox's /_sandbox/ endpoints."""
    url = f"{sandbox.base_url}_sandbox/{what}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = requests.post(url, json=body, headers=headers, timeout=600) if body is not None else \
        requests.get(url, headers=headers, timeout=600)
    answer.raise_for_status()
    return answer.json()


class ServedSandbox:
    """The sandbox in its own process, as a remote tenant would be: its CPU work does not share
    the measured client's interpreter lock, and its state lives in ``state_dir``."""

    def __init__(self, state_dir: str | Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "reconciler", "sandbox", "serve", "--token", TOKEN,
                                      "--seed", "1", "--state-file", str(Path(state_dir) / "sandbox.json")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.base_url = line.split(" listening on ", 1)[1].split(" ", 1)[0]

    def __enter__(self) -> ServedSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def app_manifests(folder: Path, apps: int, regex: str = "", *, schedule: bool = False) -> None:
    """N agent-mode postgres crawler manifests in one file (optionally setting temp_table_regex,
    and with ``schedule`` one daily schedule each)."""
    extra = f", temp_table_regex: '{regex}'" if regex else ""
    docs = [f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: app-{i:04d}}}\nspec:\n  appId: postgres-crawler\n"
            f"  connection: {{name: conn-{i}}}\n  inputs: {{extraction_method: agent, agent_json: {{agent: a}}{extra}}}\n"
            + (f"  schedules: [{{cron: '{i % 60} 3 * * *'}}]\n" if schedule else "")
            for i in range(apps)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "apps.yaml").write_text("---\n".join(docs))


def seeded_apps(apps: int) -> list[dict[str, Any]]:
    """The same apps, as /_sandbox/seed takes them (to build a big tenant fast)."""
    return [{"name": f"app-{i:04d}", "app_id": "postgres-crawler", "inputs": {
        "connection": {"typeName": "Connection", "attributes": {"qualifiedName": f"default/postgres/{i}",
                                                                "connectorName": "postgres", "name": f"conn-{i}"}},
        "extraction_method": "agent", "agent_json": {"agent": "a"}}} for i in range(apps)]


def arguments(description: str | None) -> Any:
    """The options every scale benchmark takes: --apps, --latency-ms, --parallelism."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--parallelism", type=int, default=8)
    return parser.parse_args()
