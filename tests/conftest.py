"""Shared fixtures: a fresh sandbox tenant per test, served over real loopback HTTP."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import settings

from reconciler.client import ApiClient
from reconciler.sandbox import Sandbox, SandboxConfig


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``pytest -n auto``: two workers per core. Most tests spend their time waiting (on a
    sandbox's injected latency, on a subprocess starting), so one per core leaves them idle: on
    2 cores, 4 workers ran the suite in 84 s where 2 took 120 s."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 * cores


TOKEN = "test-token-0123456789"

# Property tests draw the same examples on every run: a failure is reproduced, never a matter of luck.
settings.register_profile("reconciler", derandomize=True, database=None, deadline=None)
settings.load_profile("reconciler")


class Introspection:
    """Reads the sandbox's test-only endpoints over HTTP, as an outside observer would."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, what: str) -> Any:
        response = requests.get(f"{self.base_url}_sandbox/{what}", headers=self.headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, what: str, body: Any = None) -> Any:
        response = requests.post(f"{self.base_url}_sandbox/{what}", json=body or {}, headers=self.headers, timeout=40)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return self.get("state")

    def stats(self) -> dict[str, Any]:
        return self.get("stats")

    def wait(self, *, total: int = 0, route: str = "", timeout: float = 10.0) -> bool:
        """Wait (on the sandbox, not on a clock here) until it has handled ``total`` requests, and
        one to ``route`` when given; False when ``timeout`` passed first."""
        return bool(self.post("wait", {"total": total, "route": route, "timeout": timeout})["reached"])

    def requests_to(self, route: str) -> int:
        return int(self.stats()["requests"].get(route, 0))


def fast_config(**overrides: Any) -> SandboxConfig:
    settings: dict[str, Any] = dict(token=TOKEN, seed=7, run_pending_s=0.05, run_running_s=0.15, persist_interval=0)
    settings.update(overrides)
    return SandboxConfig(**settings)


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def make(**overrides: Any) -> Sandbox:
        sb = Sandbox(fast_config(**overrides)).start()
        started.append(sb)
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    return sandbox_factory()


@pytest.fixture
def introspect(sandbox: Sandbox) -> Introspection:
    return Introspection(sandbox.base_url, TOKEN)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[ApiClient]:
    with ApiClient(sandbox.base_url, TOKEN, backoff_factor=0.01) as api:
        yield api


def connection(connector: str, name: str, epoch: int = 1717286400, **attributes: Any) -> dict[str, Any]:
    return {
        "typeName": "Connection",
        "attributes": {"qualifiedName": f"default/{connector}/{epoch}", "connectorName": connector, "name": name,
                       **attributes},
    }


def raw_credential(connector: str, name: str, username: str = "svc", password: str = "s3cret-pw") -> dict[str, Any]:
    return {
        "authType": "basic",
        "name": name,
        "connectorConfigName": f"atlan-connectors-{connector}",
        "connectorType": connector,
        "host": f"{connector}.example.com",
        "port": 443,
        "username": username,
        "password": password,
        "extra": {"role": "LOADER", "private_key_password": "pk-secret"},
    }


def read_lines_until(proc: subprocess.Popen[str], done: Callable[[list[str]], bool], timeout: float) -> list[str]:
    """Lines a process prints (stripped), until ``done(lines)`` holds; fails after ``timeout`` s
    or when the output ends, instead of blocking forever on readline."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.01, remaining))
        except queue.Empty:
            raise AssertionError(f"no expected output within {timeout:.0f} s; got:\n{''.join(seen)[-3000:]}") from None
        if line is None:
            raise AssertionError(f"process ended (exit {proc.poll()}) before the expected output:\n{''.join(seen)[-3000:]}")
        seen.append(line.rstrip("\n"))
    return seen
