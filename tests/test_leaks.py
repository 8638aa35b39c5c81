"""No output ever carries a secret, even when the tenant echoes requests in its errors, a secret is
typed into a field that is not secret, the tenant keeps a secretExtra value in clear, or the base
URL holds a password: every byte of stdout, stderr, plan files, reports, the step summary, the
state file and --debug logs is searched for every secret value of the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection
from tests.test_apply import SECRETS

ROOT = Path(__file__).resolve().parent.parent
EXTRA = {"ACCOUNT_CODE": "acct-code-55aa11f0", "USERINFO_PW": "userinfo-pw-77c3e9"}
ROTATED = {"SNOWFLAKE_PASSWORD": "pw-rotated-3f9a0c"}


def run(sandbox: Sandbox, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **SECRETS, **EXTRA,
            "GITHUB_STEP_SUMMARY": str(cwd / "summary.md"), **(env or {})}
    full.pop("RECONCILER_FINGERPRINT_KEY", None)
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, env=full, stdin=subprocess.DEVNULL)


def test_no_secret_reaches_any_output(sandbox_factory: Any, tmp_path: Path) -> None:
    sandbox = sandbox_factory(echo_request_errors=True)
    observer = Introspection(sandbox.base_url, TOKEN)
    shutil.copytree(ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("reconciler.state.json"))
    creds = tmp_path / "specs" / "credentials.yaml"
    # A secretExtra key the tenant does not treat as secret: it comes back in clear in `extra`.
    text = creds.read_text()
    assert "  password: ${env:SNOWFLAKE_PASSWORD}\n" in text
    creds.write_text(text.replace("  password: ${env:SNOWFLAKE_PASSWORD}\n",
                                  "  password: ${env:SNOWFLAKE_PASSWORD}\n  secretExtra: {account_code: \"${env:ACCOUNT_CODE}\"}\n", 1))
    outputs: list[str] = []

    def keep(done: subprocess.CompletedProcess[str], code: int) -> subprocess.CompletedProcess[str]:
        outputs.extend([done.stdout, done.stderr])
        assert done.returncode == code, (done.args, done.stdout[-2000:], done.stderr[-2000:])
        return done

    keep(run(sandbox, tmp_path, "validate", "specs"), 0)
    keep(run(sandbox, tmp_path, "--debug", "plan", "specs", "--out", "plan.json", "--format", "markdown"), 0)
    keep(run(sandbox, tmp_path, "apply", "plan.json", "--debug"), 0)
    replan = keep(run(sandbox, tmp_path, "plan", "specs", "--format", "json", "--detailed-exitcode"), 0)
    assert "RC113" in replan.stdout  # the clear secretExtra is said, not shown, and not a perpetual diff
    vault = str(observer.state()["credentials"])
    assert EXTRA["ACCOUNT_CODE"] in vault and SECRETS["SNOWFLAKE_PASSWORD"] in vault  # the secrets did go out

    # The tenant refuses the rotated credential and quotes the request, password and all.
    observer.post("config", {"fault_rate": 1.0, "fault_kinds": ["400"], "fault_routes": ["POST credentials/{guid}"]})
    refused = keep(run(sandbox, tmp_path, "--debug", "apply", "specs", "--auto-approve", "--format", "markdown",
                       env=ROTATED), 1)
    assert "(request was:" in refused.stdout and "(sensitive)" in refused.stdout
    observer.post("config", {"fault_rate": 0.0, "fault_routes": []})

    # A secret typed into a field that is not secret, and the API key itself: refused, not printed.
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "c.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: bad-cred}\nspec:\n  connector: postgres\n"
        "  authType: basic\n  host: ${env:SNOWFLAKE_PASSWORD}\n  username: ${env:SNOWFLAKE_USER}\n"
        "  password: ${env:SNOWFLAKE_PASSWORD}\n  extra: {note: \"${env:ATLAN_API_KEY}\"}\n")
    for command in (["validate", "bad"], ["plan", "bad", "--format", "json"], ["apply", "bad", "--auto-approve"]):
        done = keep(run(sandbox, tmp_path, *command), 1)
        located = "bad/c.yaml:7:3: RC057" in done.stdout + done.stderr or '"file": "bad/c.yaml"' in done.stdout
        assert located and "internal error" not in done.stderr, done.stdout + done.stderr
    # A password in the base URL's user-info.
    with_userinfo = sandbox.base_url.replace("http://", f"http://loader:{EXTRA['USERINFO_PW']}@")
    keep(run(sandbox, tmp_path, "plan", "specs", env={"ATLAN_BASE_URL": with_userinfo}), 1)

    files = [tmp_path / "plan.json", tmp_path / "summary.md", tmp_path / "specs" / "reconciler.state.json"]
    assert all(f.is_file() for f in files)
    # Every file the run wrote: all but the inputs (manifests, the env file) and the tenant's own vault.
    files += [p for p in tmp_path.rglob("*") if p.is_file() and p not in files and p.name != "sandbox.json"
              and p.suffix not in (".yaml", ".yml", ".env")]
    haystack = "\n".join(outputs) + "\n".join(p.read_text(errors="replace") for p in files if p.is_file())
    assert "--> POST" in haystack  # the --debug request log was really on
    for name, value in [*SECRETS.items(), *EXTRA.items(), *ROTATED.items(), ("ATLAN_API_KEY", TOKEN)]:
        assert value not in haystack, f"{name} leaked"
