"""The command line itself: closed stdin, --debug anywhere, colour choices, help texts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import color_wanted
from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN
from tests.test_apply import SECRETS, app, manifests


def run(sandbox: Sandbox, *args: str, cwd: Path, close_stdin: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, **SECRETS}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env, stdin=None if close_stdin else subprocess.DEVNULL,
                          preexec_fn=(lambda: os.close(0)) if close_stdin else None)


def test_apply_with_stdin_closed_refuses_cleanly(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = manifests(tmp_path, app("c-app", None, inputs="{extraction_method: agent, agent_json: {a: 1}}"))
    done = run(sandbox, "apply", str(folder), cwd=tmp_path, close_stdin=True)
    assert done.returncode == 1, done.stderr
    assert "refusing to apply without --auto-approve: there is no terminal to ask" in done.stderr
    assert "internal error" not in done.stderr


def test_debug_is_accepted_after_the_subcommand(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = manifests(tmp_path, app("d-app", None, inputs="{extraction_method: agent, agent_json: {a: 1}}"))
    done = run(sandbox, "plan", str(folder), "--debug", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--> GET" in done.stderr and "Bearer ***" in done.stderr and TOKEN not in done.stderr
    # An argument that merely looks like it, after "--", is left alone.
    literal = run(sandbox, "validate", "--", "--debug", cwd=tmp_path)
    assert literal.returncode == 1 and "--debug" in literal.stdout + literal.stderr and "--> GET" not in literal.stderr


@pytest.mark.parametrize("choice, tty, env, expected", [
    ("auto", True, {}, True),
    ("auto", False, {}, False),
    ("auto", True, {"NO_COLOR": ""}, False),  # set at all, even empty, as no-color.org says
    ("auto", True, {"TERM": "dumb"}, False),
    ("always", False, {"NO_COLOR": "1"}, True),
    ("never", True, {}, False),
])
def test_colour_choices(choice: str, tty: bool, env: dict[str, str], expected: bool) -> None:
    assert color_wanted(choice, tty, env) is expected


def test_color_always_and_never_through_the_cli(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = manifests(tmp_path, app("k-app", None, inputs="{extraction_method: agent, agent_json: {a: 1}}"))
    assert "\x1b[32m" in run(sandbox, "--color", "always", "plan", str(folder), cwd=tmp_path).stdout
    assert "\x1b[" not in run(sandbox, "--color", "never", "plan", str(folder), cwd=tmp_path).stdout


def test_every_option_of_every_command_has_help() -> None:
    import click

    from reconciler.cli import cli

    def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
        out: list[tuple[str, click.Command]] = []
        for name, command in group.commands.items():
            out.append((f"{prefix}{name}", command))
            if isinstance(command, click.Group):
                out += commands(command, f"{prefix}{name} ")
        return out

    missing = [f"{name} {param.opts[0]}" for name, command in commands(cli) for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert missing == []


def test_validate_of_one_file_reads_its_project(tmp_path: Path) -> None:
    import shutil

    root = Path(__file__).resolve().parent.parent
    shutil.copytree(root / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("reconciler.state.json"))
    env = {**os.environ, **SECRETS}
    one = subprocess.run([sys.executable, "-m", "reconciler", "validate", "specs/credentials.yaml", "specs/apps/snowflake.yaml"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    # ${var:} from the project's varFiles resolves, and credentialRef finds the credential in its own file.
    assert one.returncode == 0, one.stdout + one.stderr
    (tmp_path / "specs" / "apps" / "postgres.yaml").write_text("x: [\n")
    other = subprocess.run([sys.executable, "-m", "reconciler", "validate", "specs/apps/snowflake.yaml"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert other.returncode == 0 and "postgres.yaml" not in other.stdout  # only the given file's problems
    broken = subprocess.run([sys.executable, "-m", "reconciler", "validate", "specs/apps/postgres.yaml"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert broken.returncode == 1 and "specs/apps/postgres.yaml:2:1: RC002" in broken.stdout, broken.stdout


def test_the_variable_named_by_api_key_env_is_never_allowed_in_a_manifest(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = manifests(tmp_path, app("key-app", None, inputs="{extraction_method: agent, agent_json: {a: \"${env:MY_KEY}\"}}"))
    env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "MY_KEY": TOKEN}
    done = subprocess.run([sys.executable, "-m", "reconciler", "plan", str(folder), "--api-key-env", "MY_KEY"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "RC057 MY_KEY is the tenant's API key" in done.stderr, done.stderr
    assert TOKEN not in done.stdout + done.stderr
