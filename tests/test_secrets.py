"""Secrets never leave the process: a whole validate / plan / apply run with known secret values,
every byte of stdout, stderr (with --debug logging), the plan file, the state file and the step
summary searched for them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "SNOWFLAKE_USER": "user-7f3a9c1e",
    "SNOWFLAKE_PASSWORD": "pw-b8d2e4f6a0",
    "BIGQUERY_SERVICE_ACCOUNT_EMAIL": "sa-1c5e9a@iam.example",
    "BIGQUERY_SERVICE_ACCOUNT_JSON": "sa-json-d41d8cd98f",
}


def test_no_secret_value_appears_anywhere(sandbox: Sandbox, introspect: Introspection, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    summary = tmp_path / "summary.md"
    env = {**os.environ, **SECRETS, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN,
           "GITHUB_STEP_SUMMARY": str(summary)}
    runs = [
        ["validate", "specs"],
        ["validate", "specs", "--format", "json"],
        ["--debug", "plan", "specs", "--out", "plan.json"],
        ["plan", "specs", "--format", "markdown"],
        ["plan", "specs", "--format", "json"],
        ["--debug", "apply", "plan.json"],
        ["apply", "specs", "--auto-approve", "--format", "json"],
    ]
    # Rotate a secret and apply again: the rotation shows, the values do not.
    rotated = {"SNOWFLAKE_PASSWORD": "pw-rotated-91c0"}
    output = []
    for args in runs:
        done = subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        output += [done.stdout, done.stderr]
    done = subprocess.run([sys.executable, "-m", "reconciler", "--debug", "apply", "specs", "--auto-approve"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**env, **rotated},
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "secrets: \"(sensitive)\" → \"(sensitive): rotated\"" in done.stdout
    output += [done.stdout, done.stderr]
    assert "--> POST" in "".join(output)  # the --debug request log was really on

    files = [tmp_path / "plan.json", tmp_path / "specs" / "reconciler.state.json", summary]
    assert all(f.is_file() for f in files)
    files += [p for p in tmp_path.rglob("*") if p.is_file() and "specs" not in p.parts]
    haystack = "\n".join(output) + "\n".join(p.read_text(errors="replace") for p in files if p.is_file()
                                               and p.name != "sandbox.json")
    for value in [*SECRETS.values(), *rotated.values(), TOKEN]:
        assert value not in haystack, f"a secret leaked: {value}"
    # They did reach the tenant (so the test is not vacuous): the vault holds them.
    vault = str(introspect.state()["credentials"])
    assert "pw-rotated-91c0" in vault and "sa-json-d41d8cd98f" in vault
