"""HTTP transport of the API client: URL joining, the two retry policies, the shared request
budget and the mapping of error answers to typed exceptions. No endpoint knowledge lives here.

**Retry policy.** A request is repeated only when repeating it cannot do anything twice:

- every request, idempotent or not, is retried after a connect error (connection refused,
  connect timeout: nothing reached the tenant), a 429, and a 503 that carries Retry-After
  (the tenant says it did nothing and when to come back);
- idempotent requests (``IDEMPOTENT_METHODS``, and POSTs the caller marks idempotent) are also
  retried after a 500, 502, 504, a 503 without Retry-After, a read timeout and a connection
  dropped after the request was sent.

A non-idempotent request that ends in one of the second group is **not** repeated: the tenant
may have acted on it (``drop-after`` in the sandbox: handled, then the connection closed), and
the error says so with ``outcome_unknown``; the caller decides (look the object up, adopt it, or
record an intent). ``retry_policy`` builds the urllib3 ``Retry`` for either case; urllib3 does
the work (full-jitter backoff, Retry-After honoured and capped).

**Request budget.** One budget of concurrent requests for a whole run that follows Retry-After:
see ``RequestBudget``.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from reconciler.errors import ApiError, FieldError, api_error_class

LOG = logging.getLogger("reconciler.http")

API_PREFIX = "api/service/"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Answers after which the tenant certainly did nothing: retried for every method (503 only with
# Retry-After, see JitterRetry.RETRY_AFTER_STATUS_CODES).
THROTTLE_STATUSES = frozenset({429})
# Answers retried only when repeating the request is harmless.
IDEMPOTENT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def join_url(base_url: str, path: str) -> str:
    """``urljoin(urljoin(base_url, "api/service/"), path)``, exactly as the official SDK builds URLs.

    A base URL with a path keeps that path only when it ends in "/" (urljoin replaces the last
    segment otherwise); ``ApiClient`` warns about that case.
    """
    return urljoin(urljoin(base_url, API_PREFIX), path)


def redact_headers(headers: Mapping[str, str | bytes]) -> dict[str, str | bytes]:
    return {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in headers.items()}


@dataclass(frozen=True)
class Slot:
    """One request's place in the budget: ``epoch`` is the number of decreases before it started."""

    epoch: int


class RequestBudget:
    """One budget of concurrent requests shared by every thread of a run, that follows Retry-After.

    - A 429 or 503 with Retry-After sets a shared *not before* time: no new request starts until
      the clock passes it. Requests already in flight are not held (urllib3 makes the throttled
      one wait by itself).
    - ``allowed`` halves on a 429, at most once per round: only a 429 from a request that started
      after the last decrease, outside the current Retry-After window, and after a full round of
      ``allowed`` answers since the last change counts. The 429s of one storm therefore cost one
      halving per round, not one each.
    - ``allowed`` grows by one after ``allowed`` successful releases (answered, not throttled)
      since the last change, consecutive or not.

    Between two changes a whole round of answers comes back, so each level is judged on its own
    answers. A consequence worth knowing: while throttled requests still succeed after their
    retries, every round earns its +1 before it can be halved, so sporadic 429s cost at most one
    halving at the limit (the floor is ``limit // 2``); only throttling that outlasts the retries
    drives it lower. The Retry-After pause, not the concurrency, is what paces the tenant.

    Never below 1, never above ``limit``. ``clock`` (seconds, monotonic) is injectable for tests.
    """

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(1, limit)
        self.allowed = self.limit
        self.in_flight = 0
        self.lowest = self.limit
        self.decreases = 0
        self.not_before = -math.inf  # clock time before which no new request starts
        self.clock = clock
        # The starting level counts as judged: a storm from the first request halves at once.
        self._answered = self.limit  # releases since the last change of `allowed`
        self._successes = 0  # successful releases since the last change
        self._cond = threading.Condition()
        self._local = threading.local()  # the Slot this thread holds, if any

    def wait_time(self) -> float:
        """Seconds until a new request may start: 0 now, ``math.inf`` until a slot is released."""
        with self._cond:
            return self._wait_locked()

    def _wait_locked(self) -> float:
        pause = self.not_before - self.clock()
        if pause > 0:
            return pause
        return math.inf if self.in_flight >= self.allowed else 0.0

    def acquire(self) -> Slot:
        """Take a slot, waiting for a free one and for the Retry-After pause to end."""
        with self._cond:
            while (wait := self._wait_locked()) > 0:
                self._cond.wait(None if wait == math.inf else wait)
            self.in_flight += 1
            slot = Slot(self.decreases)
            self._local.slot = slot
            return slot

    def release(self, *, success: bool = True) -> None:
        """Give the slot back; ``success``: the tenant answered without throttling."""
        with self._cond:
            self.in_flight -= 1
            self._local.slot = None
            self._answered += 1
            if success:
                self._successes += 1
            if self._successes >= self.allowed and self.allowed < self.limit:
                self._change(self.allowed + 1)
            self._cond.notify_all()

    def throttled(self, retry_after: float | None = None, *, slot: Slot | None = None) -> None:
        """The tenant answered 429 (to ``slot``, by default the one this thread holds)."""
        with self._cond:
            now = self.clock()
            slot = slot or getattr(self._local, "slot", None)
            started_after_decrease = slot is None or slot.epoch == self.decreases
            if started_after_decrease and now >= self.not_before and self._answered >= self.allowed and self.allowed > 1:
                self.decreases += 1
                self._change(max(1, self.allowed // 2))
                self.lowest = min(self.lowest, self.allowed)
            self._pause_locked(now, retry_after)

    def pause(self, retry_after: float) -> None:
        """The tenant asked to come back after ``retry_after`` seconds (a 503 with Retry-After)."""
        with self._cond:
            self._pause_locked(self.clock(), retry_after)

    def _pause_locked(self, now: float, retry_after: float | None) -> None:
        if retry_after is not None and retry_after > 0:
            self.not_before = max(self.not_before, now + retry_after)

    def _change(self, allowed: int) -> None:
        self.allowed = allowed
        self._answered = 0
        self._successes = 0


class RetryCounter:
    """Thread-safe tally of retries by reason ("429", "503", "connection", "read", …); a 429
    shrinks the shared request budget, when there is one, and a Retry-After pauses it."""

    def __init__(self, budget: RequestBudget | None = None) -> None:
        self._lock = threading.Lock()
        self.by_reason: collections.Counter[str] = collections.Counter()
        self.budget = budget

    def add(self, reason: str, *, retry_after: float | None = None) -> None:
        with self._lock:
            self.by_reason[reason] += 1
        if self.budget is None:
            return
        if reason == "429":
            self.budget.throttled(retry_after)
        elif retry_after is not None:
            self.budget.pause(retry_after)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_reason.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.by_reason)


class JitterRetry(Retry):
    """urllib3's Retry with full-jitter backoff (uniform between 0 and the exponential cap) and a
    counter of the retries it grants, which also hands the Retry-After of a 429 or 503 to the
    request budget. Which errors and statuses are retried is set by ``retry_policy``."""

    # Statuses retried for any method when they carry Retry-After (urllib3 also lists 413).
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def __init__(self, *args: Any, counter: RetryCounter | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counter = counter

    def new(self, **kw: Any) -> JitterRetry:
        kw.setdefault("counter", self.counter)
        return super().new(**kw)

    def parse_retry_after(self, retry_after: str) -> float:
        """Seconds to wait. HTTP says whole seconds or a date; a fraction ("0.5"), which some servers
        send, is taken as it is, where urllib3 would refuse the answer (InvalidHeader) and fail the
        request it was retrying."""
        try:
            seconds = float(retry_after)
        except ValueError:
            return float(super().parse_retry_after(retry_after))
        if not math.isfinite(seconds) or seconds < 0:
            return float(super().parse_retry_after(retry_after))  # refused as urllib3 refuses it
        return min(seconds, float(self.retry_after_max))  # capped as urllib3 caps whole seconds

    def sleep_for_retry(self, response: Any) -> bool:
        """Wait out the answer's Retry-After. One that reads as neither seconds nor a date ("soon",
        "-1") is ignored, and the retry backs off as without one: urllib3 would raise InvalidHeader
        and fail the request, which the client then reported as "no answer"."""
        try:
            return bool(super().sleep_for_retry(response))
        except Urllib3Error:
            return False

    def get_backoff_time(self) -> float:
        attempts = len(self.history)
        if attempts == 0 or self.backoff_factor <= 0:
            return 0.0
        return random.uniform(0, min(self.backoff_max, self.backoff_factor * (2 ** attempts)))

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> JitterRetry:
        new = super().increment(method, url, response, error, _pool, _stacktrace)  # raises when not retried
        retry_after = None
        if response is not None and response.status:
            reason = str(response.status)
            if response.status in self.RETRY_AFTER_STATUS_CODES:
                try:
                    retry_after = self.get_retry_after(response)
                except Urllib3Error:  # an unreadable Retry-After: back off as without one
                    retry_after = None
        elif error is not None and self._is_connection_error(error):
            reason = "connection"
        else:
            reason = "read"
        if self.counter is not None:
            self.counter.add(reason, retry_after=retry_after)
        if reason == "connection":
            # Otherwise silent seconds: say what is being retried (on stderr, through the CLI's
            # handler), once per attempt however many calls wait on the same tenant.
            where = f"{_pool.scheme}://{_pool.host}:{_pool.port}" if _pool is not None else "the tenant"
            _warn_once(f"cannot reach {where} ({_cause(error)}); trying again, attempt {len(new.history) + 1} "
                       f"of {CONNECT_RETRIES + 1}")
        else:
            LOG.debug("retrying %s %s after %s (%s retries left)", method, url, reason, new.total)
        return new


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(message: str) -> None:
    with _warned_lock:
        if message in _warned:
            return
        _warned.add(message)
    LOG.warning("%s", message)


def _cause(error: Exception | None) -> str:
    text = str(error or "")
    for known in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if known.lower() in text.lower():
            return known.lower()
    return "no connection"


CONNECT_RETRIES = 2


def retry_policy(*, idempotent: bool, max_retries: int, backoff_factor: float, backoff_max: float,
                 retry_after_max: int, counter: RetryCounter | None) -> JitterRetry:
    """The Retry of one adapter: the idempotent policy, or the write policy (see module docstring).

    The method plays no part (``allowed_methods=None``): the client picks the adapter by whether
    the call is idempotent, so a POST marked idempotent gets the idempotent policy.
    """
    return JitterRetry(
        total=max_retries,
        # A tenant that refuses connections is seldom back in seconds: give up sooner than on 5xx.
        connect=min(max_retries, CONNECT_RETRIES),
        # False: a read error (timeout, dropped connection after sending) is raised at once.
        read=max_retries if idempotent else False,
        status=max_retries,
        other=0,
        redirect=0,
        allowed_methods=None,
        status_forcelist=IDEMPOTENT_RETRY_STATUSES if idempotent else THROTTLE_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
        respect_retry_after_header=True,
        raise_on_status=False,
        counter=counter,
    )


def answer_may_follow_action(response: requests.Response) -> bool:
    """An error answer after which the tenant may have acted: a 5xx, except a 503 with Retry-After
    (the tenant says it did nothing). Gateways answer 502/504 while the origin goes on working."""
    if response.status_code < 500:
        return False
    return not (response.status_code == 503 and response.headers.get("Retry-After"))


_PROBE = Retry(0)


def never_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when the request certainly did not reach the tenant: a connect error (refused, timed
    out), exactly the errors urllib3's Retry treats as connection errors."""
    cause: Any = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    return isinstance(cause, Exception) and _PROBE._is_connection_error(cause)


def api_error(response: requests.Response, method: str, url: str, *, outcome_unknown: bool = False) -> ApiError:
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
               field_errors=tuple(field_errors), body=body, outcome_unknown=outcome_unknown)


def transport_message(exc: requests.exceptions.RequestException, *, idempotent: bool) -> str:
    """What went wrong when no answer came (connect errors are retried for every request, read
    errors only for idempotent ones)."""
    if never_sent(exc):
        return "could not connect to the tenant (connection refused or timed out, after retries)"
    after = " (after retries)" if idempotent else ""
    if isinstance(exc, requests.exceptions.Timeout):
        return f"the tenant did not answer in time after the request was sent{after}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"the connection was closed after the request was sent{after}"
    return f"request failed: {exc.__class__.__name__}"
