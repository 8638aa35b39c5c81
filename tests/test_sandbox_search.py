"""Date ranges in ``runs/indexsearch`` and ``workflows/indexsearch`` over HTTP, on a sandbox whose
clock a test moves: the bodies are what pyatlan 10's ``client.workflow.find_runs_by_status_and_time_range``
sends (copied from its ``WorkflowFindRuns.prepare_request``; that release is not installed here, and
``tests/test_sandbox_pyatlan_legacy.py`` drives the SDK itself where it is). Before, bounds were
compared as strings: ``now-6h`` never matched gte and always matched lte.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from reconciler.sandbox import Sandbox
from reconciler.sandbox.catalogue import seeded_legacy_templates
from reconciler.sandbox.store import ManualClock
from tests.conftest import TOKEN, fast_config

MINER = "atlan-snowflake-miner-1714638976"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
PENDING_S, RUNNING_S = 60, 600  # a run ends 11 minutes after it starts


def epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Tenant:
    def __init__(self, sandbox: Sandbox, clock: ManualClock) -> None:
        self.sandbox, self.clock = sandbox, clock

    def at(self, iso: str) -> None:
        self.clock.advance(epoch(iso) - self.clock())

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(f"{self.sandbox.base_url}api/service/{path}", json=body, headers=HEADERS, timeout=10)

    def rerun(self, template: str = MINER) -> str:
        answer = self.post("workflows/submit", {"namespace": "default", "resourceKind": "WorkflowTemplate",
                                                "resourceName": template})
        answer.raise_for_status()
        return str(answer.json()["metadata"]["name"])

    def runs(self, body: dict[str, Any]) -> list[str]:
        answer = self.post("runs/indexsearch", body)
        assert answer.status_code == 200, answer.text
        return [hit["_id"] for hit in answer.json()["hits"]["hits"]]


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    clock = ManualClock(epoch("2026-11-21T06:00:00Z"))
    sandbox = Sandbox(fast_config(run_pending_s=PENDING_S, run_running_s=RUNNING_S), clock=clock).start()
    try:
        yield Tenant(sandbox, clock)
    finally:
        sandbox.stop()


def sdk_find_runs(statuses: list[str], started_at: str | None = None, finished_at: str | None = None) -> dict[str, Any]:
    """The body of pyatlan 10's ``find_runs_by_status_and_time_range(status, started_at, finished_at)``."""
    time_filters: list[dict[str, Any]] = []
    if started_at:
        time_filters.append({"range": {"status.startedAt": {"gte": started_at}}})
    if finished_at:
        time_filters.append({"range": {"status.finishedAt": {"lte": finished_at}}})
    return {
        "from": 0, "size": 100, "track_total_hits": True,
        "query": {"bool": {"must": [
            {"nested": {"path": "metadata", "query": {"terms": {"metadata.labels.workflows.argoproj.io/phase.keyword": statuses}}}},
            *time_filters,
            {"nested": {"path": "metadata", "query": {"exists": {"field": "metadata.labels.workflows.argoproj.io/creator"}}}},
        ]}},
        "sort": [{"metadata.creationTimestamp": {"order": "desc", "nested": {"path": "metadata"}}}],
    }


def started(**bounds: Any) -> dict[str, Any]:
    return {"query": {"range": {"status.startedAt": bounds}}, "size": 100}


@pytest.fixture
def three_runs(tenant: Tenant) -> dict[str, str]:
    """Runs started yesterday 06:00, today 03:00 and today 11:00 (UTC); the clock then reads today 12:00."""
    names = {}
    for label, when in (("yesterday", "2026-11-21T06:00:00Z"), ("early", "2026-11-22T03:00:00Z"),
                        ("recent", "2026-11-22T11:00:00Z")):
        tenant.at(when)
        names[label] = tenant.rerun()
    tenant.at("2026-11-22T12:00:00Z")
    return names


def test_the_sdks_started_at_now_minus_6h_finds_runs_of_the_last_six_hours(tenant: Tenant, three_runs: dict[str, str]) -> None:
    assert tenant.runs(sdk_find_runs(["Succeeded"], started_at="now-6h")) == [three_runs["recent"]]
    assert tenant.runs(sdk_find_runs(["Succeeded"], started_at="now-12h")) == [three_runs["recent"], three_runs["early"]]
    tenant.clock.advance(7 * 3600)  # seven hours on, the recent run started before now-6h
    assert tenant.runs(sdk_find_runs(["Succeeded"], started_at="now-6h")) == []


def test_the_sdks_finished_at_is_an_upper_bound(tenant: Tenant, three_runs: dict[str, str]) -> None:
    # The recent run ended at 11:11, after now-1h (11:00); the other two long before.
    assert tenant.runs(sdk_find_runs(["Succeeded"], finished_at="now-1h")) == [three_runs["early"], three_runs["yesterday"]]
    assert tenant.runs(sdk_find_runs(["Succeeded", "Failed"], started_at="now-1d/d", finished_at="now/d")) == [
        three_runs["recent"], three_runs["early"], three_runs["yesterday"]]
    assert tenant.runs(sdk_find_runs(["Succeeded"], started_at="now/d", finished_at="now-1h")) == [three_runs["early"]]


def test_a_running_run_has_no_finished_at_and_matches_only_start_bounds(tenant: Tenant, three_runs: dict[str, str]) -> None:
    running = tenant.rerun()
    tenant.clock.advance(PENDING_S + 1)
    assert tenant.runs(sdk_find_runs(["Running"], started_at="now-6h")) == [running]
    assert tenant.runs(sdk_find_runs(["Running"], finished_at="now+1d")) == []


def test_rounding_epoch_milliseconds_iso_dates_and_time_zones(tenant: Tenant, three_runs: dict[str, str]) -> None:
    yesterday, early, recent = three_runs["yesterday"], three_runs["early"], three_runs["recent"]
    assert tenant.runs(started(gte="now-1d/d", lt="now/d")) == [yesterday]
    assert sorted(tenant.runs(started(gte="now/d", lte="now/d"))) == sorted([early, recent])
    early_ms = int(epoch("2026-11-22T03:00:00Z") * 1000)
    assert sorted(tenant.runs(started(gte=early_ms))) == sorted([early, recent])
    assert tenant.runs(started(gt=str(early_ms), format="epoch_millis")) == [recent]
    assert sorted(tenant.runs(started(lte="2026-11-22"))) == sorted([yesterday, early, recent])  # the whole day
    assert tenant.runs(started(lt="2026-11-22")) == [yesterday]
    assert tenant.runs(started(gte="2026-11-22T03:00:01")) == [recent]  # no zone: UTC
    assert tenant.runs(started(gte="22/11/2026 03:30", format="dd/MM/yyyy HH:mm")) == [recent]
    # 03:30 at +01:00 is 02:30 UTC, before the early run.
    assert sorted(tenant.runs(started(gte="22/11/2026 03:30", format="dd/MM/yyyy HH:mm", time_zone="+01:00"))) == sorted(
        [early, recent])
    # 12:00 UTC is 04:00 on the 22nd at -08:00; that day began at 08:00 UTC.
    assert tenant.runs(started(gte="now/d", time_zone="-08:00")) == [recent]
    assert sorted(tenant.runs(started(gte="2026-11-21||+1d/d"))) == sorted([early, recent])


def test_malformed_dates_are_a_400_naming_them(tenant: Tenant, three_runs: dict[str, str]) -> None:
    for bounds, named in (({"gte": "now-6x"}, "now-6x"), ({"gte": "yesterday"}, "yesterday"),
                          ({"gte": "now/2d"}, "now/2d"), ({"gte": "now", "time_zone": "Mars/Olympus"}, "Mars/Olympus"),
                          ({"gte": "someday||+1d"}, "someday||+1d")):
        answer = tenant.post("runs/indexsearch", started(**bounds))
        assert answer.status_code == 400 and named in answer.json()["message"], (bounds, answer.text)
    answer = tenant.post("runs/indexsearch", sdk_find_runs(["Succeeded"], started_at="6 hours ago"))
    assert answer.status_code == 400 and "6 hours ago" in answer.json()["message"]


def test_template_search_compares_creation_timestamps_as_dates(tenant: Tenant) -> None:
    created = {t["metadata"]["name"]: t["metadata"]["creationTimestamp"] for t in seeded_legacy_templates()}
    day = min(created.values())[:10]

    def templates(**bounds: Any) -> list[str]:
        answer = tenant.post("workflows/indexsearch", {"query": {"range": {"metadata.creationTimestamp": bounds}}, "size": 100})
        assert answer.status_code == 200, answer.text
        return sorted(hit["_id"] for hit in answer.json()["hits"]["hits"])

    assert templates(lte=day) == sorted(n for n, c in created.items() if c[:10] <= day)  # lte a day: all of it
    assert templates(gte=f"{day}||+1d") == sorted(n for n, c in created.items() if c[:10] > day)
    first = min(created, key=lambda n: created[n])
    assert templates(lte=int(epoch(created[first]) * 1000)) == [first]
    assert templates(gte="now-1y") == [] and templates(lt="now-1y") == sorted(created)
