"""The sandbox's HTTP server: a threaded ``http.server`` bound to 127.0.0.1.

Serves the tenant API under ``/api/service/`` behind a bearer token, with injected latency,
faults and rate limiting, and the test-only introspection endpoints under ``/_sandbox/`` (never
faulted, same token). Counts every request by method and route template.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconciler.sandbox import apps, credentials, legacy, runs
from reconciler.sandbox.config import FAULT_KINDS, SandboxConfig
from reconciler.sandbox.faults import FaultInjector
from reconciler.sandbox.routing import HttpError, Request, Route, Router
from reconciler.sandbox.store import Store

API_PREFIX = "/api/service/"


def _build_router() -> Router:
    router = Router()
    for module in (apps, credentials, legacy):
        router.include(module.router)
    return router


ROUTER = _build_router()


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: collections.Counter[str] = collections.Counter()
            self.statuses: collections.Counter[str] = collections.Counter()
            self.faults: collections.Counter[str] = collections.Counter()
            self.total = 0

    def record(self, route: str, status: int | str, fault: str | None = None) -> None:
        with self.lock:
            self.total += 1
            self.requests[route] += 1
            self.statuses[str(status)] += 1
            if fault:
                self.faults[fault] += 1

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "total": self.total,
                "requests": dict(self.requests),
                "statuses": dict(self.statuses),
                "faults": dict(self.faults),
                "faults_total": sum(self.faults.values()),
            }


class Sandbox:
    """One sandbox tenant: state, settings, faults, statistics and (once started) an HTTP server."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.config.validate()
        self.store = Store(self.config.state_file, seed=self.config.seed, persist_interval=self.config.persist_interval)
        self.faults = FaultInjector(self.config)
        self.stats = Stats()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, port: int = 0) -> "Sandbox":
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sandbox-http", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "sandbox not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.store.close()

    def __enter__(self) -> "Sandbox":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling -------------------------------------------------------------------------

    def authorized(self, headers: Any) -> HttpError | None:
        value = headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return HttpError(401, "missing bearer token: send 'Authorization: Bearer <API key>'", code=401)
        if token.strip() != self.config.token:
            return HttpError(401, "invalid API token: it is expired, revoked or belongs to another tenant", code=401)
        return None

    def handle_api(self, route: Route, path_params: dict[str, str], req: Request) -> tuple[int, dict[str, Any]]:
        """(status, body) for an API request."""
        try:
            return 200, route.handler(self, req, **path_params)
        except HttpError as err:
            return err.status, err.body

    def handle_introspection(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "state":
            snapshot = self.store.snapshot()
            with self.store.read():
                derived = {run_id: runs.progress(self, run) for run_id, run in snapshot["runs"].items()}
            snapshot["derived"] = {"run_status": derived}
            return 200, snapshot
        if method == "GET" and path == "stats":
            return 200, self.stats.as_dict()
        if method == "GET" and path == "config":
            return 200, self.config.public()
        if method == "POST" and path == "reset":
            options = body if isinstance(body, dict) else {}
            if options.get("state", True):
                self.store.reset()
            if options.get("stats", True):
                self.stats.reset()
            return 200, {"reset": True}
        if method == "POST" and path == "config":
            return self._reconfigure(body)
        if method == "POST" and path == "failing-credentials":
            matchers = body.get("matchers") if isinstance(body, dict) else None
            if not isinstance(matchers, list) or not all(isinstance(m, dict) and m for m in matchers):
                return 400, {"code": 400, "message": "send {\"matchers\": [{\"host\": ..., \"username\": ...}, ...]}"}
            with self.store.mutate() as data:
                data["settings"]["failing_credentials"] = matchers
            return 200, {"matchers": matchers}
        if method == "POST" and path == "seed":
            items = body.get("apps") if isinstance(body, dict) else None
            if not isinstance(items, list):
                return 400, {"code": 400, "message": "send {\"apps\": [{\"name\", \"app_id\", \"inputs\"}, ...]}"}
            with self.store.mutate():
                slugs = [apps.seed_app(self, item) for item in items]
            return 200, {"slugs": slugs}
        if method == "POST" and path == "flush":
            self.store.flush()
            return 200, {"flushed": True}
        return 404, {"code": 404, "message": f"no sandbox endpoint {method} /_sandbox/{path}"}

    def _reconfigure(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"code": 400, "message": "send a JSON object of settings"}
        unknown = sorted(set(body) - set(SandboxConfig.RUNTIME_KEYS))
        if unknown:
            return 400, {"code": 400, "message": f"settings that cannot change at run time: {', '.join(unknown)}; "
                                                 f"allowed: {', '.join(SandboxConfig.RUNTIME_KEYS)}"}
        previous = {k: getattr(self.config, k) for k in body}
        for key, value in body.items():
            setattr(self.config, key, tuple(value) if key in ("fault_kinds", "fault_routes") else value)
        try:
            self.config.validate()
        except ValueError as exc:
            for key, value in previous.items():
                setattr(self.config, key, value)
            return 400, {"code": 400, "message": str(exc), "fault_kinds": list(FAULT_KINDS)}
        self.faults.reconfigure()
        return 200, self.config.public()


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"
    server_version = "reconciler-sandbox/1"
    # One buffered write per answer, no Nagle: otherwise headers and body go out in two segments
    # and every request waits out a delayed ACK (~40 ms).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request logging
        return

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True

    def _handle(self) -> None:
        sandbox = self.sandbox
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = ValueError
        method = self.command

        if url.path.startswith("/_sandbox/"):
            denied = sandbox.authorized(self.headers)
            if denied is not None:
                self._send(denied.status, denied.body)
                return
            if body is ValueError:
                self._send(400, {"code": 400, "message": "request body is not valid JSON"})
                return
            status, answer = sandbox.handle_introspection(method, url.path[len("/_sandbox/"):].strip("/"), body)
            self._send(status, answer)
            return

        if not url.path.startswith(API_PREFIX):
            sandbox.stats.record(f"{method} <outside /api/service/>", 404)
            self._send(404, {"code": 404, "message": f"no API at {url.path}; the tenant API lives under {API_PREFIX}"})
            return
        path = url.path[len(API_PREFIX):]
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        req = Request(method=method, path=path, params=params, body=body, headers=self.headers)

        try:
            route: Route | None
            route, path_params = ROUTER.match(method, path)
            template, unmatched = route.template, None
        except HttpError as err:
            route, path_params, template, unmatched = None, {}, "<unmatched>", err
        key = f"{method} {template}"

        delay = sandbox.faults.delay()
        if delay:
            time.sleep(delay)
        wait = sandbox.faults.throttle()
        if wait is not None:
            sandbox.stats.record(key, 429, "rate-limit")
            self._send(429, {"code": 429, "message": "rate limit exceeded; retry after the Retry-After delay"},
                       {"Retry-After": str(max(1, int(wait + 0.999)))})
            return
        fault = sandbox.faults.pick(key)
        if fault is not None and fault != "drop-after":
            sandbox.stats.record(key, fault, fault)
            if fault == "drop":
                self._drop()
                return
            status = int(fault)
            headers = {"Retry-After": str(max(0, int(sandbox.config.retry_after_s)))} if status in (429, 503) else {}
            self._send(status, {"code": status, "message": f"injected fault: HTTP {status}"}, headers)
            return

        denied = sandbox.authorized(self.headers)
        if denied is not None or unmatched is not None or body is ValueError:
            error = denied or unmatched or HttpError(400, "request body is not valid JSON", code=400)
            sandbox.stats.record(key, error.status)
            self._send(error.status, error.body)
            return
        assert route is not None
        status, answer = sandbox.handle_api(route, path_params, req)
        sandbox.stats.record(key, status, fault)
        if fault == "drop-after":
            self._drop()
            return
        self._send(status, answer)
