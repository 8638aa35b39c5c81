"""The Elasticsearch query subset the SDK sends to ``workflows/indexsearch`` and ``runs/indexsearch``
(ATLAN_API §4.2): bool (must, filter, should, must_not), nested, term, terms, regexp, prefix,
exists, range, match, match_all; ``.keyword`` suffixes; dotted label keys such as
``metadata.labels.workflows.argoproj.io/phase``; ``_id``; from/size; sort.

``range`` is evaluated by ``dates`` (numbers as numbers, dates as Elasticsearch does).

Pure functions over (id, source) pairs. An unsupported clause, a malformed one, or a ``from`` /
``size`` that is not a whole number in range is a 400 that names it. As Elasticsearch with its
default ``index.max_result_window``, ``from + size`` may not exceed 10,000.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from reconciler.sandbox.dates import in_range, range_bounds
from reconciler.sandbox.routing import bad_request, json_type

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
        raise bad_request(f"'{kind}' takes an object, got {json_type(body)}")
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
                              f"got {json_type(minimum)}")
        return not should or sum(matches(q, doc_id, source, now) for q in should) >= int(minimum)
    if kind == "nested":
        # Paths are resolved from the document root, so a nested query is its inner query.
        return matches(body.get("query"), doc_id, source, now)
    if kind == "exists":
        field = body.get("field")
        if not isinstance(field, str):
            raise bad_request(f"'exists' takes {{\"field\": <name>}}, got a field of {json_type(field)}")
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
        bounds = range_bounds(spec, time.time() if now is None else now)
        return any(v is not None and in_range(v, bounds) for v in values)
    raise bad_request(f"unsupported query clause {kind!r}; the sandbox supports {', '.join(SUPPORTED)}")


def _page_bound(request: dict[str, Any], name: str, default: int) -> int:
    """``from`` or ``size``: absent or null means the default; anything but a whole number from 0
    to MAX_RESULT_WINDOW is a 400 naming what was sent."""
    value = request.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RESULT_WINDOW:
        raise bad_request(f"'{name}' must be a whole number from 0 to {MAX_RESULT_WINDOW}, got {json_type(value)}",
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
