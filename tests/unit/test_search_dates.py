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


def at(iso: str) -> dict[str, object]:
    return run_at(iso)


def test_a_date_without_a_time_rounds_up_for_gt_and_lte_as_elasticsearch_fills_missing_components() -> None:
    # Elasticsearch fills what a gt/lte date leaves out with 23:59:59.999 (month and day with 1),
    # and what a gte/lt date leaves out with zeros: lte "2026-11-22" takes in the whole day.
    ten = at("2026-11-22T10:00:00Z")
    assert in_range(ten, "status.startedAt", lte="2026-11-22") and not in_range(ten, "status.startedAt", gt="2026-11-22")
    assert not in_range(ten, "status.startedAt", lt="2026-11-22") and in_range(ten, "status.startedAt", gte="2026-11-22")
    assert in_range(at("2026-11-22T10:59:59Z"), "status.startedAt", lte="2026-11-22T10")
    assert not in_range(at("2026-11-22T11:00:00Z"), "status.startedAt", lte="2026-11-22T10")
    assert in_range(at("2026-11-22T10:00:59.999Z"), "status.startedAt", lte="2026-11-22T10:00")
    # The documented quirk: a missing day is 1 even when rounding up ("2026-11" is 1 November, 23:59:59.999).
    assert in_range(at("2026-11-01T20:00:00Z"), "status.startedAt", lte="2026-11")
    assert not in_range(at("2026-11-02T00:00:00Z"), "status.startedAt", lte="2026-11")


def test_rounding_up_is_to_the_last_millisecond() -> None:
    assert in_range(at("2026-11-22T23:59:59.999Z"), "status.startedAt", lte="now/d")
    assert not in_range(at("2026-11-23T00:00:00.000Z"), "status.startedAt", lte="now/d")
    assert in_range(at("2026-11-22T12:59:59.999Z"), "status.startedAt", lte="now/h")
    assert not in_range(at("2026-11-22T12:59:59.999Z"), "status.startedAt", gt="now/h")


def test_numbers_are_read_as_their_text_under_the_field_format() -> None:
    doc = at("2026-11-22T10:00:00Z")
    assert in_range(doc, "status.startedAt", gte=2026, lt=2027)  # as Elasticsearch: "2026" is a year first
    assert in_range(doc, "count", gte=2026) is False  # a number field compares the number
    with pytest.raises(HttpError) as refused:  # epoch milliseconds are not a strict_date_optional_time
        in_range(doc, "status.startedAt", gte="1795341600000", format="strict_date_optional_time")
    assert "1795341600000" in refused.value.body["message"]
    ten_s = int(dt.datetime(2026, 11, 22, 10, tzinfo=dt.timezone.utc).timestamp())
    assert in_range(doc, "status.startedAt", gte=ten_s, lte=ten_s, format="epoch_second")
    assert in_range(at("2026-11-22T10:00:00.999Z"), "status.startedAt", lte=str(ten_s), format="epoch_second")
    assert not in_range(at("2026-11-22T10:00:00.999Z"), "status.startedAt", lt=str(ten_s), format="epoch_second")


def test_java_date_patterns_and_format_lists() -> None:
    doc = at("2026-11-22T10:00:00Z")
    assert in_range(doc, "status.startedAt", gte="22/11/2026", lte="22/11/2026", format="dd/MM/yyyy")
    assert in_range(doc, "status.startedAt", gte="2026-11-22 09:30", format="yyyy-MM-dd HH:mm||epoch_millis")
    assert not in_range(doc, "status.startedAt", gte="2026-11-22 10:30", format="yyyy-MM-dd HH:mm")
    assert in_range(doc, "status.startedAt", gte="22.11.2026'", format="dd.MM.yyyy''")
    with pytest.raises(HttpError) as refused:
        in_range(doc, "status.startedAt", gte="22 Nov 2026", format="dd MMM GGGG")
    assert "GGGG" in refused.value.body["message"]


def test_a_bound_that_is_no_date_is_a_400_on_a_date_field_and_compares_as_text_elsewhere() -> None:
    doc = {**at("2026-11-22T10:00:00Z"), "name": "miner-b"}
    with pytest.raises(HttpError) as refused:
        in_range(doc, "status.startedAt", gte="yesterday")
    assert refused.value.status == 400 and "yesterday" in refused.value.body["message"]
    assert in_range(doc, "name", gte="miner-a", lt="miner-c")  # a keyword field: strings compare as strings


def test_date_math_takes_an_omitted_amount_as_one_and_rounds_only_single_units() -> None:
    assert in_range(at("2026-11-21T13:00:00Z"), "status.startedAt", gte="now-d")
    assert not in_range(at("2026-11-21T12:00:00Z"), "status.startedAt", gt="now-d")
    assert in_range(at("2026-11-22T00:00:00Z"), "status.startedAt", gte="now/1d")
    for bad in ("now/2d", "now-6h+", "now*2", "now-1x"):
        with pytest.raises(HttpError) as refused:
            in_range(at("2026-11-22T10:00:00Z"), "status.startedAt", gte=bad)
        assert bad in refused.value.body["message"]


def test_hours_move_the_instant_and_days_the_calendar_across_a_dst_change() -> None:
    # Amsterdam leaves summer time at 01:00 UTC on 2026-10-25: that day has 25 hours.
    now = dt.datetime(2026, 10, 25, 2, 30, tzinfo=dt.timezone.utc).timestamp()

    def within(iso: str, **bounds: object) -> bool:
        return matches({"range": {"status.startedAt": {**bounds, "time_zone": "Europe/Amsterdam"}}}, "id", at(iso), now)

    assert within("2026-10-25T01:30:00Z", gte="now-1h") and not within("2026-10-25T01:29:59Z", gte="now-1h")
    assert within("2026-10-24T22:00:00Z", gte="now/d") and not within("2026-10-24T21:59:59Z", gte="now/d")
    assert within("2026-10-25T22:59:59.999Z", lte="now/d") and not within("2026-10-25T23:00:00Z", lte="now/d")


BOUNDS = st.one_of(
    st.builds(lambda n, u, r: f"now{n}{u}{r}", st.sampled_from(["-", "-1", "+2", "-36", "-400"]),
              st.sampled_from(["y", "M", "w", "d", "h", "m", "s"]), st.sampled_from(["", "/d", "/M", "/w", "/h", "/y"])),
    st.sampled_from(["now", "now/d", "now/w", "2026-11-22", "2026-11", "2026", "2026-11-22T10", "2026-11-22T10:00", "2026-11-21T23:59:59Z",
                     "2026-11-01||+1M/d", "2026-11-22T10:00:00+05:30||-1d/h"]),
    st.integers(min_value=1_790_000_000_000, max_value=1_800_000_000_000),
)


@given(bound=BOUNDS, seconds=st.integers(min_value=-40 * 86400, max_value=40 * 86400),
       zone=st.sampled_from([None, "+05:30", "-08:00", "Europe/Amsterdam"]))
def test_each_operator_is_the_complement_of_its_opposite(bound: object, seconds: int, zone: str | None) -> None:
    # gt and lte round the same way (up), gte and lt the same way (down): a date is on exactly one
    # side of each pair, whatever the bound, its rounding and the time zone.
    doc = at((dt.datetime.fromtimestamp(NOW, dt.timezone.utc) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    extra = {"time_zone": zone} if zone else {}
    assert in_range(doc, "status.startedAt", gt=bound, **extra) != in_range(doc, "status.startedAt", lte=bound, **extra)
    assert in_range(doc, "status.startedAt", gte=bound, **extra) != in_range(doc, "status.startedAt", lt=bound, **extra)
