"""Plans at scale, by request counts (never seconds): a no-change plan of 1,000 apps and 800
credentials costs a fixed number of requests; the credential pages after the first are read at once
and a listing that shifts under it is read again. Timings belong to benchmarks/scale_bench.py."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.client import ApiClient
from reconciler.engine import make_plan
from reconciler.errors import ReconcilerError
from reconciler.kinds.credential import every_credential
from reconciler.sandbox import Sandbox
from tests.conftest import TOKEN, Introspection
from tests.test_plan import NOW, write

APPS, CREDENTIALS = 1000, 800


def _tenant(sandbox: Sandbox, introspect: Introspection, folder: Path) -> None:
    """1,000 agent-mode apps (seeded) and 800 credentials (created through the API), and manifests
    that declare exactly those."""
    apps = [{"name": f"app-{i:04d}", "app_id": "postgres-crawler",
             "inputs": {"connection": {"typeName": "Connection", "attributes": {"qualifiedName": f"default/postgres/{i}",
                        "connectorName": "postgres", "name": f"conn-{i}"}}, "extraction_method": "agent",
                        "agent_json": {"agent": "a"}}} for i in range(APPS)]
    introspect.post("seed", {"apps": apps})
    with ApiClient(sandbox.base_url, TOKEN) as client:
        for i in range(CREDENTIALS):
            client.create_credential({"name": f"cred-{i:04d}", "connector": "postgres", "authType": "basic",
                                      "host": f"db{i}.example.com", "port": 5432, "username": "u", "password": "p"},
                                     test=False)
    docs = [f"apiVersion: reconciler/v1\nkind: App\nmetadata: {{name: app-{i:04d}}}\nspec:\n  appId: postgres-crawler\n"
            f"  connection: {{name: conn-{i}}}\n  inputs: {{extraction_method: agent, agent_json: {{agent: a}}}}\n"
            for i in range(APPS)]
    docs += [f"apiVersion: reconciler/v1\nkind: Credential\nmetadata: {{name: cred-{i:04d}}}\nspec:\n  connector: postgres\n"
             f"  authType: basic\n  host: db{i}.example.com\n  port: 5432\n  username: ${{env:U}}\n  password: ${{env:P}}\n"
             for i in range(CREDENTIALS)]
    write(folder / "all.yaml", "---\n".join(docs))


def test_a_no_change_plan_of_1000_apps_costs_the_same_requests(sandbox: Sandbox, introspect: Introspection,
                                                                tmp_path: Path) -> None:
    _tenant(sandbox, introspect, tmp_path / "m")
    introspect.post("reset", {"state": False, "stats": True})
    with ApiClient(sandbox.base_url, TOKEN) as client:
        plan = make_plan([str(tmp_path / "m")], client, api_key=TOKEN, env={"U": "u", "P": "p"}, now=NOW).plan
    assert len(plan.changes) == APPS + CREDENTIALS and not plan.has_changes
    # This count must never grow: 23 requests for 1,800 objects. The naive loop (every page at the
    # default size, then one GET per app) costs 1,020 for the apps alone.
    assert introspect.stats()["requests"] == {
        "GET v1/app": 5,  # 1,000 apps in pages of 200, one after another (each page names the next)
        "GET credentials": 8,  # 800 in pages of 100: the first tells how many, the other 7 at once
        "GET roles": 1,
        "GET v1/apps/{app_id}": 1,  # one describe and one contract per distinct app id
        "GET v1/apps/{app_id}/inputs": 1,
    }


class Pages:
    """A stand-in for the client's credential pages (the unit under test is the listing logic, not
    the HTTP client): ``plans`` says what each read of the whole list sees."""

    def __init__(self, total: int, size: int = 100, hide_on_reads: tuple[int, ...] = (), count: bool = True) -> None:
        self.records = [{"id": f"c{i}", "name": f"cred-{i}"} for i in range(total)]
        self.size, self.hide_on_reads, self.count = size, hide_on_reads, count
        self.reads, self.calls = 0, 0
        self.lock = threading.Lock()

    def credential_page(self, offset: int) -> tuple[list[dict[str, Any]], int | None]:
        with self.lock:
            self.calls += 1
            if offset == 0:
                self.reads += 1
            shifted = self.reads in self.hide_on_reads and offset > 0
        # A credential archived while the list is read: every later page starts one further on.
        visible = [r for r in self.records if not (shifted and r["id"] == "c0")]
        page = visible[offset: offset + self.size]
        return page, (len(self.records) if self.count else None)

    def list_credentials(self) -> list[dict[str, Any]]:
        return list(self.records)


def _listing(pages: Pages) -> list[dict[str, Any]]:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return every_credential(pages, pool, pool.submit(pages.credential_page, 0))  # type: ignore[arg-type]


def test_credential_pages_after_the_first_are_read_at_once_and_each_record_once() -> None:
    pages = Pages(250)
    assert [r["id"] for r in _listing(pages)] == [f"c{i}" for i in range(250)]
    assert pages.calls == 3
    clamped = Pages(250, size=40)  # a tenant that serves fewer than asked: its page size is the step
    assert len(_listing(clamped)) == 250 and clamped.calls == 7


def test_a_credential_list_that_shifts_while_read_is_read_again() -> None:
    # Read once with a page shifted (one record would be missing: a plan would create it again).
    pages = Pages(250, hide_on_reads=(1,))
    assert [r["id"] for r in _listing(pages)] == [f"c{i}" for i in range(250)]
    assert pages.reads == 2
    always = Pages(250, hide_on_reads=(1, 2, 3))
    with pytest.raises(ReconcilerError, match="changed each of the 3 times"):
        _listing(always)


def test_a_credential_list_without_a_count_is_read_page_after_page() -> None:
    pages = Pages(250, count=False)
    assert len(_listing(pages)) == 250
