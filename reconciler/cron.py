"""Cron expressions and IANA timezones: validation, canonical spellings and fire times, in one place.

Schedules are standard five-field cron expressions or one of the ``@daily``-style macros. Pure
functions; croniter does the parsing.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from importlib import resources

from croniter import croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


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
        if text.lower() in MACROS:
            return None
        return f"unknown cron macro {text!r}; use one of {', '.join(sorted(MACROS))}"
    fields = text.split()
    if len(fields) != 5:
        return (
            f"cron expression {text!r} has {len(fields)} fields; write five: "
            "minute hour day-of-month month day-of-week, e.g. '0 9 * * *'"
        )
    if not croniter.is_valid(text):
        return f"cron expression {text!r} has a value out of range or an unknown name"
    return None


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
    return None


def next_fire_times(expr: str, timezone: str, count: int, after: dt.datetime) -> list[dt.datetime]:
    """The next ``count`` fire times of a valid schedule, in its timezone, strictly after ``after``."""
    tz = zoneinfo.ZoneInfo(timezone)
    text = MACROS.get(expr.strip().lower(), expr.strip())
    it = croniter(text, after.astimezone(tz))
    return [it.get_next(dt.datetime) for _ in range(count)]


@functools.lru_cache(maxsize=4096)
def canonical_cron(expr: str) -> str:
    """One spelling per schedule: macros expanded, names and ranges resolved, Sunday as 0."""
    text = MACROS.get(expr.strip().lower(), expr.strip())
    if cron_problem(text):
        return expr.strip()
    fields, nth = croniter.expand(text)
    parts = []
    for values in fields:
        parts.append("*" if values == ["*"] else _compress(sorted(set(int(v) for v in values))))
    out = " ".join(parts)
    if nth:
        out += " #" + ",".join(f"{k}:{sorted(v)}" for k, v in sorted(nth.items()))
    return out


def _compress(values: list[int]) -> str:
    runs: list[str] = []
    start = prev = values[0]
    for v in values[1:] + [None]:  # type: ignore[list-item]
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
        text = resources.files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text(encoding="utf-8")
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
