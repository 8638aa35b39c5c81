"""Cron expressions and IANA timezones: validation, canonical spellings and fire times, in one place.

Schedules are standard five-field cron expressions or one of the ``@daily``-style macros, which
croniter expands. Pure functions; croniter does the parsing. A valid expression uses only the
portable syntax (numbers, month and weekday names, ``*``, forward ranges, steps, lists: no ``L``,
``W``, ``#``, ``?`` or ``H``, which croniter reads but a tenant may refuse) and fires at least
once: ``0 0 30 2 *`` parses, and never comes.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from importlib import resources

from croniter import croniter

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
# One item of a field: *, a value, or a forward range a-b; each with an optional /step.
_ITEM = re.compile(r"^(?:\*|(?P<first>[0-9]{1,2}|[A-Za-z]{3})(?:-(?P<last>[0-9]{1,2}|[A-Za-z]{3}))?)(?:/[0-9]{1,2})?$")
_NAMES = {name: i for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                            "dec"), start=1)}
_NAMES |= {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# Extensions croniter (or Quartz, Jenkins) reads and a standard cron does not.
_EXTENSIONS = ((re.compile(r".*#.*"), "'#' (nth weekday)"), (re.compile(r"\?"), "'?' (no value)"),
               (re.compile(r"[0-9]*L(-[0-9]+)?|LW", re.I), "'L' (last)"), (re.compile(r"[0-9]+W", re.I), "'W' (nearest weekday)"),
               (re.compile(r"H(\([0-9]+-[0-9]+\))?(/[0-9]+)?", re.I), "'H' (hashed)"), (re.compile(r"R", re.I), "'R' (random)"))
# Fire times are searched from a fixed moment, so that the answer never depends on today's date;
# 8 years always holds a 29 February.
_SEARCH_FROM = dt.datetime(2000, 1, 1)
_SEARCH_YEARS = 8


def cron_problem(expr: object) -> str | None:
    """Why ``expr`` is not a usable cron expression, or None when it is."""
    if not isinstance(expr, str):
        return "a cron expression must be a non-empty string such as '0 9 * * *'"
    return _cron_problem(expr)


@functools.lru_cache(maxsize=4096)  # manifests repeat a few expressions many times
def _cron_problem(expr: str) -> str | None:
    if not expr.strip():
        return "a cron expression must be a non-empty string such as '0 9 * * *'"
    text = expr.strip()
    if text.startswith("@"):
        # A macro is one word that croniter expands (@daily is 0 0 * * *, any case); it has no
        # @reboot, which fires at boot and so never on a tenant. The hint names croniter's macros.
        if len(text.split()) == 1 and croniter.is_valid(text):
            return None
        return (f"unknown cron macro {text!r}; "
                "use one of @annually, @daily, @hourly, @midnight, @monthly, @weekly, @yearly")
    fields = text.split()
    if len(fields) != 5:
        return (
            f"cron expression {text!r} has {len(fields)} fields; write five: "
            "minute hour day-of-month month day-of-week, e.g. '0 9 * * *'"
        )
    for name, values in zip(FIELDS, fields, strict=True):
        problem = _field_problem(text, name, values)
        if problem:
            return problem
    if not croniter.is_valid(_for_croniter(text)):
        return f"cron expression {text!r} has a value out of range or an unknown name"
    try:
        croniter(_for_croniter(text), _SEARCH_FROM, max_years_between_matches=_SEARCH_YEARS).get_next(dt.datetime)
    except (ValueError, KeyError, IndexError, OverflowError):  # croniter's own errors are ValueErrors
        return f"cron expression {text!r} never fires: no such day (such as 30 February or 31 April)"
    return None


def _field_problem(text: str, name: str, values: str) -> str | None:
    """Why one field is not portable cron, or None."""
    for item in values.split(","):
        match = _ITEM.match(item)
        if match is None:
            used = [what for pattern, what in _EXTENSIONS if pattern.fullmatch(item)]
            if used:
                return (f"cron expression {text!r} uses {used[0]} in the {name} field, a non-standard extension the "
                        "tenant may not accept; write numbers, names, *, ranges a-b, steps /n and lists a,b"
                        + (" (* instead of ?)" if "?" in item else ""))
            return f"cron expression {text!r} has an invalid {name} field {values!r}"
        first, last = match["first"], match["last"]
        if first and last:
            low, high = _value(first), _value(last)
            if low > high:
                return (f"cron expression {text!r} has a backward range {first}-{last} in the {name} field; "
                        f"write it as two ranges, or a list")
    return None


def _value(text: str) -> int:
    """A number or a month or weekday name as its number (-1 for an unknown name)."""
    return int(text) if text.isdigit() else _NAMES.get(text.lower(), -1)


def _for_croniter(text: str) -> str:
    """``text`` with each range of one value (``3-3``, ``mon-mon``, ``0-0/2``) written as that value:
    croniter 7 reads such a range as ``*``, so ``0 3-3 * * *`` would fire every hour."""
    fields = []
    for values in text.split():
        items = []
        for item in values.split(","):
            match = _ITEM.match(item)
            if match and match["first"] and match["last"] and _value(match["first"]) == _value(match["last"]):
                item = match["first"]
            items.append(item)
        fields.append(",".join(items))
    return " ".join(fields)


def timezone_problem(name: object) -> str | None:
    """Why ``name`` is not an IANA timezone, or None when it is."""
    if not isinstance(name, str) or not name:
        return "a timezone must be an IANA name such as 'UTC' or 'Europe/Paris'"
    return _timezone_problem(name)


@functools.lru_cache(maxsize=1024)
def _timezone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown IANA timezone {name!r}; use a name such as 'UTC', 'Asia/Kolkata' or 'Europe/Paris'"
    return None


def next_fire_times(expr: str, timezone: str, count: int, after: dt.datetime) -> list[dt.datetime]:
    """The next ``count`` fire times of a valid schedule, in its timezone, strictly after ``after``."""
    tz = zoneinfo.ZoneInfo(timezone)
    it = croniter(_for_croniter(expr.strip()), after.astimezone(tz))
    return [it.get_next(dt.datetime) for _ in range(count)]


@functools.lru_cache(maxsize=4096)
def canonical_cron(expr: str) -> str:
    """One spelling per schedule: macros expanded, names and ranges resolved, Sunday as 0."""
    text = expr.strip()
    if cron_problem(text):
        return text
    fields, nth = croniter.expand(_for_croniter(text))
    parts = []
    for values in fields:
        # A list holding * ("*,5") is every value, and croniter reads it as a plain *.
        parts.append("*" if "*" in values else _compress(sorted(set(int(v) for v in values))))
    out = " ".join(parts)
    if nth:
        out += " #" + ",".join(f"{k}:{sorted(v)}" for k, v in sorted(nth.items()))
    return out


def _compress(values: list[int]) -> str:
    runs: list[str] = []
    start = prev = values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(runs)


@functools.lru_cache(maxsize=1)
def _zone_links() -> dict[str, str]:
    """Alias → canonical zone, from tzdata's own link table (Asia/Calcutta → Asia/Kolkata)."""
    try:
        text = (resources.files("tzdata") / "zoneinfo" / "tzdata.zi").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - tzdata is a dependency
        return {}
    links = {}
    for line in text.splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()
            links[alias] = target
    links["Etc/UTC"] = "UTC"
    for alias, target in list(links.items()):
        if target == "Etc/UTC":
            links[alias] = "UTC"
    links.pop("UTC", None)
    return links


def canonical_timezone(name: str | None) -> str:
    name = name or "UTC"
    return _zone_links().get(name, name)
