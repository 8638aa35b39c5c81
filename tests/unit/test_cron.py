"""reconciler.cron: canonical spellings, macros, the portable syntax and its refusals, fire times."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cron import canonical_cron, canonical_timezone, cron_problem, next_fire_times, timezone_problem

UTC = dt.timezone.utc
PORTABLE = "write numbers, names, *, ranges a-b, steps /n and lists a,b"


@pytest.mark.parametrize(("spellings", "canonical"), [
    (["0 9 * * MON-FRI", "0 9 * * mon-fri", "0 9 * * 1-5", "0 9 * * 1,2,3,4,5", "0 9 * * 5,4,3,2,1"], "0 9 * * 1-5"),
    (["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN"], "0 0 * * 0"),
    (["*/15 * * * *", "0-59/15 * * * *", "0,15,30,45 * * * *"], "0,15,30,45 * * * *"),
    (["5/15 * * * *", "5,20,35,50 * * * *"], "5,20,35,50 * * * *"),
    (["0 0 1-5/2 * *", "0 0 1,3,5 * *"], "0 0 1,3,5 * *"),
    (["0 9 * jan-mar sun", "0 9 * 1,2,3 0"], "0 9 * 1-3 0"),
    (["0 0 1,15 * *", "0 0 15,1 * *", "0 0 1,1,15 * *"], "0 0 1,15 * *"),
    (["* 0-23 * 1-12 *", "* * * * *"], "* * * * *"),
    (["  0   9 * * *  ", "0 9 * * *"], "0 9 * * *"),
    (["*,5 * * * *", "* * * * *,0", "* * * * *"], "* * * * *"),  # a list holding * is every value
    (["0 0 *,1 * 1", "0 0 * * 1"], "0 0 * * 1"),
    # A range of one value is that value (croniter alone would read 3-3 as *: every hour).
    (["0 3-3 * * *", "0 3 * * *"], "0 3 * * *"),
    (["0 0 * * mon-mon", "0 0 * * 1-1/2", "0 0 * * 1"], "0 0 * * 1"),
])
def test_equivalent_expressions_get_one_spelling(spellings: list[str], canonical: str) -> None:
    assert [canonical_cron(s) for s in spellings] == [canonical] * len(spellings)


@pytest.mark.parametrize(("macro", "expansion"), [
    ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"), ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@hourly", "0 * * * *"),
    ("@DAILY", "0 0 * * *"), (" @Daily ", "0 0 * * *"),
])
def test_macros_are_valid_and_expand(macro: str, expansion: str) -> None:
    assert cron_problem(macro) is None
    assert canonical_cron(macro) == expansion
    assert canonical_cron(macro) == canonical_cron(expansion)


@pytest.mark.parametrize("macro", ["@reboot", "@fortnightly", "@", "@daily foo", "@every 5m"])
def test_unknown_macros_are_refused_with_the_known_ones(macro: str) -> None:
    assert cron_problem(macro) == (f"unknown cron macro {macro!r}; "
                                   "use one of @annually, @daily, @hourly, @midnight, @monthly, @weekly, @yearly")
    assert canonical_cron(macro) == macro  # an invalid expression is left as written


def test_a_day_in_a_leap_year_is_a_valid_schedule() -> None:
    assert cron_problem("0 0 29 2 *") is None
    assert canonical_cron("0 0 29 2 *") == "0 0 29 2 *"


@pytest.mark.parametrize(("expr", "what", "field"), [
    ("0 0 L * *", "'L' (last)", "day-of-month"),
    ("0 0 LW * *", "'L' (last)", "day-of-month"),
    ("0 0 15W * *", "'W' (nearest weekday)", "day-of-month"),
    ("0 9 * * 1#2", "'#' (nth weekday)", "day-of-week"),
    ("H 0 * * *", "'H' (hashed)", "minute"),
    ("R 0 * * *", "'R' (random)", "minute"),
])
def test_extensions_are_refused_by_name(expr: str, what: str, field: str) -> None:
    assert cron_problem(expr) == (f"cron expression {expr!r} uses {what} in the {field} field, a non-standard "
                                  f"extension the tenant may not accept; {PORTABLE}")


def test_a_question_mark_is_refused_with_what_to_write_instead() -> None:
    assert cron_problem("0 0 ? * *") == ("cron expression '0 0 ? * *' uses '?' (no value) in the day-of-month field, a "
                                         f"non-standard extension the tenant may not accept; {PORTABLE} (* instead of ?)")


@pytest.mark.parametrize(("expr", "problem"), [
    (None, "a cron expression must be a non-empty string such as '0 9 * * *'"),
    (5, "a cron expression must be a non-empty string such as '0 9 * * *'"),
    ("", "a cron expression must be a non-empty string such as '0 9 * * *'"),
    ("   ", "a cron expression must be a non-empty string such as '0 9 * * *'"),
    ("0 0 * *", "cron expression '0 0 * *' has 4 fields; write five: minute hour day-of-month month day-of-week, "
                "e.g. '0 9 * * *'"),
    ("0 0 * * * *", "cron expression '0 0 * * * *' has 6 fields; write five: minute hour day-of-month month "
                    "day-of-week, e.g. '0 9 * * *'"),
    ("0 9 * * 5-1", "cron expression '0 9 * * 5-1' has a backward range 5-1 in the day-of-week field; write it as two "
                    "ranges, or a list"),
    ("0 9 * * fri-mon", "cron expression '0 9 * * fri-mon' has a backward range fri-mon in the day-of-week field; "
                        "write it as two ranges, or a list"),
    ("x y z w v", "cron expression 'x y z w v' has an invalid minute field 'x'"),
    ("1-2-3 * * * *", "cron expression '1-2-3 * * * *' has an invalid minute field '1-2-3'"),
    ("61 0 * * *", "cron expression '61 0 * * *' has a value out of range or an unknown name"),
    ("0 24 * * *", "cron expression '0 24 * * *' has a value out of range or an unknown name"),
    ("0 9 * * xyz", "cron expression '0 9 * * xyz' has a value out of range or an unknown name"),
    ("0 0 30 2 *", "cron expression '0 0 30 2 *' never fires: no such day (such as 30 February or 31 April)"),
    ("0 0 31 4 *", "cron expression '0 0 31 4 *' never fires: no such day (such as 30 February or 31 April)"),
    ("0 0 31 2-2 *", "cron expression '0 0 31 2-2 *' never fires: no such day (such as 30 February or 31 April)"),
])
def test_invalid_expressions_say_what_is_wrong(expr: object, problem: str) -> None:
    assert cron_problem(expr) == problem


def test_canonical_cron_leaves_an_invalid_expression_as_written() -> None:
    assert canonical_cron(" 0 0 L * * ") == "0 0 L * *"
    assert canonical_cron("0 0 30 2 *") == "0 0 30 2 *"


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "Asia/Kolkata", "Asia/Calcutta", "America/New_York"])
def test_iana_names_are_timezones(name: str) -> None:
    assert timezone_problem(name) is None


@pytest.mark.parametrize(("name", "problem"), [
    (None, "a timezone must be an IANA name such as 'UTC' or 'Europe/Paris'"),
    ("", "a timezone must be an IANA name such as 'UTC' or 'Europe/Paris'"),
    (5, "a timezone must be an IANA name such as 'UTC' or 'Europe/Paris'"),
    ("IST", "unknown IANA timezone 'IST'; use a name such as 'UTC', 'Asia/Kolkata' or 'Europe/Paris'"),
    ("utc", "unknown IANA timezone 'utc'; use a name such as 'UTC', 'Asia/Kolkata' or 'Europe/Paris'"),
    ("Nope/Zone", "unknown IANA timezone 'Nope/Zone'; use a name such as 'UTC', 'Asia/Kolkata' or 'Europe/Paris'"),
    ("../etc/passwd", "unknown IANA timezone '../etc/passwd'; use a name such as 'UTC', 'Asia/Kolkata' or "
                      "'Europe/Paris'"),
])
def test_unknown_timezones_are_refused(name: object, problem: str) -> None:
    assert timezone_problem(name) == problem


@pytest.mark.parametrize(("alias", "canonical"), [
    (None, "UTC"), ("", "UTC"), ("UTC", "UTC"), ("Etc/UTC", "UTC"), ("Asia/Calcutta", "Asia/Kolkata"),
    ("Asia/Kolkata", "Asia/Kolkata"), ("US/Eastern", "America/New_York"), ("Europe/Kiev", "Europe/Kyiv"),
    ("Europe/Paris", "Europe/Paris"), ("Nope/Zone", "Nope/Zone"),
])
def test_timezone_aliases_become_their_zone(alias: str | None, canonical: str) -> None:
    assert canonical_timezone(alias) == canonical


def iso(times: list[dt.datetime]) -> list[str]:
    return [t.isoformat() for t in times]


def test_fire_times_keep_the_wall_clock_across_a_dst_change() -> None:
    # New York springs forward on 8 March 2026: 09:00 local stays 09:00, one hour earlier in UTC.
    times = next_fire_times("0 9 * * *", "America/New_York", 4, dt.datetime(2026, 3, 6, 12, tzinfo=UTC))
    assert iso(times) == ["2026-03-06T09:00:00-05:00", "2026-03-07T09:00:00-05:00", "2026-03-08T09:00:00-04:00",
                          "2026-03-09T09:00:00-04:00"]
    assert [t.astimezone(UTC).hour for t in times] == [14, 14, 13, 13]


def test_a_time_the_spring_forward_skips_fires_right_after_the_gap() -> None:
    # Paris skips 02:00-03:00 on 29 March 2026.
    times = next_fire_times("30 2 * * *", "Europe/Paris", 3, dt.datetime(2026, 3, 27, 12, tzinfo=UTC))
    assert iso(times) == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_an_hourly_schedule_fires_every_real_hour_through_the_fall_back() -> None:
    # Paris repeats 02:00-03:00 on 25 October 2026.
    times = next_fire_times("0 * * * *", "Europe/Paris", 4, dt.datetime(2026, 10, 24, 23, 10, tzinfo=UTC))
    assert iso(times) == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00",
                          "2026-10-25T04:00:00+01:00"]
    in_utc = [t.astimezone(UTC) for t in times]
    assert {b - a for a, b in itertools.pairwise(in_utc)} == {dt.timedelta(hours=1)}


def test_fire_times_are_strictly_after_and_in_the_schedules_zone() -> None:
    times = next_fire_times("0 9 * * *", "UTC", 2, dt.datetime(2026, 1, 1, 9, tzinfo=UTC))
    assert iso(times) == ["2026-01-02T09:00:00+00:00", "2026-01-03T09:00:00+00:00"]
    kolkata = next_fire_times("@weekly", "Asia/Kolkata", 2, dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert iso(kolkata) == ["2026-01-04T00:00:00+05:30", "2026-01-11T00:00:00+05:30"]  # Sundays, local midnight
    assert iso(next_fire_times("0 0 29 2 *", "UTC", 2, dt.datetime(2026, 1, 1, tzinfo=UTC))) == [
        "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]
    assert iso(next_fire_times("0 3-3 * * *", "UTC", 2, dt.datetime(2026, 1, 1, tzinfo=UTC))) == [
        "2026-01-01T03:00:00+00:00", "2026-01-02T03:00:00+00:00"]


# -- invariants over generated expressions ---------------------------------------------------------

_FULL = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_BOUNDS = ((0, 59), (0, 23), (1, 28), (1, 12), (0, 6))  # days up to 28: every month has them, so each fires


def _item(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    ranges = st.tuples(value, value).map(sorted).map(lambda r: f"{r[0]}-{r[1]}")
    steps = st.tuples(st.just("*") | ranges, st.integers(1, 9)).map(lambda s: f"{s[0]}/{s[1]}")
    return st.just("*") | value.map(str) | ranges | steps


expressions = st.tuples(*(st.lists(_item(low, high), min_size=1, max_size=3).map(",".join) for low, high in _BOUNDS)
                        ).map(" ".join)


def _values(field: str, low: int, high: int) -> set[int]:
    """What a field of the portable syntax means, read the plain way (an oracle independent of croniter)."""
    out: set[int] = set()
    for item in field.split(","):
        span, _, step = item.partition("/")
        first, _, last = span.partition("-")
        start, stop = (low, high) if span == "*" else (int(first), int(last or first))
        out |= set(range(start, stop + 1, int(step or 1)))
    return out


def _canonical_values(field: str, low: int, high: int) -> set[int]:
    if field == "*":
        return set(range(low, high + 1))
    out: set[int] = set()
    for run in field.split(","):
        first, _, last = run.partition("-")
        out |= set(range(int(first), int(last or first) + 1))
    return out


@settings(max_examples=60, deadline=None)
@given(expressions)
def test_the_canonical_spelling_means_what_was_written_and_is_stable(expr: str) -> None:
    assert cron_problem(expr) is None
    canonical = canonical_cron(expr)
    assert cron_problem(canonical) is None
    assert canonical_cron(canonical) == canonical
    for field, written, (low, high) in zip(canonical.split(), expr.split(), _FULL, strict=True):
        assert _canonical_values(field, low, high) == _values(written, low, high), (field, written)
    after = dt.datetime(2026, 2, 27, 22, 58, tzinfo=UTC)
    assert next_fire_times(canonical, "Europe/Paris", 5, after) == next_fire_times(expr, "Europe/Paris", 5, after)
