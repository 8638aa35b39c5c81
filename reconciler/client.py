"""The tenant API client: ``requests`` Sessions with bearer auth, timeouts and retries.

Takes a base URL and an API key; gives one method per endpoint of ATLAN_API.md (App API,
Credentials, roles, legacy workflows) plus generators over cursor and limit/offset pages. Every
non-2xx answer becomes a typed ``ApiError`` carrying the status, method, URL, the server's
message and its field-level errors.

No write is repeated blindly. Retries are urllib3's ``Retry`` (through requests'
``HTTPAdapter``), up to ``max_retries`` times, with full-jitter exponential backoff and
``Retry-After`` honoured (capped), under one of two policies (``transport.retry_policy``):

- every call is retried after a connect error, a 429, or a 503 with Retry-After: the tenant
  certainly did nothing;
- idempotent calls (GET, PUT, DELETE, HEAD, OPTIONS, and the POSTs below marked
  ``idempotent=True``: full replaces by id, tests, archives, cancels, searches) are also retried
  after a 500, 502, 504, a 503 without Retry-After, a read timeout or a dropped connection.

Any other POST (a create, a submit, a schedule) that fails after it may have reached the tenant
is not repeated: it raises with ``outcome_unknown`` set, and the caller finds out what happened.
requests cannot pick a Retry per request, so ``session`` carries the idempotent policy and a
second session, mirroring its settings, the write policy. The single exception is
``create_app``: it re-sends a create whose outcome is unknown, because a duplicate name answers
409 with the existing slug, which is adopted.

Request and response bodies are never logged (credential bodies carry secrets); ``--debug``
logs method, URL, status, timing and headers with Authorization redacted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from reconciler import __version__
from reconciler.errors import ApiConnectionError, ApiError, ConflictError, UsageError
from reconciler.transport import (
    IDEMPOTENT_METHODS,
    LOG,
    RequestBudget,
    RetryCounter,
    answer_may_follow_action,
    api_error,
    join_url,
    never_sent,
    redact_headers,
    retry_policy,
    transport_message,
)

APP_LIST_PAGE = 200  # the largest page the App list serves (larger requests are clamped)
CREDENTIAL_PAGE = 100
SEARCH_PAGE = 100
CREATE_APP_RESENDS = 2  # re-sends of an app create whose answer was lost (then 409 adopts it)

# Settings of ``ApiClient.session`` the write session takes over before every use, so that
# whatever is set on ``client.session`` (headers, auth, proxies, TLS) applies to every call.
_SHARED_SETTINGS = ("headers", "auth", "proxies", "hooks", "params", "stream", "verify", "cert",
                    "max_redirects", "trust_env", "cookies")


@dataclass(frozen=True)
class CreatedApp:
    """The answer to an app create: a new workflow, or (``adopted``) the existing one of that name.

    ``resends``: how often the create was sent again after its answer was lost. A workflow
    adopted after a re-send is, barring another writer racing for the name, the one this very
    call created (with no schedule or run beyond what the body asked for).
    """

    slug: str
    version: int | None
    adopted: bool = False
    run_id: str | None = None
    schedule_trigger_id: str | None = None
    resends: int = 0


def _query_value(value: Any) -> Any:
    # requests would send Python True as "True"; the API expects JSON-style booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class ApiClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: int = 120,
        pool_size: int = 32,
        parallelism: int | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"tenant base URL {base_url!r} is not an http(s) URL",
                hint="Set ATLAN_BASE_URL to the tenant's address, e.g. https://acme.atlan.com",
            )
        if parts.path not in ("", "/") and not parts.path.endswith("/"):
            LOG.warning("base URL %s has a path without a trailing slash: its last segment is dropped "
                        "(as the official SDK does); add a '/' to keep it", base_url)
        if not api_key:
            raise UsageError("no API key given", hint="Set ATLAN_API_KEY to an API token of the tenant.")
        self.base_url = base_url
        self.timeout = (connect_timeout, read_timeout)
        self.budget: RequestBudget | None = None
        self.retries = RetryCounter()
        if parallelism:
            self.share_budget(parallelism)
        self.calls = 0
        self._calls_lock = threading.Lock()
        sessions = []
        for idempotent in (True, False):
            retry = retry_policy(idempotent=idempotent, max_retries=max_retries, backoff_factor=backoff_factor,
                                 backoff_max=backoff_max, retry_after_max=retry_after_max, counter=self.retries)
            adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
            session = requests.Session()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            sessions.append(session)
        # `session` is the client's own (callers may set headers on it) and retries idempotent
        # calls; `_writes` retries only what the tenant certainly did not act on.
        session, self._writes = sessions
        session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": f"reconciler/{__version__}",
            }
        )
        session.trust_env = True
        self.session = session

    def share_budget(self, limit: int) -> None:
        """From now on every call takes a slot of one budget of ``limit`` concurrent requests,
        which waits out Retry-After, halves at most once per round of throttled answers and
        grows back by one per round of calm ones."""
        self.budget = RequestBudget(limit)
        self.retries.budget = self.budget

    def close(self) -> None:
        self.session.close()
        self._writes.close()

    def _session_for(self, idempotent: bool) -> requests.Session:
        if idempotent:
            return self.session
        for name in _SHARED_SETTINGS:
            setattr(self._writes, name, getattr(self.session, name))
        return self._writes

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------------

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
             idempotent: bool | None = None) -> Any:
        """One logical API call (retried underneath). Returns the parsed JSON answer, None if empty.

        ``idempotent``: whether sending the call twice does no more than sending it once; None
        means by method (GET, PUT, DELETE, HEAD, OPTIONS are). A call that is not idempotent
        is retried only when the tenant certainly did not act on it; when it may have, the
        ``ApiError`` raised has ``outcome_unknown`` set.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        session = self._session_for(idempotent)
        url = join_url(self.base_url, path)
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        headers = {"X-Atlan-Request-Id": str(uuid.uuid4())}
        data = json.dumps(body) if body is not None else None
        with self._calls_lock:
            self.calls += 1
        started = time.monotonic()
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("--> %s %s params=%s headers=%s body=%s", method, url, sorted(query),
                      redact_headers({**self.session.headers, **headers}), f"{len(data)} bytes" if data else "none")
        if self.budget is not None:
            self.budget.acquire()
        response: requests.Response | None = None
        try:
            response = session.request(method, url, params=query, data=data, headers=headers, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            unknown = not idempotent and not never_sent(exc)
            raise ApiConnectionError(transport_message(exc, idempotent=idempotent), status=None, method=method,
                                     url=url, outcome_unknown=unknown) from exc
        finally:
            if self.budget is not None:
                self.budget.release(success=response is not None and response.status_code != 429)
        LOG.debug("<-- %s %s %d in %.0f ms", method, url, response.status_code, (time.monotonic() - started) * 1000)
        if not 200 <= response.status_code < 300:
            raise api_error(response, method, url,
                            outcome_unknown=not idempotent and answer_may_follow_action(response))
        if not response.content or not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"the answer is not JSON: {response.text[:200]!r}", status=response.status_code,
                           method=method, url=url) from None

    def stats(self) -> dict[str, Any]:
        return {"calls": self.calls, "retries": self.retries.total, "retries_by_reason": self.retries.snapshot()}

    def iter_cursor(self, path: str, items_key: str, *, params: Mapping[str, Any] | None = None,
                    page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Items of a cursor-paginated list (``has_more`` / ``next_cursor``)."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = dict(params or {})
            if page_size:
                query["limit"] = page_size
            if cursor:
                query["cursor"] = cursor
            page = self.call("GET", path, params=query) or {}
            yield from page.get(items_key) or []
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return
            if cursor in seen:
                raise ApiError(f"the server repeated cursor {cursor!r}; stopping to avoid an endless listing",
                               status=200, method="GET", url=join_url(self.base_url, path))
            seen.add(cursor)

    def iter_offset(self, path: str, items_key: str, *, params: Mapping[str, Any] | None = None,
                    page_size: int = CREDENTIAL_PAGE) -> Iterator[dict[str, Any]]:
        """Items of a limit/offset-paginated list; stops at the first short page."""
        offset = 0
        while True:
            page = self.call("GET", path, params={**(params or {}), "limit": page_size, "offset": offset}) or {}
            records = page.get(items_key) or []
            yield from records
            if len(records) < page_size:
                return
            offset += len(records)

    # -- App API ----------------------------------------------------------------------------------

    def describe_app(self, app_id: str) -> dict[str, Any]:
        return self.call("GET", f"v1/apps/{app_id}")

    def get_input_contract(self, app_id: str, entrypoint: str | None = None) -> dict[str, Any]:
        return self.call("GET", f"v1/apps/{app_id}/inputs", params={"entrypoint": entrypoint or None})

    def create_app(self, app_id: str, name: str, inputs: dict[str, Any], *, entrypoint: str | None = None,
                   schedule: dict[str, str] | None = None, run: bool = False) -> CreatedApp:
        """Create a workflow, or adopt the existing one when the name is taken (409).

        The only write the client repeats itself: when the answer is lost after the POST may
        have reached the tenant (``outcome_unknown``), the same create is sent again, up to
        ``CREATE_APP_RESENDS`` times. That is safe because names are unique: if the lost
        attempt did create the workflow, the re-send answers 409 with its slug, which is
        adopted (``adopted=True``, ``resends`` > 0; a run or schedule the lost attempt made
        is then not reported). Each re-send counts in ``retries``. After the last re-send, an
        unknown outcome is raised.

        ``run`` is always sent: the server would submit a run when it is omitted.
        """
        body: dict[str, Any] = {"app_id": app_id, "name": name, "inputs": inputs, "run": run}
        if entrypoint:
            body["entrypoint"] = entrypoint
        if schedule is not None:
            body["schedule"] = schedule
        for attempt in range(CREATE_APP_RESENDS + 1):
            try:
                answer = self.call("POST", "v1/app", body=body)
            except ConflictError as conflict:
                return self._adopt(name, conflict, resends=attempt)
            except ApiError as lost:
                if not lost.outcome_unknown or attempt == CREATE_APP_RESENDS:
                    raise
                reason = str(lost.status) if lost.status is not None else "read"
                LOG.info("the answer to creating workflow %r was lost (%s); sending it again", name, reason)
                self.retries.add(reason)
                continue
            return CreatedApp(slug=answer["slug"], version=answer.get("version"), run_id=answer.get("run_id"),
                              schedule_trigger_id=answer.get("schedule_trigger_id"), resends=attempt)
        raise AssertionError("unreachable")

    def _adopt(self, name: str, conflict: ConflictError, *, resends: int = 0) -> CreatedApp:
        body = conflict.body if isinstance(conflict.body, dict) else {}
        if isinstance(body.get("slug"), str) and body["slug"]:
            LOG.info("workflow %r already exists; adopting slug %s", name, body["slug"])
            return CreatedApp(slug=body["slug"], version=body.get("version"), adopted=True, resends=resends)
        existing = [w for w in self.list_apps(name=name) if w.get("slug")]
        if len(existing) == 1:
            return CreatedApp(slug=existing[0]["slug"], version=existing[0].get("version"), adopted=True,
                              resends=resends)
        slugs = ", ".join(w["slug"] for w in existing) or ", ".join(body.get("slugs") or [])
        raise ConflictError(
            f"{len(existing) or 'several'} workflows are named {name!r} ({slugs}); cannot tell which one to manage",
            status=409, method=conflict.method, url=conflict.url, body=conflict.body,
            hint="Delete or rename the duplicates in Atlan, then run again.",
        ) from conflict

    def list_apps(self, *, name: str | None = None, page_size: int = APP_LIST_PAGE) -> Iterator[dict[str, Any]]:
        return self.iter_cursor("v1/app", "workflows", params={"name": name}, page_size=page_size)

    def get_app(self, slug: str) -> dict[str, Any]:
        return self.call("GET", f"v1/app/{slug}")

    def update_app(self, slug: str, inputs: dict[str, Any], *, entrypoint: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"inputs": inputs}
        if entrypoint:
            body["entrypoint"] = entrypoint
        return self.call("PUT", f"v1/app/{slug}", body=body)

    def delete_app(self, slug: str) -> dict[str, Any]:
        return self.call("DELETE", f"v1/app/{slug}")

    def submit_run(self, slug: str) -> dict[str, Any]:
        return self.call("POST", f"v1/app/{slug}/submit")

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"v1/app/runs/{run_id}")

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        return self.call("POST", f"v1/app/runs/{run_id}/cancel", idempotent=True)

    def add_schedule(self, slug: str, cron: str, timezone: str | None) -> dict[str, Any]:
        # The server rejects a null timezone; UTC is its documented default.
        return self.call("POST", f"v1/app/{slug}/schedule", body={"cron": cron, "timezone": timezone or "UTC"})

    def remove_schedule(self, slug: str, trigger_id: str) -> dict[str, Any]:
        return self.call("DELETE", f"v1/app/{slug}/schedule/{trigger_id}")

    # -- Credentials, roles ---------------------------------------------------------------------------

    def create_credential(self, credential: dict[str, Any], *, test: bool = True) -> dict[str, Any]:
        return self.call("POST", "credentials", params={"testCredential": test}, body=credential)

    def get_credential(self, guid: str) -> dict[str, Any]:
        return self.call("GET", f"credentials/{guid}")

    def list_credentials(self, filter: Mapping[str, Any] | None = None, *,  # noqa: A002 - the API's name
                         page_size: int = CREDENTIAL_PAGE) -> Iterator[dict[str, Any]]:
        params = {"filter": json.dumps(dict(filter))} if filter else None
        return self.iter_offset("credentials", "records", params=params, page_size=page_size)

    def credential_page(self, offset: int, *, page_size: int = CREDENTIAL_PAGE) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the credential list, and how many credentials the tenant counts in all
        (``filterRecord``; None when the answer has no count)."""
        page = self.call("GET", "credentials", params={"limit": page_size, "offset": offset}) or {}
        total = page.get("filterRecord")
        return list(page.get("records") or []), total if isinstance(total, int) and not isinstance(total, bool) else None

    def test_credential(self, credential: dict[str, Any]) -> dict[str, Any]:
        """The server's verdict; ``credential_test_passed`` reads it."""
        return self.call("POST", "credentials/test", body=credential, idempotent=True)

    def update_credential(self, guid: str, credential: dict[str, Any]) -> dict[str, Any]:
        """Replace the credential with this guid as a whole (so sending it twice is harmless)."""
        return self.call("POST", f"credentials/{guid}", body={**credential, "id": guid}, idempotent=True)

    def archive_credential(self, guid: str) -> Any:
        return self.call("POST", f"credentials/{guid}/archive", idempotent=True)

    def list_roles(self, filter: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:  # noqa: A002
        params = {"filter": json.dumps(dict(filter)), "count": True} if filter else {"count": True}
        return self.iter_offset("roles", "records", params=params, page_size=100)

    def whoami(self) -> dict[str, Any]:
        return self.call("GET", "whoami")

    # -- Legacy workflows (API-token identities use the `workflows/…` variant) --------------------------

    def _search(self, path: str, query: dict[str, Any], sort: list[Any] | None, page_size: int) -> Iterator[dict[str, Any]]:
        start = 0
        while True:
            body = {"from": start, "size": page_size, "track_total_hits": True, "query": query,
                    "sort": sort if sort is not None else []}
            answer = self.call("POST", path, body=body, idempotent=True) or {}  # a query: a read
            hits = (answer.get("hits") or {}).get("hits") or []
            yield from hits
            total = ((answer.get("hits") or {}).get("total") or {}).get("value")
            start += len(hits)
            if not hits or len(hits) < page_size or (isinstance(total, int) and start >= total):
                return

    def search_templates(self, query: dict[str, Any], *, page_size: int = SEARCH_PAGE) -> Iterator[dict[str, Any]]:
        sort = [{"metadata.creationTimestamp": {"order": "desc", "nested": {"path": "metadata"}}}]
        return self._search("workflows/indexsearch", query, sort, page_size)

    def find_templates(self, name: str) -> list[dict[str, Any]]:
        """Every active template with exactly this name (``_source`` documents)."""
        query = {"bool": {"filter": [{"nested": {"path": "metadata", "query": {"bool": {"must": [
            {"term": {"metadata.name.keyword": {"value": name}}}]}}}}]}}
        return [hit["_source"] for hit in self.search_templates(query)]

    def search_runs(self, query: dict[str, Any], *, page_size: int = SEARCH_PAGE) -> Iterator[dict[str, Any]]:
        return self._search("runs/indexsearch", query, [{"status.startedAt": {"order": "desc"}}], page_size)

    def update_template(self, source: dict[str, Any]) -> dict[str, Any]:
        """Replace a template with the whole document (metadata + spec), as the SDK does."""
        return self.call("POST", f"workflows/{source['metadata']['name']}", body=source, idempotent=True)

    def rerun_template(self, name: str) -> dict[str, Any]:
        body = {"namespace": "default", "resourceKind": "WorkflowTemplate", "resourceName": name}
        return self.call("POST", "workflows/submit", body=body)

    def stop_workflow_run(self, run_name: str) -> dict[str, Any]:
        return self.call("POST", f"runs/{run_name}/stop", idempotent=True)

    def archive_template(self, name: str) -> Any:
        return self.call("POST", f"workflows/{name}/archive", idempotent=True)

    def get_template_cron(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"runs/cron/{name}-cron")


def credential_test_passed(answer: Mapping[str, Any] | None) -> bool:
    """Success of ``POST credentials/test`` is exactly ``message == "successful"``."""
    return bool(answer) and answer.get("message") == "successful"  # type: ignore[union-attr]
