"""``range`` for ``search``: numbers as numbers, dates as Elasticsearch evaluates a ``range`` on a
``date`` field. Pure. Which fields
are dates: those whose document value is an ISO date string, as Elasticsearch's dynamic mapping
decides (the runs' ``status.startedAt``, ``status.finishedAt`` and ``metadata.creationTimestamp``,
the templates' ``metadata.creationTimestamp``, all stored as ``2026-11-22T10:00:00Z``); both sides
are parsed to epoch milliseconds and compared as instants. Bounds:

* ``format`` (default ``strict_date_optional_time||epoch_millis``, tried in order) reads a bound;
  a JSON number is read as its text, as Elasticsearch does, so under the default format ``2026``
  is a year and ``1700000000000`` epoch milliseconds. Formats read: the ISO names
  (``strict_date_optional_time``, ``date_optional_time``, ``date``, ``date_time`` and their
  ``strict_`` forms, all read as the optional-time ISO grammar), ``epoch_millis``,
  ``epoch_second``, and Java patterns of ``y u M d H m s S X x Z`` with literals
  (``dd/MM/yyyy HH:mm``); a pattern with other letters is a 400 saying so.
* What a date leaves out is filled as Elasticsearch documents ("missing date components"):
  month and day 1; the time 00:00:00.000 for gte and lt, 23:59:59.999 for gt and lte, so
  ``lte: "2026-11-22"`` takes in that whole day (and ``lte: "2026-11"`` ends on 1 November,
  23:59:59.999, the documented quirk). ``epoch_second`` rounds a whole second up the same way.
* Date math: ``now`` (the tenant's clock, passed in by the caller: ``store.now()``, which a test's
  ``ManualClock`` drives) or ``<date>||`` (the anchor read rounding down), then any number of
  ``+N<unit>``, ``-N<unit>`` (N omitted: 1) and ``/<unit>`` with units ``y M w d h H m s``.
  Rounding goes down for gte and lt, up to the unit's last millisecond for gt and lte; weeks start
  on Monday; ``/`` takes only one unit (``/2d`` is a 400). Months and years clamp the day (31
  January + 1M is 28 or 29 February).
* ``time_zone`` (an offset such as ``+05:30`` or an IANA name) applies to dates without a zone
  and to rounding, not to ``now`` itself or to epoch values. In it, days and longer move the
  calendar (local midnight stays midnight across a DST change) and hours, minutes and seconds the
  instant, as Java's ``ZonedDateTime`` does.
* Malformed date math, an unknown ``time_zone`` or format, and a bound that reads as no date in
  any format of the list when it meets a date field are 400s naming the text (Elasticsearch's
  ``parse_exception``), as is an anchor before ``||`` that is not a date. Against a field that is
  not a date the bound is not parsed: numbers compare as numbers (date math and dates also compare
  with a number field as epoch milliseconds, as Atlas keeps ``__timestamp``), and strings as
  strings (a keyword field).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.routing import HttpError, bad_request, json_type

_OPS = ("gte", "gt", "lte", "lt")
# Elasticsearch parses gt and lte bounds "rounding up" and gte and lt bounds rounding down.
_ROUND_UP = {"gte": False, "gt": True, "lte": True, "lt": False}
DEFAULT_DATE_FORMAT = "strict_date_optional_time||epoch_millis"
_UNITS = {"y": "years", "M": "months", "w": "weeks", "d": "days", "h": "hours", "H": "hours", "m": "minutes",
          "s": "seconds"}
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_ZONE = r"(?P<z>[Zz]|[+-]\d{2}(?::?\d{2})?)"
# strict_date_optional_time: a year at least, then month, day, 'T', hour, minute, second, fraction,
# zone (only after a time); date_optional_time is the same with one or two digits for the rest.
_STRICT_ISO = re.compile(r"(?P<y>\d{4})(?:-(?P<M>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2})(?::(?P<m>\d{2})"
                         r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?" + _ZONE + r"?)?)?)?")
_LENIENT_ISO = re.compile(r"(?P<y>[+-]?\d{1,9})(?:-(?P<M>\d{1,2})(?:-(?P<d>\d{1,2})(?:T(?P<H>\d{1,2})(?::(?P<m>\d{1,2})"
                          r"(?::(?P<s>\d{1,2})(?:[.,](?P<f>\d{1,9}))?)?)?" + _ZONE + r"?)?)?)?")
_ISO_FORMATS = {
    "strict_date_optional_time": _STRICT_ISO, "strict_date_optional_time_nanos": _STRICT_ISO,
    "date_optional_time": _LENIENT_ISO, "strict_date_time": _STRICT_ISO, "date_time": _LENIENT_ISO,
    "strict_date_time_no_millis": _STRICT_ISO, "date_time_no_millis": _LENIENT_ISO,
    "strict_date": _STRICT_ISO, "date": _LENIENT_ISO, "strict_year_month_day": _STRICT_ISO,
    "year_month_day": _LENIENT_ISO, "strict_year_month": _STRICT_ISO, "year_month": _LENIENT_ISO,
    "strict_year": _STRICT_ISO, "year": _LENIENT_ISO,
}
# The letters of a Java date pattern (``yyyy-MM-dd``, ``dd/MM/yyyy HH:mm``) the sandbox reads.
_PATTERN_LETTERS = {"y": ("y", 4), "u": ("y", 4), "M": ("M", 2), "d": ("d", 2), "H": ("H", 2), "m": ("m", 2),
                    "s": ("s", 2), "S": ("f", 0), "X": ("z", 0), "x": ("z", 0), "Z": ("z", 0)}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class _Bound:
    op: str
    raw: Any  # as sent: compared as it is with values that are neither dates nor numbers
    millis: int | None  # as a date (epoch milliseconds), when the bound reads as one
    problem: str = ""  # why it does not read as a date: a 400 when it meets a date value


def range_bounds(spec: dict[str, Any], now: float) -> list[_Bound]:
    unknown = sorted(set(spec) - {*_OPS, "format", "time_zone", "boost"})
    if unknown:
        raise bad_request(f"'range' takes gte, gt, lte, lt, format and time_zone; got {', '.join(unknown)}")
    fmt = spec.get("format") or DEFAULT_DATE_FORMAT
    if not isinstance(fmt, str):
        raise bad_request(f"'range' takes a string format, got {json_type(fmt)}")
    parsers = [_date_parser(name) for name in fmt.split("||")]
    zone = _zone(spec.get("time_zone"))
    bounds = []
    for op in _OPS:
        if spec.get(op) is None:
            continue
        millis, problem = _bound_millis(spec[op], _ROUND_UP[op], now, fmt, parsers, zone)
        bounds.append(_Bound(op, spec[op], millis, problem))
    return bounds


def _zone(name: Any) -> dt.tzinfo:
    if name is None:
        return dt.timezone.utc
    text = str(name)
    if text in ("Z", "z"):
        return dt.timezone.utc
    offset = _offset(text)
    if offset is not None:
        return offset
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise bad_request(f"unknown time_zone [{text}] in 'range'") from None


def _offset(text: str) -> dt.timezone | None:
    """``Z``, ``+05:30``, ``+0530`` or ``+05`` as a fixed offset; None when it is none of those."""
    if text in ("Z", "z"):
        return dt.timezone.utc
    found = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", text)
    if not found or int(found.group(2)) > 18 or int(found.group(3) or 0) > 59:
        return None
    sign = 1 if found.group(1) == "+" else -1
    return dt.timezone(sign * dt.timedelta(hours=int(found.group(2)), minutes=int(found.group(3) or 0)))


_DateParser = Callable[[str, bool, dt.tzinfo], "int | None"]


def _date_parser(name: str) -> _DateParser:
    """One format of a ``format`` list (``strict_date_optional_time||epoch_millis``) as a parser of
    text to epoch milliseconds (None when the text is not in that format)."""
    if name == "epoch_millis":
        return lambda text, up, zone: int(float(text)) if _NUMBER.fullmatch(text) else None
    if name == "epoch_second":
        def seconds(text: str, up: bool, zone: dt.tzinfo) -> int | None:
            if not _NUMBER.fullmatch(text):
                return None  # rounding up, a whole second stands for its last millisecond
            return int(float(text) * 1000) + (999 if up and "." not in text else 0)
        return seconds
    pattern = _ISO_FORMATS.get(name) or _java_pattern(name)
    return lambda text, up, zone: _parse_parts(pattern, text, up, zone)


def _java_pattern(fmt: str) -> re.Pattern[str]:
    """A Java date pattern of the letters the sandbox reads (y u M d H m s S X x Z) and literals."""
    out: list[str] = []
    seen: set[str] = set()
    for token in re.finditer(r"'((?:[^']|'')*)'|([A-Za-z])\2*|.", fmt):
        if token.group(1) is not None:  # quoted text; '' is a quote, inside quotes or out
            out.append(re.escape(token.group(1).replace("''", "'") if token.group(1) else "'"))
            continue
        letter = token.group(2)
        if not letter:
            out.append(re.escape(token.group(0)))
            continue
        if letter not in _PATTERN_LETTERS:
            raise bad_request(f"the sandbox does not support the date format [{fmt}] (letter '{letter}'); it reads "
                              "the ISO names (strict_date_optional_time, date, ...), epoch_millis, epoch_second and "
                              "patterns of y, M, d, H, m, s, S and X")
        group, width = _PATTERN_LETTERS[letter]
        if group in seen:
            raise bad_request(f"the date format [{fmt}] names '{letter}' twice")
        seen.add(group)
        digits = "4,9" if group == "y" else str(width or len(token.group(0)))
        out.append(_ZONE if group == "z" else rf"(?P<{group}>\d{{{digits}}})")
    return re.compile("".join(out))


def _parse_parts(pattern: re.Pattern[str], text: str, up: bool, zone: dt.tzinfo) -> int | None:
    """A date in ``pattern`` as epoch milliseconds. What the text leaves out is filled as
    Elasticsearch documents ("missing date components"): month and day 1, and the time 00:00:00.000,
    or 23:59:59.999 when rounding up (gt, lte)."""
    found = pattern.fullmatch(text)
    if not found:
        return None
    parts = {k: v for k, v in found.groupdict().items() if v is not None}
    if "y" not in parts:
        return None
    clock = ("23", "59", "59") if up else ("0", "0", "0")
    fraction = parts.get("f")
    micro = int(fraction.ljust(6, "0")[:6]) if fraction else (999_999 if up else 0)
    tz = _offset(parts["z"]) if "z" in parts else zone
    if tz is None:
        return None
    try:
        moment = dt.datetime(int(parts["y"]), int(parts.get("M", 1)), int(parts.get("d", 1)), int(parts.get("H", clock[0])),
                             int(parts.get("m", clock[1])), int(parts.get("s", clock[2])), micro, tzinfo=tz)
    except (ValueError, OverflowError):
        return None
    return _millis(moment)


def _bound_millis(bound: Any, up: bool, now: float, fmt: str, parsers: list[_DateParser],
                  zone: dt.tzinfo) -> tuple[int | None, str]:
    """A bound as epoch milliseconds, and why not when it is not a date. As Elasticsearch, a number
    is read as its text (so under the default format ``2026`` is a year and ``1700000000000`` epoch
    milliseconds); ``now…`` and ``<date>||…`` are date math, rounded down for gte and lt and up (to the
    last millisecond of the unit) for gt and lte, and malformed date math is a 400 at once."""
    if isinstance(bound, bool) or not isinstance(bound, (str, int, float)):
        return None, f"failed to parse date field [{bound}]: not a date"
    text = bound if isinstance(bound, str) else str(bound)
    if text.startswith("now"):
        return _apply_math(_from_millis(int(now * 1000)), text[3:], up, zone, text), ""
    if "||" in text:
        anchor, _, math = text.partition("||")
        start = _parse(anchor, False, fmt, parsers, zone)  # the anchor itself is never rounded up
        if start is None:
            raise bad_request(f"failed to parse date field [{text}] with format [{fmt}]: [{anchor}] is not a date "
                              "(parse_exception)")
        return _apply_math(_from_millis(start), math, up, zone, text), ""
    millis = _parse(text, up, fmt, parsers, zone)
    return millis, "" if millis is not None else _unparsable(text, fmt).body["message"]


def _parse(text: str, up: bool, fmt: str, parsers: list[_DateParser], zone: dt.tzinfo) -> int | None:
    for parser in parsers:
        try:
            millis = parser(text, up, zone)
        except (ValueError, OverflowError):
            millis = None
        if millis is not None:
            return millis
    return None


def _apply_math(start: dt.datetime, math: str, up: bool, zone: dt.tzinfo, whole: str) -> int:
    """Elasticsearch's date math: ``+N<unit>``, ``-N<unit>`` (N omitted: 1) and ``/<unit>`` in any
    number and order, in ``zone``; hours, minutes and seconds move the instant, longer units the
    calendar."""
    moment = start.astimezone(zone)
    i = 0
    while i < len(math):
        op = math[i]
        i += 1
        if op not in "+-/":
            raise bad_request(f"failed to parse date field [{whole}]: operator not supported for date math [{math}]"
                              " (parse_exception)")
        digits = re.match(r"\d*", math[i:])
        amount_text = digits.group(0) if digits else ""
        i += len(amount_text)
        if i >= len(math):
            raise bad_request(f"failed to parse date field [{whole}]: truncated date math [{math}] (parse_exception)")
        unit = math[i]
        i += 1
        if unit not in _UNITS:
            raise bad_request(f"failed to parse date field [{whole}]: unit [{unit}] not supported for date math "
                              f"[{math}] (parse_exception)")
        amount = int(amount_text) if amount_text else 1
        if op == "/":
            if amount != 1:
                raise bad_request(f"failed to parse date field [{whole}]: rounding `/` can only be used on single "
                                  f"unit types [{math}] (parse_exception)")
            moment = _floor(moment, unit)
            if up:  # the last millisecond of the unit
                moment = _add(moment, 1, unit) - dt.timedelta(milliseconds=1)
        else:
            moment = _add(moment, amount if op == "+" else -amount, unit)
    return _millis(moment)


def _floor(moment: dt.datetime, unit: str) -> dt.datetime:
    if unit == "y":
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - dt.timedelta(days=day.weekday())  # weeks start on Monday, as in Elasticsearch
    if unit == "d":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("h", "H"):
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    return moment.replace(microsecond=0)


def _add(moment: dt.datetime, amount: int, unit: str) -> dt.datetime:
    if unit in ("y", "M"):
        months = moment.month - 1 + amount * (12 if unit == "y" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        if not 1 <= year <= 9999:
            raise bad_request(f"date math moves past the year 9999 or before the year 1 ({amount}{unit})")
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    try:
        if unit in ("w", "d"):  # calendar days: local midnight stays midnight across a DST change
            return moment + dt.timedelta(**{_UNITS[unit]: amount})
        # Hours, minutes and seconds move the instant (aware arithmetic in Python is wall-clock).
        return (moment.astimezone(dt.timezone.utc) + dt.timedelta(**{_UNITS[unit]: amount})).astimezone(moment.tzinfo)
    except OverflowError:
        raise bad_request(f"date math moves past the year 9999 or before the year 1 ({amount}{unit})") from None


def _millis(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)  # exact, where timestamp() * 1000 rounds


def _from_millis(millis: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=millis)


def _unparsable(text: str, fmt: str) -> HttpError:
    return bad_request(f"failed to parse date field [{text}] with format [{fmt}] (parse_exception)")


def parse_instant(text: str) -> dt.datetime | None:
    """An ISO-8601 date or date-time (``Z`` or an offset; none: UTC), as an aware datetime; None
    when the text is not one."""
    if not isinstance(text, str):
        return None
    millis = _parse_parts(_LENIENT_ISO, text, False, dt.timezone.utc)
    if millis is None:
        try:  # what Python reads too (a space for the 'T', a compact offset)
            parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)
    return _from_millis(millis)


def _value_millis(value: Any) -> int | None:
    """A document's value as a date: an ISO date string (what the stored runs and templates hold:
    Elasticsearch's dynamic mapping makes such a string a date field)."""
    if isinstance(value, str) and len(value) >= 10 and value[:4].isdigit() and value[4:5] == "-":
        return _parse_parts(_LENIENT_ISO, value, False, dt.timezone.utc)
    return None


def in_range(value: Any, bounds: list[_Bound]) -> bool:
    millis = _value_millis(value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    for bound in bounds:
        raw = bound.raw
        left: Any
        right: Any
        if millis is not None:  # a date field: both sides as instants
            if bound.millis is None:
                raise bad_request(bound.problem)
            left, right = millis, bound.millis
        elif number and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            left, right = value, raw  # a number field
        elif number and isinstance(raw, str) and _NUMBER.fullmatch(raw):
            left, right = value, float(raw)
        elif number and bound.millis is not None:
            left, right = value, bound.millis  # a date kept as epoch milliseconds (Atlas's __timestamp)
        else:
            left, right = value, bound.raw  # neither a date nor a number: as sent (strings compare as strings)
        try:
            ok = {"gte": left >= right, "gt": left > right, "lte": left <= right, "lt": left < right}[bound.op]
        except TypeError:
            return False
        if not ok:
            return False
    return True
