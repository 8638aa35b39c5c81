"""Helpers shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

TOKEN = "bench"


def introspect(sandbox: Any, what: str, body: object = None) -> dict:
    """GET (or, with a body, POST) one of the sandbox's /_sandbox/ endpoints."""
    url = f"{sandbox.base_url}_sandbox/{what}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = requests.post(url, json=body, headers=headers, timeout=60) if body is not None else \
        requests.get(url, headers=headers, timeout=60)
    answer.raise_for_status()
    return answer.json()


def app_manifests(folder: Path, apps: int, regex: str = "") -> None:
    """N agent-mode postgres crawler manifests in one file (optionally setting temp_table_regex)."""
    extra = f", temp_table_regex: '{regex}'" if regex else ""
    docs = [f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: app-{i:04d}}}\nspec:\n  appId: postgres-crawler\n"
            f"  connection: {{name: conn-{i}}}\n  inputs: {{extraction_method: agent, agent_json: {{agent: a}}{extra}}}\n"
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
