"""Request, error and route-table types shared by the sandbox's API modules.

Each API module (apps, credentials, legacy) owns a ``Router`` and registers handlers on it with
path templates relative to ``/api/service/``. Handlers take the sandbox context, the parsed
request and the path parameters, and return a JSON object (always answered with 200) or raise
``HttpError``. No I/O happens here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

Handler = Callable[..., Any]


class HttpError(Exception):
    """An error answer. The body is always a JSON object with at least ``message``."""

    def __init__(self, status: int, message: str, *, code: Any = None, extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        body: dict[str, Any] = {}
        # Some answers (the duplicate-name 409) carry no code key at all, as on the real server.
        if code is not None:
            body["code"] = code
        body["message"] = message
        body.update(extra or {})
        self.body = body
        self.headers = dict(headers or {})


def bad_request(message: str, *, causes: list[dict[str, Any]] | None = None, code: Any = 400) -> HttpError:
    extra = {"causes": causes} if causes else None
    return HttpError(400, message, code=code, extra=extra)


def not_found(what: str) -> HttpError:
    return HttpError(404, f"{what} not found", code=404)


@dataclass
class Request:
    method: str
    path: str  # relative to /api/service/, no leading slash
    params: dict[str, str]  # query string, first value of each key ("+" already decoded to space)
    body: Any
    # The server passes the headers it parsed (a Message: case-insensitive, repeated names kept).
    headers: Mapping[str, str] | Message = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """A route table: ``@router.route("GET", "v1/app/{slug}")``, templates relative to ``prefix``."""

    def __init__(self, prefix: str = "/api/service/") -> None:
        self.prefix = prefix
        self.routes: list[Route] = []

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, template, re.compile(regex), handler))
            return handler

        return register

    def include(self, other: Router) -> None:
        if other.prefix != self.prefix:
            raise ValueError(f"routes under {other.prefix} cannot join a table under {self.prefix}")
        self.routes.extend(other.routes)

    def key(self, method: str, template: str) -> str:
        """How requests to a route are counted: ``POST v1/app`` under /api/service/, and the path from
        /api/ under any other prefix (``POST meta/search/indexsearch``)."""
        where = "" if self.prefix == "/api/service/" else self.prefix[len("/api/"):]
        return f"{method} {where}{template}"

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request; raises 404 (no such path) or 405 (path exists, method does not)."""
        path_known = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            path_known = True
            if route.method == method:
                return route, m.groupdict()
        if path_known:
            raise HttpError(405, f"method {method} is not allowed on {self.prefix}{path}", code=405)
        raise HttpError(404, f"no API endpoint at {self.prefix}{path}", code=404)


# JSON from a client (a request body, a JSON-string field, a query parameter) may nest arrays and
# objects this deep, no deeper. The parser fails with RecursionError at about 1000 levels, and
# anything a little shallower than that could still exhaust the stack of whatever walks or
# serialises it later (the state file writer included), so the bound sits well below both.
MAX_JSON_DEPTH = 128


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` for client input: a ValueError (never a RecursionError) for text that is not
    JSON or nests deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"arrays and objects nest deeper than {MAX_JSON_DEPTH} levels") from None
    if _nests_deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(f"arrays and objects nest deeper than {MAX_JSON_DEPTH} levels")
    return value


def _nests_deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []  # no recursion: this guards recursive code
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def require_object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"{what} must be a JSON object")
    return body


def int_param(params: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise bad_request(f"query parameter {name!r} must be at least {minimum}, got {value}")
    return value


# -- the list endpoints' filters (credentials, roles, users, groups, API tokens) ----------------------


def list_filter(req: Request) -> dict[str, Any]:
    """The ``filter`` query parameter of a list endpoint: a JSON object of field: value, or
    field: {operator: operand} with ``$ilike``, ``$like`` (``%`` and ``_`` wildcards), ``$in``
    and ``$ne``, and ``$and`` / ``$or`` over a list of such objects."""
    raw = req.params.get("filter")
    if not raw:
        return {}
    try:
        value = parse_json(raw)
    except ValueError as exc:
        raise bad_request(f"query parameter 'filter' must be a JSON object, got {raw[:100]!r}: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request("query parameter 'filter' must be a JSON object")
    return value


def filter_matches(record: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
    for key, expected in flt.items():
        if key in ("$and", "$or"):  # a list of filters, all or any of which must match
            if not isinstance(expected, list) or not all(isinstance(f, dict) for f in expected):
                raise bad_request(f"filter {key} takes a list of filters")
            combine = all if key == "$and" else any
            if not combine(filter_matches(record, f) for f in expected):
                return False
            continue
        actual = record.get(key)
        if isinstance(expected, dict):
            for op, operand in expected.items():
                if op in ("$ilike", "$like"):
                    if not isinstance(actual, str) or not _like(actual, str(operand), op == "$ilike"):
                        return False
                elif op == "$in":
                    if not isinstance(operand, list):
                        raise bad_request(f"filter operator $in on {key!r} takes a list")
                    if actual not in operand:
                        return False
                elif op == "$ne":
                    if actual == operand:
                        return False
                else:
                    raise bad_request(f"unsupported filter operator {op!r}; use $ilike, $like, $in or $ne")
        elif actual != expected:
            return False
    return True


def _like(value: str, pattern: str, insensitive: bool) -> bool:
    regex = "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$"
    return re.match(regex, value, re.IGNORECASE if insensitive else 0) is not None


def json_type(value: Any) -> str:
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
