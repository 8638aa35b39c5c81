"""Golden plan scenarios: tests/cases/<name>/ holds manifests/, case.yaml (the live state to
seed through the API, state-file records, options) and the expected plan as text, markdown and
JSON. Regenerate with RECONCILER_REGENERATE_GOLDEN=1, then read the diff before committing."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import render
from reconciler.client import ApiClient
from reconciler.engine import make_plan
from reconciler.model import ResourceKey
from reconciler.sandbox import Sandbox
from reconciler.state import DEFAULT_STATE_FILE, StateFile, fingerprint_key, secret_fingerprint
from tests.conftest import TOKEN

CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc)
REGENERATE = os.environ.get("RECONCILER_REGENERATE_GOLDEN") == "1"


def seed(client: ApiClient, steps: list[dict[str, Any]], sandbox: Sandbox) -> None:
    """Make the live state a case describes, through the API (as a user or the UI would)."""
    guids: dict[str, str] = {}
    for step in steps:
        (action, args), = step.items()
        if action == "create_credential":
            guids[args["name"]] = client.create_credential(args, test=False)["id"]
        elif action == "create_app":
            inputs = dict(args["inputs"])
            inputs["credential_guid"] = guids.get(args.get("credential", ""), "")
            client.create_app(args["app_id"], args["name"], inputs, entrypoint=args.get("entrypoint"),
                              schedule=args.get("schedule"))
        elif action == "add_schedule":
            [app] = client.list_apps(name=args["app"])
            client.add_schedule(app["slug"], args["cron"], args.get("timezone"))
        elif action == "seed_apps":
            client.call("POST", "../../_sandbox/seed", body={"apps": args})
        elif action == "update_template":
            [source] = client.find_templates(args["name"])
            for template in source["spec"]["templates"]:
                for task in template["dag"]["tasks"]:
                    for p in task["arguments"]["parameters"]:
                        if p["name"] in args.get("parameters", {}):
                            p["value"] = args["parameters"][p["name"]]
            if "schedule" in args:
                annotations = source["metadata"]["annotations"]
                annotations.pop("orchestration.atlan.com/schedule", None)
                if args["schedule"]:
                    annotations["orchestration.atlan.com/schedule"] = args["schedule"]["cron"]
                    annotations["orchestration.atlan.com/timezone"] = args["schedule"]["timezone"]
            client.update_template(source)
        else:
            raise AssertionError(f"unknown seed step {action!r}")


def write_state(path: Path, base_url: str, records: dict[str, dict[str, Any]]) -> None:
    state = StateFile(path)
    tenant = state.tenant(base_url)
    for key, record in records.items():
        record = dict(record)
        values = record.pop("secretFingerprintOf", None)
        if values is not None:
            record["secretFingerprint"] = secret_fingerprint(fingerprint_key(TOKEN), values)
        tenant.resources[key] = record
    state.save()


def scrub(text: str, base_url: str, workdir: Path) -> str:
    """Volatile parts out: the sandbox's port, the temporary folder, live fingerprints."""
    text = text.replace(base_url, "http://sandbox/").replace(f"{workdir}{os.sep}", "")
    return re.sub(r"sha256:[0-9a-f]{64}", "sha256:<fingerprint>", text)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_plan(case: Path, sandbox_factory: Callable[..., Sandbox], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_FINGERPRINT_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # paths in the output are relative to here: the same on every machine
    spec = yaml.safe_load((case / "case.yaml").read_text()) or {}
    sandbox = sandbox_factory(seed=1, **(spec.get("sandbox") or {}))
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for f in (case / "manifests").iterdir():
        (manifests / f.name).write_text(f.read_text())
    with ApiClient(sandbox.base_url, TOKEN) as client:
        seed(client, spec.get("live") or [], sandbox)
        # The state file lives where reconciler.yaml (if any) says; by default beside the manifests.
        write_state(manifests / DEFAULT_STATE_FILE, sandbox.base_url, spec.get("state") or {})
        options = spec.get("options") or {}
        targets = [ResourceKey(*t.split("/", 1)) for t in options.get("targets", [])]
        plan = make_plan([str(manifests)], client, api_key=TOKEN, env=spec.get("env") or {}, now=NOW,
                         prune=options.get("prune", False), targets=targets,
                         adopt_schedules=options.get("adopt_schedules", False)).plan
    outputs = {
        "expected.txt": render.plan_text(plan),
        "expected.md": "\n<!-- next part -->\n".join(render.plan_markdown(plan)),
        "expected.json": render.plan_json(plan),
    }
    for name, produced in outputs.items():
        produced = scrub(produced, sandbox.base_url, tmp_path)
        path = case / name
        if REGENERATE:
            path.write_text(produced)
            continue
        if not path.exists():
            pytest.fail(f"{case.name}/{name} is missing; run with RECONCILER_REGENERATE_GOLDEN=1 to write it, then read it "
                        "before committing")
        assert produced == path.read_text(), f"{case.name}/{name} differs; regenerate with RECONCILER_REGENERATE_GOLDEN=1"
    assert json.loads(outputs["expected.json"])["format_version"] == 2
