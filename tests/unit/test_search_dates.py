"""Date ranges in the sandbox's index search, as Elasticsearch evaluates them on date fields: date
math anchored on the tenant's clock (``now-6h``, ``now-1d/d``, ``2026-11-01||+1M``), rounding down for
gte/lt and up for gt/lte, epoch milliseconds, ISO dates with or without a time or zone, numbers as
numbers. Before, bounds were compared as strings: ``now-6h`` never matched gte and always lte."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.sandbox.routing import HttpError
from reconciler.sandbox.search import matches

NOW = dt.datetime(2026, 11, 22, 12, 30, 15, tzinfo=dt.timezone.utc).timestamp()


def run_at(when: str, finished: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"startedAt": when}
    if finished:
        status["finishedAt"] = finished
    return {"status": status, "metadata": {"creationTimestamp": when}, "count": 7, "__timestamp": 1_700_000_000_000}


def in_range(doc: dict[str, object], field: str, **bounds: object) -> bool:
    return matches({"range": {field: bounds}}, "id", doc, NOW)


def test_date_math_is_anchored_on_the_tenants_clock() -> None:
    recent, old = run_at("2026-11-22T10:00:00Z"), run_at("2026-11-22T05:00:00Z")
    assert in_range(recent, "status.startedAt", gte="now-6h") and not in_range(old, "status.startedAt", gte="now-6h")
    assert in_range(old, "status.startedAt", lte="now-6h") and not in_range(recent, "status.startedAt", lte="now-6h")
    assert in_range(recent, "status.startedAt", gt="now-1d", lt="now")
    assert not in_range(recent, "status.startedAt", gt="now+1h")


def test_rounding_goes_down_for_gte_and_lt_and_up_for_gt_and_lte() -> None:
    start_of_day, end_of_day = run_at("2026-11-22T00:00:00Z"), run_at("2026-11-22T23:59:59Z")
    assert in_range(start_of_day, "status.startedAt", gte="now/d") and not in_range(start_of_day, "status.startedAt", gt="now/d")
    assert in_range(end_of_day, "status.startedAt", lte="now/d") and not in_range(end_of_day, "status.startedAt", lt="now/d")
    yesterday = run_at("2026-11-21T08:00:00Z")
    assert in_range(yesterday, "status.startedAt", gte="now-1d/d", lt="now/d")
    assert in_range(run_at("2026-11-02T00:00:00Z"), "status.startedAt", gte="2026-11-01||/M", lte="2026-11-01||/M")
    assert not in_range(run_at("2026-12-01T00:00:00Z"), "status.startedAt", lte="2026-11-01||/M")


def test_anchored_dates_months_and_weeks() -> None:
    assert in_range(run_at("2026-12-31T00:00:00Z"), "status.startedAt", gte="2026-11-30||+1M")  # Dec 30: day clamped
    assert not in_range(run_at("2026-12-29T23:00:00Z"), "status.startedAt", gte="2026-11-30||+1M")
    monday = run_at("2026-11-16T00:00:00Z")  # 2026-11-22 is a Sunday: its week began on the 16th
    assert in_range(monday, "status.startedAt", gte="now/w") and not in_range(monday, "status.startedAt", gt="now/w")


def test_epoch_milliseconds_iso_dates_and_time_zones() -> None:
    doc = run_at("2026-11-22T10:00:00Z")
    ten = int(dt.datetime(2026, 11, 22, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert in_range(doc, "status.startedAt", gte=ten, lte=ten) and not in_range(doc, "status.startedAt", gt=ten)
    assert in_range(doc, "status.startedAt", gte=str(ten), format="epoch_millis")
    assert in_range(doc, "status.startedAt", gte="2026-11-22", lt="2026-11-23")
    assert in_range(doc, "status.startedAt", gte="2026-11-22T11:00:00+01:00", lte="2026-11-22T11:00:00+01:00")
    assert in_range(doc, "status.startedAt", gte="2026-11-22T11:00:00", time_zone="+01:00")
    assert not in_range(doc, "status.startedAt", gte="2026-11-22T11:00:00")  # no zone: UTC
    assert in_range(doc, "status.startedAt", gte="2026", lt="2027")  # four digits: a year
    assert in_range(run_at("2026-11-22T03:00:00Z"), "status.startedAt", gte="now/d", time_zone="Asia/Kolkata")


def test_numbers_compare_as_numbers_and_epoch_fields_take_date_math() -> None:
    doc = run_at("2026-11-22T10:00:00Z")
    assert in_range(doc, "count", gte=5, lt=7.5) and not in_range(doc, "count", gt="7")
    assert in_range(doc, "__timestamp", lt="now-1y")  # Atlas keeps dates as epoch milliseconds


def test_malformed_date_math_is_a_400_naming_it() -> None:
    for bad in ("now-6x", "now+", "2026-11-01||+1Q", "someday||+1d"):
        with pytest.raises(HttpError) as refused:
            in_range(run_at("2026-11-22T10:00:00Z"), "status.startedAt", gte=bad)
        assert refused.value.status == 400 and bad in refused.value.body["message"]
    with pytest.raises(HttpError):
        in_range(run_at("2026-11-22T10:00:00Z"), "status.startedAt", gte="now", time_zone="Mars/Olympus")
    with pytest.raises(HttpError):
        in_range(run_at("2026-11-22T10:00:00Z"), "status.startedAt", gte="now", within="1d")


@given(hours=st.integers(min_value=0, max_value=24 * 400), back=st.integers(min_value=0, max_value=24 * 400))
def test_now_minus_hours_splits_runs_as_their_start_says(hours: int, back: int) -> None:
    started = dt.datetime.fromtimestamp(NOW, dt.timezone.utc) - dt.timedelta(hours=back)
    doc = run_at(started.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert in_range(doc, "status.startedAt", gte=f"now-{hours}h") == (back <= hours)
    assert in_range(doc, "status.startedAt", lt=f"now-{hours}h") == (back > hours)
