"""Every bad input gets a located error, through the real CLI, and nothing hangs.

Each case (an alias bomb, nesting that crashed the C composer, a FIFO, a device, a socket, a
file over the size cap, values JSON cannot carry, crons that never fire, ...) is run through
``python -m reconciler validate`` and ``python -m reconciler plan`` against a served sandbox, in a
child process limited to 1 GiB of address space and a timeout: both exit 1, validate names the
file and position of the problem with its code, neither says "internal error", and the tenant
receives no request. The cases of the invalid-manifest corpus that belong here are run too."""

from __future__ import annotations

import functools
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.manifests import MAX_FILE_BYTES
from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "manifests" / "invalid"
ADDRESS_SPACE = 1 << 30  # 1 GiB: the alias bomb alone once took 1.6 GB
TIMEOUT = 60  # seconds per command; each takes about one (interpreter start-up included)
APP = ("apiVersion: reconciler/v1\nkind: App\nmetadata: {name: pg-crawler}\nspec:\n  appId: postgres-crawler\n"
       "  connection: {name: orders}\n  inputs:\n")
# The classic "billion laughs": 9 levels of 9 aliases, 10^9 values, in under 500 bytes.
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # writes the case under the folder; returns the CLI arguments after the command
    code: str  # the code validate reports
    shown: str  # the file name it is reported at (relative to the folder)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def one_file(name: str, text: str) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        write(root / "manifests" / name, text)
        return ["manifests"]
    return build


def fifo(root: Path) -> list[str]:
    (root / "manifests").mkdir()
    os.mkfifo(root / "manifests" / "pipe.yaml")  # reading it would wait for a writer forever
    write(root / "manifests" / "ok.yaml", APP + "    extraction_method: agent\n    agent_json: {agent-name: a1}\n")
    return ["manifests"]


def fifo_given(root: Path) -> list[str]:
    os.mkfifo(root / "pipe.yaml")
    return ["pipe.yaml"]


def link_to_dev_zero(root: Path) -> list[str]:
    (root / "manifests").mkdir()
    (root / "manifests" / "zero.yaml").symlink_to("/dev/zero")  # a device once resolved: endless NULs
    return ["manifests"]


def link_to_dev_zero_given(root: Path) -> list[str]:
    (root / "zero.yaml").symlink_to("/dev/zero")
    return ["zero.yaml"]


def link_to_fifo(root: Path) -> list[str]:
    (root / "manifests").mkdir()
    os.mkfifo(root / "pipe")
    (root / "manifests" / "pipe.yaml").symlink_to(root / "pipe")
    return ["manifests"]


def unix_socket(root: Path) -> list[str]:
    (root / "manifests").mkdir()
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(root / "manifests" / "sock.yaml"))
    except OSError as exc:  # a path longer than sockaddr_un allows
        pytest.skip(f"cannot bind a socket under {root}: {exc}")
    finally:
        server.close()  # the socket file stays
    return ["manifests"]


def var_file_fifo(root: Path) -> list[str]:
    write(root / "manifests" / "c.yaml", "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\n"
          "spec: {connector: postgres, authType: basic, host: '${var:host}', username: '${env:PG_USER}', "
          "password: '${env:PG_PASSWORD}'}\n")
    os.mkfifo(root / "vars.yaml")
    return ["manifests", "--var-file", "vars.yaml"]


def over_the_size_cap(root: Path) -> list[str]:
    with open(write(root / "manifests" / "huge.yaml", APP), "a", encoding="utf-8") as out:
        for _ in range(MAX_FILE_BYTES // (1 << 20) + 2):
            out.write("    # " + "x" * ((1 << 20) - 7) + "\n")
    return ["manifests"]


def under_the_size_cap_with_five_million_values(root: Path) -> list[str]:
    count = (MAX_FILE_BYTES - 200) // 2
    write(root / "manifests" / "flat.yaml", APP + "    values: [" + "1," * (count - 1) + "1]\n")
    return ["manifests"]


def nested_100000_levels(root: Path) -> list[str]:
    # The C composer recursed once per level, and crashed the interpreter (SIGSEGV) here.
    write(root / "manifests" / "deep.yaml", APP + "    deep: " + "[" * 100_000 + "]" * 100_000 + "\n")
    return ["manifests"]


CASES = [
    Case("billion-laughs", one_file("lol.yaml", BILLION_LAUGHS), "RC008", "lol.yaml"),
    Case("billion-laughs-in-a-manifest", one_file("app.yaml", APP + "    " + BILLION_LAUGHS.replace("\n", "\n    ")),
         "RC008", "app.yaml"),
    Case("alias-inside-its-own-anchor", one_file("loop.yaml", APP + "    loop: &loop [a, *loop]\n"), "RC008", "loop.yaml"),
    Case("nested-100000-levels", nested_100000_levels, "RC007", "deep.yaml"),
    Case("nested-500-levels-of-mappings", one_file("deep.yaml", APP + "    deep: " + "{a: " * 500 + "1" + "}" * 500 + "\n"),
         "RC007", "deep.yaml"),
    Case("json-string-nested-5000-levels", one_file("json.yaml", APP + f"    include_filter: '{'[' * 5000}{']' * 5000}'\n"),
         "RC007", "json.yaml"),
    Case("fifo-in-a-folder", fifo, "RC001", "pipe.yaml"),
    Case("fifo-given", fifo_given, "RC001", "pipe.yaml"),
    Case("link-to-a-fifo", link_to_fifo, "RC001", "pipe.yaml"),
    Case("link-to-dev-zero-in-a-folder", link_to_dev_zero, "RC001", "zero.yaml"),
    Case("link-to-dev-zero-given", link_to_dev_zero_given, "RC001", "zero.yaml"),
    Case("socket", unix_socket, "RC001", "sock.yaml"),
    Case("variables-file-is-a-fifo", var_file_fifo, "RC001", "vars.yaml"),
    Case("over-the-size-cap", over_the_size_cap, "RC006", "huge.yaml"),
    Case("five-million-values-under-the-size-cap", under_the_size_cap_with_five_million_values, "RC008", "flat.yaml"),
    Case("date-in-inputs", one_file("d.yaml", APP + "    since: 2024-01-31\n"), "RC023", "d.yaml"),
    Case("datetime-deep-in-inputs", one_file("d.yaml", APP + "    a: {b: [{c: 2024-01-31 10:00:00}]}\n"), "RC023", "d.yaml"),
    Case("binary-in-inputs", one_file("b.yaml", APP + "    blob: !!binary aGVsbG8=\n"), "RC023", "b.yaml"),
    Case("integer-key", one_file("k.yaml", "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c, 1: x}\n"
                                 "spec: {connector: postgres, authType: basic}\n"), "RC023", "k.yaml"),
    Case("list-as-a-key", one_file("k.yaml", APP + "    ? [a, b]\n    : x\n"), "RC023", "k.yaml"),
    Case("cron-30-february", one_file("c.yaml", APP + "    x: 1\n  schedules: [{cron: '0 0 30 2 *'}]\n"), "RC040", "c.yaml"),
    Case("cron-last-day-extension", one_file("c.yaml", APP + "    x: 1\n  schedules: [{cron: '0 0 L * *'}]\n"),
         "RC040", "c.yaml"),
    Case("port-443.0", one_file("p.yaml", "apiVersion: reconciler/v1\nkind: Credential\nmetadata: {name: c}\n"
                                "spec: {connector: postgres, authType: basic, port: 443.0}\n"), "RC023", "p.yaml"),
    Case("explicit-int-tag-on-text", one_file("t.yaml", APP + "    batch: !!int lots\n"), "RC023", "t.yaml"),
    Case("integer-of-5000-digits", one_file("t.yaml", APP + "    big: " + "9" * 5000 + "\n"), "RC023", "t.yaml"),
    Case("control-character", one_file("t.yaml", APP + "    host: db\x07.example.com\n"), "RC002", "t.yaml"),
]
CORPUS_CASES = sorted(p.name for p in CORPUS.glob("*.yaml") if re.match(
    r"(alias|nesting|json-string|yaml-|non-string|boolean-key|cron-(never|extension|backward)|port-float|explicit-tag|"
    r"unknown-tag|undefined-alias|control-character)", p.name))


def run(command: str, args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """The real CLI in a child process bounded in address space and time; (result, seconds)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", command, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, **env, "MALLOC_ARENA_MAX": "2", "NO_COLOR": "1"},
        # A C-level call after fork, nothing else: safe beside the sandbox's threads.
        preexec_fn=functools.partial(resource.setrlimit, resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE)),
    )
    return result, time.monotonic() - started


def check_refused(root: Path, args: list[str], code: str, shown: str, sandbox: Sandbox, introspect: Introspection) -> None:
    env = {"ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN, "PG_USER": "u", "PG_PASSWORD": "p"}
    before = introspect.stats()["total"]

    validated, seconds = run("validate", args, root, env)
    output = validated.stdout + validated.stderr
    assert validated.returncode == 1, output[-3000:]
    assert "internal error" not in output and "Traceback" not in output, output[-3000:]
    located = re.compile(rf"^(?:\S*/)?{re.escape(shown)}:\d+:\d+: {code} ", re.M)
    assert located.search(validated.stdout), f"no {shown}:LINE:COLUMN: {code} in ({seconds:.1f} s):\n{output[-3000:]}"

    planned, seconds = run("plan", args, root, env)
    output = planned.stdout + planned.stderr
    assert planned.returncode == 1, output[-3000:]
    assert "internal error" not in output and "Traceback" not in output, output[-3000:]
    assert "nothing was sent to the tenant" in output, output[-3000:]
    assert introspect.stats()["total"] == before, "plan sent requests for manifests it refused"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_a_location_and_never_hangs(case: Case, tmp_path: Path, sandbox: Sandbox,
                                                              introspect: Introspection) -> None:
    args = case.build(tmp_path)
    check_refused(tmp_path, args, case.code, case.shown, sandbox, introspect)


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_corpus_case_is_refused_through_the_cli(name: str, tmp_path: Path, sandbox: Sandbox,
                                                introspect: Introspection) -> None:
    expected = re.findall(r"(RC\d{3})@\d+", (CORPUS / name).read_text(encoding="utf-8").splitlines()[0])
    write(tmp_path / "manifests" / name, (CORPUS / name).read_text(encoding="utf-8"))
    check_refused(tmp_path, ["manifests"], expected[-1], name, sandbox, introspect)


def test_the_corpus_cases_are_found() -> None:
    assert len(CORPUS_CASES) >= 20, CORPUS_CASES
