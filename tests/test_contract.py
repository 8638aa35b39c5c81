"""`reconciler contract`: a manifest skeleton from an app's live input contract, through the
embedded sandbox when no tenant is configured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import render
from reconciler.client import ApiClient
from reconciler.kinds.app import PLUMBING
from reconciler.sandbox import catalogue
from reconciler.validate import validate

APPS = [a for a, spec in catalogue.APPS.items() if any(spec.contracts.values())]
CREDENTIAL = """---
apiVersion: reconciler/v1
kind: Credential
metadata: {name: my-%s-credential}
spec: {connector: %s, authType: basic, username: "${env:U}", password: "${env:P}"}
"""


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ATLAN_BASE_URL", "ATLAN_API_KEY")}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**clean, **(env or {})})


@pytest.mark.parametrize("app_id", APPS)
def test_skeleton_validates_as_is_and_with_every_option_uncommented(app_id: str, client: ApiClient, tmp_path: Path) -> None:
    info = client.describe_app(app_id)
    entrypoint = next((e["name"] for e in info["entrypoints"]), None)  # many apps have only the default slot
    contract = client.get_input_contract(app_id, entrypoint)
    skeleton = render.contract_skeleton(info, contract, entrypoint)
    connector = render.name_stem(app_id)
    optional = [line for line in skeleton.splitlines() if re.match(r"^    # \w+: ", line)]
    assert len(optional) == len([k for k in contract["properties"] if k not in PLUMBING])

    (tmp_path / "app.yaml").write_text(skeleton + CREDENTIAL % (connector, connector))
    assert validate([tmp_path], env={"U": "u", "P": "p"}).diagnostics == []

    uncommented = re.sub(r"^    # (\w+: .*?)  # .*$", r"    \1", skeleton, flags=re.M)
    (tmp_path / "app.yaml").write_text(uncommented + CREDENTIAL % (connector, connector))
    result = validate([tmp_path], env={"U": "u", "P": "p"})
    assert result.diagnostics == []
    inputs = next(r for r in result.resources.values() if r.key.kind == "App").spec["inputs"]
    # Every input but the plumbing (agent_json too: it is an input of agent mode), null where
    # the contract has no default.
    defaults = {k: p.get("default") for k, p in contract["properties"].items() if k not in PLUMBING}
    assert inputs == defaults


def test_contract_command_uses_the_embedded_sandbox_and_says_so_once(tmp_path: Path) -> None:
    done = run("contract", "snowflake-miner", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# App manifest skeleton for snowflake-miner")
    assert "  entrypoint: miner" in done.stdout and "# calculate_popularity: true" in done.stdout
    assert done.stderr.count("No ATLAN_BASE_URL set: using the embedded sandbox tenant") == 1
    assert (tmp_path / ".reconciler" / "sandbox.json").exists()


def test_contract_errors_are_clear(tmp_path: Path) -> None:
    unknown = run("contract", "no-such-app", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "Error: HTTP 404" in unknown.stderr and "Hint: Check the app id" in unknown.stderr
    no_contract = run("contract", "tableau-crawler", cwd=tmp_path)
    assert no_contract.returncode == 1 and "no native input contract" in no_contract.stderr
    no_key = run("contract", "snowflake-crawler", cwd=tmp_path, env={"ATLAN_BASE_URL": "http://127.0.0.1:9/"})
    assert no_key.returncode == 64 and "ATLAN_API_KEY is not set" in no_key.stderr


def test_required_inputs_come_first_and_must_be_filled() -> None:
    contract = {
        "required": ["connection", "credential_guid", "dbt_cloud_account_id", "region"],
        "properties": {
            "connection": {"type": "object"},
            "credential_guid": {"type": "string"},
            "region": {"title": "Region", "type": "string", "enum": ["us", "eu"], "default": "us"},
            "dbt_cloud_account_id": {"title": "Account", "type": "string"},
            "include_filter": {"title": "Include", "type": "string", "default": "{}", "contentMediaType": "application/json"},
        },
    }
    text = render.contract_skeleton({"app_id": "atlan-dbt", "name": "dbt"}, contract, None)
    lines = text.splitlines()
    required, optional = lines.index("    # Required"), lines.index("    # Optional (defaults shown)")
    assert required < optional
    assert lines[required + 1 : optional] == [
        '    dbt_cloud_account_id: ""  # Account; string',
        '    region: "us"  # Region; one of us, eu',
    ]
    assert lines[optional + 1] == '    # include_filter: "{}"  # Include; JSON: write a YAML mapping or a JSON string'
    assert "  entrypoint:" not in text and "credential_guid" not in text
