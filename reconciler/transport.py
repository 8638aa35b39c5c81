"""HTTP transport of the API client: URL joining, the retry policy, the shared request budget
and the mapping of error answers to typed exceptions. No endpoint knowledge lives here.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
from typing import Any, Mapping
from urllib.parse import urljoin

import requests
from urllib3.util.retry import Retry

from reconciler.errors import ApiError, FieldError, api_error_class

LOG = logging.getLogger("reconciler.http")

API_PREFIX = "api/service/"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
ALL_METHODS = frozenset({"HEAD", "GET", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"})


def join_url(base_url: str, path: str) -> str:
    """``urljoin(urljoin(base_url, "api/service/"), path)``, exactly as the official SDK builds URLs.

    A base URL with a path keeps that path only when it ends in "/" (urljoin replaces the last
    segment otherwise); ``ApiClient`` warns about that case.
    """
    return urljoin(urljoin(base_url, API_PREFIX), path)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in headers.items()}


class RequestBudget:
    """One budget of concurrent requests shared by every thread of a run.

    It starts at ``limit`` requests in flight, halves when the tenant throttles (429) and grows
    back by one after a run of unthrottled answers: additive increase, multiplicative decrease.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.allowed = self.limit
        self.in_flight = 0
        self.lowest = self.limit
        self._calm = 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while self.in_flight >= self.allowed:
                self._cond.wait()
            self.in_flight += 1

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._calm += 1
            if self._calm >= 4 * self.allowed and self.allowed < self.limit:
                self.allowed += 1
                self._calm = 0
            self._cond.notify_all()

    def throttled(self) -> None:
        with self._cond:
            self.allowed = max(1, self.allowed // 2)
            self.lowest = min(self.lowest, self.allowed)
            self._calm = 0


class RetryCounter:
    """Thread-safe tally of retries by reason ("429", "503", "connection", …); a 429 also
    shrinks the shared request budget, when there is one."""

    def __init__(self, budget: RequestBudget | None = None) -> None:
        self._lock = threading.Lock()
        self.by_reason: collections.Counter[str] = collections.Counter()
        self.budget = budget

    def add(self, reason: str) -> None:
        with self._lock:
            self.by_reason[reason] += 1
        if reason == "429" and self.budget is not None:
            self.budget.throttled()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_reason.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.by_reason)


class JitterRetry(Retry):
    """urllib3's Retry with full-jitter backoff (uniform between 0 and the exponential cap) and a
    counter of the retries it grants. Everything else (which errors, Retry-After) is urllib3's."""

    def __init__(self, *args: Any, counter: RetryCounter | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counter = counter

    def new(self, **kw: Any) -> "JitterRetry":
        kw.setdefault("counter", self.counter)
        return super().new(**kw)  # type: ignore[return-value]

    def get_backoff_time(self) -> float:
        attempts = len(self.history)
        if attempts == 0 or self.backoff_factor <= 0:
            return 0.0
        return random.uniform(0, min(self.backoff_max, self.backoff_factor * (2 ** attempts)))

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> "JitterRetry":
        new = super().increment(method, url, response, error, _pool, _stacktrace)  # raises when exhausted
        reason = str(response.status) if response is not None and response.status else "connection"
        if self.counter is not None:
            self.counter.add(reason)
        LOG.debug("retrying %s %s after %s (%d retries left)", method, url, reason, new.total)
        return new  # type: ignore[return-value]


def api_error(response: requests.Response, method: str, url: str) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = None
    code = None
    field_errors: list[FieldError] = []
    if isinstance(body, dict):
        message = body.get("errorMessage") or body.get("message")
        code = body.get("errorCode") or body.get("code") or body.get("status")
        for cause in body.get("causes") or []:
            if isinstance(cause, dict):
                field_errors.append(FieldError(location=str(cause.get("location") or ""),
                                               message=str(cause.get("errorMessage") or ""),
                                               kind=str(cause.get("errorType") or "")))
    if not message:
        message = (response.text or response.reason or "").strip()[:500] or f"HTTP {response.status_code}"
    cls = api_error_class(response.status_code)
    return cls(str(message), status=response.status_code, method=method, url=url, code=code,
               field_errors=tuple(field_errors), body=body)


def transport_message(exc: requests.exceptions.RequestException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "the tenant did not answer in time (after retries)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "could not reach the tenant (connection refused, reset or dropped, after retries)"
    return f"request failed: {exc.__class__.__name__}"
