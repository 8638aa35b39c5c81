"""The README's quick start is part of the product: command 1 runs here exactly as written, in a
fresh copy of the project with its own virtualenv, and `.ci/run` runs command 2."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return commands


def test_quick_start_is_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = quickstart_commands()
    assert len(commands) == 2
    assert "pip install ." in commands[0]
    assert 'pip install -e ".[test]"' in commands[1] and "pytest" in commands[1]
    found = subprocess.run(["grep", "-E", "^python3 -m venv .* pytest", "README.md"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    assert found == [commands[1]]  # the line .ci/run extracts and runs
    assert "grep -E '^python3 -m venv .* pytest' README.md" in (ROOT / ".ci/run").read_text()


@pytest.mark.slow
def test_quick_start_command_one_runs_as_written(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build",
                                                                  ".pytest_cache", ".reconciler", ".hypothesis",
                                                                  "reconciler.state.json", ".reconciler-locks"))
    command = quickstart_commands()[0]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "ATLAN_BASE_URL", "ATLAN_API_KEY")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    done = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Valid: 6 documents in 7 files (3 Apps, 2 Credentials, 1 Workflow)." in done.stdout
    assert "Plan: 5 to create, 1 to update, 0 to delete, 1 run to submit." in done.stdout
    assert "Apply complete: 5 created, 1 updated, 0 deleted, 1 run submitted, 0 failed, 0 skipped." in done.stdout
    assert done.stdout.rstrip().endswith("No changes. The tenant matches the manifests.")
    # Each command that needs a tenant says once that it uses the embedded sandbox: plan, apply, plan.
    assert done.stderr.count("No ATLAN_BASE_URL set: using the embedded sandbox tenant") == 3
    assert (project / ".reconciler" / "sandbox.json").exists()


def test_the_floors_ci_installs_are_the_floors_pyproject_allows() -> None:
    import re

    from packaging.version import Version

    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

    declared = {}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9a-z.]*)", requirement.replace(" ", "")).groups()
        declared[name.lower()] = Version(floor)
    pinned = {}
    for line in (ROOT / "tests" / "floors.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.strip().lower()] = Version(version)
    assert pinned == declared
    assert "tests/floors.txt" in (ROOT / ".ci/run").read_text()
