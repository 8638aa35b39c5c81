"""The Elasticsearch query subset the SDK sends to ``workflows/indexsearch`` and ``runs/indexsearch``
(ATLAN_API §4.2): bool (must, filter, should, must_not), nested, term, terms, regexp, prefix,
exists, range, match, match_all; ``.keyword`` suffixes; dotted label keys such as
``metadata.labels.workflows.argoproj.io/phase``; ``_id``; from/size; sort.

``range`` compares as Elasticsearch does on a date field when the document's value is an ISO date
(or epoch milliseconds, as Atlas keeps ``__timestamp``): bounds may be epoch milliseconds, ISO
dates with or without a time or zone (``time_zone`` applies to those without one, default UTC),
four digits as a year, or date math (``now-6h``, ``now-1d/d``, ``2026-11-01||+1M/d``) anchored on
the tenant's clock and rounded as Elasticsearch rounds it: down for gte and lt, up to the unit's
last millisecond for gt and lte; weeks start on Monday. Numbers compare as numbers. Malformed
date math is a 400 (Elasticsearch's parse_exception). Other values compare as sent.

Pure functions over (id, source) pairs. An unsupported clause, a malformed one, or a ``from`` /
``size`` that is not a whole number in range is a 400 that names it. As Elasticsearch with its
default ``index.max_result_window``, ``from + size`` may not exceed 10,000.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.routing import HttpError, bad_request

SUPPORTED = ("bool", "nested", "term", "terms", "regexp", "prefix", "exists", "range", "match", "match_all")
MAX_RESULT_WINDOW = 10_000


def field_values(node: Any, path: str) -> list[Any]:
    """Every value at a dotted path; keys may themselves contain dots (Kubernetes label keys)."""
    if path == "":
        return list(_flatten(node))
    if isinstance(node, list):
        return [v for item in node for v in field_values(item, path)]
    if not isinstance(node, dict):
        return []
    out: list[Any] = []
    for key, child in node.items():
        if path == key:
            out.extend(_flatten(child))
        elif path.startswith(key + "."):
            out.extend(field_values(child, path[len(key) + 1 :]))
    return out


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _values(doc_id: str, source: dict[str, Any], field: str) -> list[Any]:
    if field.endswith(".keyword"):
        field = field[: -len(".keyword")]
    if field == "_id":
        return [doc_id]
    return field_values(source, field)


def _single(clause: Any, name: str) -> tuple[str, Any]:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise bad_request(f"'{name}' takes exactly one field")
    return next(iter(clause.items()))


def _operand(spec: Any, key: str = "value") -> tuple[Any, bool]:
    if isinstance(spec, dict):
        return spec.get(key), bool(spec.get("case_insensitive", False))
    return spec, False


def _eq(actual: Any, expected: Any, insensitive: bool) -> bool:
    if insensitive and isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()
    return actual == expected or (isinstance(actual, (int, float, bool)) and str(actual).lower() == str(expected).lower())


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def matches(query: Any, doc_id: str, source: dict[str, Any], now: float | None = None) -> bool:
    """Whether a document matches a query; ``now`` (epoch seconds, the tenant's clock) anchors date
    math in ``range``."""
    if not query:
        return True
    if not isinstance(query, dict) or len(query) != 1:
        raise bad_request("each query clause must be an object with exactly one key")
    kind, body = next(iter(query.items()))
    if kind == "match_all":
        return True
    if kind in ("bool", "nested", "exists") and not isinstance(body, dict):
        raise bad_request(f"'{kind}' takes an object, got {_json_type(body)}")
    if kind == "bool":
        must = _as_list(body.get("must")) + _as_list(body.get("filter"))
        should = _as_list(body.get("should"))
        must_not = _as_list(body.get("must_not"))
        if not all(matches(q, doc_id, source, now) for q in must):
            return False
        if any(matches(q, doc_id, source, now) for q in must_not):
            return False
        minimum = body.get("minimum_should_match", 0 if must else 1)
        if isinstance(minimum, bool) or not isinstance(minimum, (int, str)) or not re.fullmatch(r"-?[0-9]{1,9}", str(minimum)):
            raise bad_request("'minimum_should_match' must be a whole number (the sandbox supports no percentages), "
                              f"got {_json_type(minimum)}")
        return not should or sum(matches(q, doc_id, source, now) for q in should) >= int(minimum)
    if kind == "nested":
        # Paths are resolved from the document root, so a nested query is its inner query.
        return matches(body.get("query"), doc_id, source, now)
    if kind == "exists":
        field = body.get("field")
        if not isinstance(field, str):
            raise bad_request(f"'exists' takes {{\"field\": <name>}}, got a field of {_json_type(field)}")
        return any(v is not None for v in _values(doc_id, source, field))
    field, spec = _single(body, kind)
    values = _values(doc_id, source, field)
    if kind == "term":
        expected, insensitive = _operand(spec)
        return any(_eq(v, expected, insensitive) for v in values)
    if kind == "match":
        expected, _ = _operand(spec, "query")
        return any(_eq(v, expected, True) for v in values)
    if kind == "terms":
        return any(_eq(v, e, False) for v in values for e in _as_list(spec))
    if kind == "prefix":
        expected, insensitive = _operand(spec)
        if insensitive:
            return any(isinstance(v, str) and v.lower().startswith(str(expected).lower()) for v in values)
        return any(isinstance(v, str) and v.startswith(str(expected)) for v in values)
    if kind == "regexp":
        expected, insensitive = _operand(spec)
        try:
            pattern = re.compile(str(expected), re.IGNORECASE if insensitive else 0)
        except re.error as exc:
            raise bad_request(f"invalid regexp {expected!r}: {exc}") from None
        return any(isinstance(v, str) and pattern.fullmatch(v) is not None for v in values)
    if kind == "range":
        if not isinstance(spec, dict):
            raise bad_request("'range' takes an object of gte/gt/lte/lt bounds")
        bounds = _range_bounds(spec, time.time() if now is None else now)
        return any(v is not None and _in_range(v, bounds) for v in values)
    raise bad_request(f"unsupported query clause {kind!r}; the sandbox supports {', '.join(SUPPORTED)}")


# -- range: numbers, and dates as Elasticsearch compares them -------------------------------------------

_OPS = ("gte", "gt", "lte", "lt")
_UNITS = {"y": "years", "M": "months", "w": "weeks", "d": "days", "h": "hours", "H": "hours", "m": "minutes",
          "s": "seconds"}
_MATH = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class _Bound:
    op: str
    raw: Any  # as sent: compared as it is with values that are not dates
    millis: int | None  # as a date (epoch milliseconds), when the bound reads as one


def _range_bounds(spec: dict[str, Any], now: float) -> list[_Bound]:
    unknown = sorted(set(spec) - {*_OPS, "format", "time_zone", "boost"})
    if unknown:
        raise bad_request(f"'range' takes gte, gt, lte, lt, format and time_zone; got {', '.join(unknown)}")
    fmt = str(spec.get("format") or "")
    zone = _zone(spec.get("time_zone"))
    return [_Bound(op, spec[op], _bound_millis(spec[op], op, now, fmt, zone)) for op in _OPS if spec.get(op) is not None]


def _zone(name: Any) -> dt.tzinfo:
    if name is None:
        return dt.timezone.utc
    text = str(name)
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if offset:
        sign = 1 if offset.group(1) == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3))))
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise bad_request(f"unknown time_zone [{text}] in 'range'") from None


def _bound_millis(bound: Any, op: str, now: float, fmt: str, zone: dt.tzinfo) -> int | None:
    """A bound as epoch milliseconds: a number or numeric string (epoch milliseconds), an ISO date,
    or date math (``now-6h``, ``now-1d/d``, ``2026-11-01||+1M/d``) rounded as Elasticsearch rounds
    it: down for gte and lt, up (to the last millisecond of the unit) for gt and lte."""
    if isinstance(bound, bool):
        return None
    if isinstance(bound, (int, float)):
        return int(bound)
    if not isinstance(bound, str):
        return None
    if bound.startswith("now") or "||" in bound:
        if bound.startswith("now"):
            start: dt.datetime | None = dt.datetime.fromtimestamp(now, dt.timezone.utc)
            math = bound[3:]
        else:
            anchor, _, math = bound.partition("||")
            start = _parse_date(anchor, fmt, zone)
        if start is None:
            raise _unparsable(bound)
        return _apply_math(start, math, op, zone, bound)
    # The default format of a date field is strict_date_optional_time||epoch_millis: four digits
    # are a year, any other number epoch milliseconds (only epoch_millis: always milliseconds).
    if _NUMBER.fullmatch(bound) and (fmt == "epoch_millis" or not re.fullmatch(r"\d{4}", bound)):
        return int(float(bound))
    parsed = _parse_date(bound, fmt, zone)
    return None if parsed is None else _millis(parsed)


def _apply_math(start: dt.datetime, math: str, op: str, zone: dt.tzinfo, whole: str) -> int:
    moment = start.astimezone(zone)
    position = 0
    for found in _MATH.finditer(math):
        if found.start() != position:
            raise _unparsable(whole)
        position = found.end()
        if found.group(4):  # rounding to the unit: the last millisecond of it for gt and lte
            unit = found.group(4)
            moment = _floor(moment, unit)
            if op in ("gt", "lte"):
                moment = _add(moment, "+", 1, unit) - dt.timedelta(milliseconds=1)
        else:
            moment = _add(moment, found.group(1), int(found.group(2)), found.group(3))
    if position != len(math):
        raise _unparsable(whole)
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


def _add(moment: dt.datetime, sign: str, amount: int, unit: str) -> dt.datetime:
    amount = amount if sign == "+" else -amount
    if unit in ("y", "M"):
        months = moment.month - 1 + amount * (12 if unit == "y" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    return moment + dt.timedelta(**{_UNITS[unit]: amount})


def _parse_date(text: str, fmt: str, zone: dt.tzinfo) -> dt.datetime | None:
    if "epoch_millis" in fmt and _NUMBER.fullmatch(text):
        return dt.datetime.fromtimestamp(float(text) / 1000, dt.timezone.utc)
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = dt.datetime.fromisoformat(candidate) if "T" in candidate or len(candidate) > 10 else \
            dt.datetime.combine(dt.date.fromisoformat(candidate), dt.time())
    except ValueError:
        if re.fullmatch(r"\d{4}(-\d{2})?", text):  # a year, or a year and a month
            parts = [int(p) for p in text.split("-")] + [1]
            parsed = dt.datetime(parts[0], parts[1], 1)
        else:
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _millis(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _unparsable(text: str) -> HttpError:
    return bad_request(f"failed to parse date field [{text}]: unknown date math or format (parse_exception)")


def parse_instant(text: str) -> dt.datetime | None:
    """An ISO-8601 date or date-time (``Z`` or an offset; none: UTC), as an aware datetime; None
    when the text is not one."""
    return _parse_date(text, "", dt.timezone.utc) if isinstance(text, str) else None


def _value_millis(value: Any) -> int | None:
    """A document's value as a date: an ISO date string (what the stored runs and templates hold)."""
    if isinstance(value, str) and len(value) >= 10 and value[:4].isdigit() and value[4:5] == "-":
        parsed = _parse_date(value, "", dt.timezone.utc)
        return None if parsed is None else _millis(parsed)
    return None


def _in_range(value: Any, bounds: list[_Bound]) -> bool:
    millis = _value_millis(value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    for bound in bounds:
        raw = bound.raw
        left: Any
        right: Any
        if millis is not None and bound.millis is not None:
            left, right = millis, bound.millis  # a date field: both sides as instants
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


def _json_type(value: Any) -> str:
    """How a JSON value is named in an error: its type, and the value itself when short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a number ({value})" if len(str(value)) <= 30 else f"a {len(str(value))}-digit number"
    if isinstance(value, float):
        return f"a number with a fraction ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:30]!r}{'...' if len(value) > 30 else ''})"
    return "an array" if isinstance(value, list) else "an object"


def _page_bound(request: dict[str, Any], name: str, default: int) -> int:
    """``from`` or ``size``: absent or null means the default; anything but a whole number from 0
    to MAX_RESULT_WINDOW is a 400 naming what was sent."""
    value = request.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RESULT_WINDOW:
        raise bad_request(f"'{name}' must be a whole number from 0 to {MAX_RESULT_WINDOW}, got {_json_type(value)}",
                          causes=[{"errorType": "type", "errorMessage": f"not a whole number from 0 to {MAX_RESULT_WINDOW}",
                                   "location": name}])
    return value


def _sort_specs(sort: Any) -> list[tuple[str, bool]]:
    specs = []
    for item in _as_list(sort):
        if isinstance(item, str):
            specs.append((item, False))
        elif isinstance(item, dict) and len(item) == 1:
            field, spec = next(iter(item.items()))
            order = spec.get("order", "asc") if isinstance(spec, dict) else spec
            specs.append((field, str(order).lower() == "desc"))
        else:
            raise bad_request("each sort entry must be a field name or {field: {order}}")
    return specs


def search(docs: list[tuple[str, dict[str, Any]]], request: dict[str, Any], index: str,
           now: float | None = None) -> dict[str, Any]:
    """Answer one search request over (id, source) documents; ``now``: the tenant's clock (epoch
    seconds) for date math."""
    start, size = _page_bound(request, "from", 0), _page_bound(request, "size", 10)
    if start + size > MAX_RESULT_WINDOW:
        raise bad_request(f"result window is too large: 'from' + 'size' must be at most {MAX_RESULT_WINDOW}, "
                          f"got {start} + {size}")
    query = request.get("query")
    post_filter = request.get("post_filter")
    hits = [(i, s) for i, s in docs if matches(query, i, s, now) and matches(post_filter, i, s, now)]
    specs = _sort_specs(request.get("sort"))

    def sort_value(doc: tuple[str, dict[str, Any]], field: str) -> Any:
        values = _values(doc[0], doc[1], field)
        return values[0] if values else None

    for field, descending in reversed(specs):
        present = [d for d in hits if sort_value(d, field) is not None]
        missing = [d for d in hits if sort_value(d, field) is None]
        present.sort(key=lambda d: str(sort_value(d, field)) if not isinstance(sort_value(d, field), (int, float)) else sort_value(d, field),
                     reverse=descending)
        hits = present + missing
    page = hits[start : start + size]
    return {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": len(hits), "relation": "eq"},
            "max_score": None,
            "hits": [
                {
                    "_index": index,
                    "_type": "_doc",
                    "_id": doc_id,
                    "_score": None,
                    "_seq_no": n,
                    "_primary_term": 1,
                    "sort": [sort_value((doc_id, source), f) for f, _ in specs],
                    "_source": source,
                }
                for n, (doc_id, source) in enumerate(page, start=start)
            ],
        },
    }
