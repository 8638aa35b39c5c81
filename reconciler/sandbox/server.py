"""The sandbox's HTTP server: a threaded ``http.server`` bound to 127.0.0.1.

Serves the tenant API under ``/api/service/`` behind a bearer token, with injected latency,
faults and rate limiting, and the test-only introspection endpoints under ``/_sandbox/`` (never
faulted, same token). Counts every request by method and route template.

It listens while users work, so a request is checked in an order that spends nothing on a client
that has not shown the token: path, then token (compared in constant time), then the body's
framing and size, and only then is the body read. Latency, the rate limit and injected faults
apply to authenticated API requests only. A request must arrive within ``read_timeout_s``.
Anything malformed is answered 4xx with a message, never a dropped connection or a traceback.
"""

from __future__ import annotations

import collections
import hmac
import io
import json
import math
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from reconciler.sandbox import apps, assets, credentials, directory, legacy, runs
from reconciler.sandbox.config import FAULT_KINDS, SandboxConfig
from reconciler.sandbox.faults import FaultInjector
from reconciler.sandbox.routing import HttpError, Request, Route, Router, bad_request, parse_json
from reconciler.sandbox.store import Store

API_PREFIX = "/api/service/"


def _build_router() -> Router:
    router = Router(API_PREFIX)
    for module in (apps, credentials, directory, legacy):
        router.include(module.router)
    return router


ROUTER = _build_router()
# Each API the sandbox serves, by path prefix: the tenant's services (Heracles) and asset search (Atlas).
ROUTERS = {API_PREFIX: ROUTER, assets.router.prefix: assets.router}


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
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
            self.changed.notify_all()

    def wait(self, total: int = 0, route: str = "", timeout: float = 0.0) -> bool:
        """Block until ``total`` requests were handled (and one to ``route``, when given), or the
        timeout passes: tests wait on the tenant's state instead of sleeping on real time."""
        with self.changed:
            return self.changed.wait_for(lambda: self.total >= total and (not route or self.requests[route] > 0),
                                         timeout=max(0.0, min(timeout, 30.0)))

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

    def __init__(self, config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        """``clock`` (epoch seconds) drives run progress and timestamps; a test can pass a
        ``store.ManualClock`` (or set ``sandbox.store.clock``) to move runs along without waiting."""
        self.config = config or SandboxConfig()
        self.config.validate()
        self.store = Store(self.config.state_file, seed=self.config.seed, persist_interval=self.config.persist_interval,
                           clock=clock)
        self.faults = FaultInjector(self.config)
        self.stats = Stats()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, port: int = 0) -> Sandbox:
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self, "timeout": self.config.read_timeout_s})
        server = _Server(("127.0.0.1", port), handler)
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

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settle_runs(self) -> None:
        """Freeze the outcome of every run that has ended, before a change to a credential (the
        caller holds the mutate lock; see ``runs.settle``)."""
        runs.settle(self)

    # -- request handling -------------------------------------------------------------------------

    def authorized(self, headers: Any) -> HttpError | None:
        value = headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return HttpError(401, "missing bearer token: send 'Authorization: Bearer <API key>'", code=401)
        # Constant time: how long a refusal takes says nothing about how much of the token was right.
        if not hmac.compare_digest(token.strip().encode("utf-8", "surrogatepass"),
                                   self.config.token.encode("utf-8", "surrogatepass")):
            return HttpError(401, "invalid API token: it is expired, revoked or belongs to another tenant", code=401)
        return None

    def handle_api(self, route: Route, path_params: dict[str, str], req: Request) -> tuple[int, dict[str, Any]]:
        """(status, body) for an API request."""
        status, body = _answer(lambda: (200, route.handler(self, req, **path_params)))
        if status >= 400 and self.config.echo_request_errors and isinstance(body, dict):
            # Some servers quote the request in their errors: what a client must never print as is.
            body = {**body, "message": f"{body.get('message')} (request was: {json.dumps(req.body)})"}
        return status, body

    def handle_introspection(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "state":
            snapshot = self.store.snapshot()
            with self.store.read():
                derived = {run_id: runs.progress(self, run) for run_id, run in snapshot["runs"].items()}
            snapshot["derived"] = {"run_status": derived}
            return 200, snapshot
        if method == "GET" and path == "stats":
            return 200, self.stats.as_dict()
        if method == "POST" and path == "wait":
            options = body if isinstance(body, dict) else {}
            try:
                reached = self.stats.wait(int(options.get("total", 0)), str(options.get("route") or ""),
                                          float(options.get("timeout", 10)))
            except (TypeError, ValueError):
                return 400, {"code": 400, "message": "send {total: int, route: str, timeout: seconds (at most 30)}"}
            return 200, {"reached": reached, **self.stats.as_dict()}
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
                runs.settle(self)  # runs that ended before the change keep their outcome
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
        for key, value in body.items():  # each setting must have the type of its default
            default = getattr(SandboxConfig, key)
            if isinstance(default, tuple):
                wanted, fits = "a list of strings", isinstance(value, list) and all(isinstance(v, str) for v in value)
            elif isinstance(default, bool):
                wanted, fits = "true or false", isinstance(value, bool)
            else:
                wanted = "a number"
                fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not fits:
                return 400, {"code": 400, "message": f"setting {key!r} must be {wanted}, got {json.dumps(value)[:60]}"}
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


def _answer(produce: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
    """(status, body) from a request handler. An HttpError is its answer; JSON nested too deeply for
    the code that walks it is a 400; any other exception is a sandbox bug, answered as a 500 that
    says so rather than a dropped connection."""
    try:
        return produce()
    except HttpError as err:
        return err.status, err.body
    except RecursionError:
        return 400, {"code": 400, "message": "the request nests too deeply for the sandbox to handle"}
    except Exception as exc:  # noqa: BLE001 - the boundary between one request and the server
        return 500, {"code": 500, "message": f"sandbox internal error (a bug in the sandbox): {type(exc).__name__}: {exc}"}


# After answering a request whose body was left unread, the connection closes; until then, for at
# most this long and this many bytes, whatever the client still sends is discarded (see _linger).
LINGER_S = 2.0
LINGER_BYTES = 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up or stalls is its own business; anything else is a bug and printed.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _DeadlineReader(io.RawIOBase):
    """A connection's socket as a raw stream whose reads fail with TimeoutError once ``deadline``
    (``time.monotonic``) has passed. A per-read socket timeout alone would let a client that
    trickles a byte at a time hold a thread for ever."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive within the read timeout")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    timeout: ClassVar[float]  # the sandbox's read_timeout_s, set on the per-sandbox subclass
    protocol_version = "HTTP/1.1"
    server_version = "reconciler-sandbox/1"
    # One buffered write per answer, no Nagle: otherwise headers and body go out in two segments
    # and every request waits out a delayed ACK (~40 ms).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain socket file: replaced by one that keeps the deadline
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        self._expect_continue = False

    def handle_one_request(self) -> None:
        # The whole request, from the wait for its first byte to the last byte of its body, must
        # arrive within the read timeout; so must the next one on a kept-alive connection.
        self._reader.deadline = time.monotonic() + self.timeout
        self._expect_continue = False
        super().handle_one_request()

    def handle_expect_100(self) -> bool:
        # "100 Continue" invites the body, so it is sent only once the token and the announced size
        # have been accepted (in _handle), not as soon as the headers are in.
        self._expect_continue = True
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request logging
        return

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, *, close: bool = False) -> None:
        """Answer; ``close`` when the request's body (or part of it) was left unread: the stream is
        then out of step, so the connection cannot serve another request."""
        payload = json.dumps(body).encode()
        self.connection.settimeout(self.timeout)  # a write timeout; the read deadline no longer applies
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        if close:
            self._linger()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a request line or headers too long, bad syntax, a method the
        sandbox does not serve) as JSON like every other answer, on a connection then closed."""
        short, long = self.responses.get(code, ("Error", ""))
        body = {"code": code, "message": message or long or short}
        if self.command == "HEAD" or code < 200 or code in (204, 304):
            self.close_connection = True
            self.send_response(code, message)
            self.send_header("Connection", "close")
            self.end_headers()
            return
        self._send(code, body, close=True)

    def _linger(self) -> None:
        """Stop sending, then discard what the client still sends for a moment before closing.
        Closing a socket with unread input makes the kernel answer with a reset, which can destroy
        the answer before the client has read it (the "lingering close" of nginx and Apache)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + min(LINGER_S, self.timeout)
            budget = LINGER_BYTES
            while budget > 0 and (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                chunk = self.connection.recv(min(budget, 64 * 1024))
                if not chunk:
                    break
                budget -= len(chunk)
        except OSError:  # timed out, or the client is gone: either way, done
            pass

    def _drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True

    def _framing(self) -> tuple[int, HttpError | None]:
        """The announced body length, and the error to answer instead of reading the body: a
        chunked body (411), a length that is not one plain number (400), or too big a body (413)."""
        if self.headers.get("Transfer-Encoding", "identity").strip().lower() != "identity":
            return 0, HttpError(411, "send the request body with a Content-Length header; "
                                     "the sandbox does not read chunked bodies", code=411)
        values = sorted({v.strip() for v in self.headers.get_all("Content-Length") or []})
        if not values:
            return 0, None
        if len(values) > 1:
            return 0, bad_request(f"conflicting Content-Length headers: {', '.join(v[:20] for v in values)}")
        value = values[0]
        if not (value.isascii() and value.isdigit()):
            return 0, bad_request(f"Content-Length must be the size of the body in bytes, a whole number; got {value[:40]!r}")
        limit = self.sandbox.config.max_body_bytes
        length = int(value) if len(value) <= 18 else sys.maxsize
        if length > limit:
            return length, HttpError(413, f"request body of {value if len(value) <= 18 else 'over 10^18'} bytes is over "
                                          f"the sandbox's limit of {limit} bytes", code=413)
        return length, None

    def _read_body(self, length: int) -> tuple[Any, HttpError | None] | str:
        """(parsed body, error to answer for it); or, when the client stalled (answered 408) or hung
        up mid-body, what the statistics count instead of a status."""
        if self._expect_continue and length:
            self.send_response_only(100)
            self.end_headers()
            self.wfile.flush()
        try:
            raw = self.rfile.read(length) if length else b""
        except TimeoutError:
            self._send(408, {"code": 408, "message": f"the request did not arrive within {self.timeout:g} s"}, close=True)
            return "408"
        if len(raw) < length:
            self.close_connection = True
            return "client-hung-up"
        if not raw.strip():
            return None, None
        try:
            return parse_json(raw), None
        except ValueError as exc:
            return None, bad_request(f"request body is not valid JSON: {exc}")

    def _handle(self) -> None:
        sandbox = self.sandbox
        url = urlsplit(self.path)
        method = self.command
        length, framing = self._framing()
        unread = framing is not None or length > 0  # the body, still in the stream if we answer now

        if url.path.startswith("/_sandbox/"):
            denied = sandbox.authorized(self.headers)
            error = denied or framing
            if error is not None:
                self._send(error.status, error.body, close=unread)
                return
            read = self._read_body(length)
            if isinstance(read, str):
                return
            body, bad_body = read
            if bad_body is not None:
                self._send(bad_body.status, bad_body.body)
                return
            status, answer = _answer(
                lambda: sandbox.handle_introspection(method, url.path[len("/_sandbox/"):].strip("/"), body))
            self._send(status, answer)
            return

        router = next((r for prefix, r in ROUTERS.items() if url.path.startswith(prefix)), None)
        if router is None:
            sandbox.stats.record(f"{method} <outside the API>", 404)
            self._send(404, {"code": 404, "message": f"no API at {url.path}; the tenant API lives under "
                                                    f"{' and '.join(ROUTERS)}"}, close=unread)
            return
        path = url.path[len(router.prefix):]
        try:
            route: Route | None
            route, path_params = router.match(method, path)
            template, unmatched = route.template, None
        except HttpError as err:
            route, path_params, template, unmatched = None, {}, "<unmatched>", err
        key = router.key(method, template)

        # Who is asking comes first: a client without the token gets its 401 before its body is read,
        # and never costs a rate-limit token, a fault or injected latency.
        denied = sandbox.authorized(self.headers)
        error = denied or framing
        if error is not None:
            sandbox.stats.record(key, error.status)
            self._send(error.status, error.body, close=unread)
            return
        read = self._read_body(length)
        if isinstance(read, str):
            sandbox.stats.record(key, read)
            return
        body, bad_body = read

        delay = sandbox.faults.delay()
        if delay:
            time.sleep(delay)
        wait = sandbox.faults.throttle()
        if wait is not None:
            sandbox.stats.record(key, 429, "rate-limit")
            self._send(429, {"code": 429, "message": "rate limit exceeded; retry after the Retry-After delay"},
                       {"Retry-After": str(max(1, math.ceil(wait)))})
            return
        fault = sandbox.faults.pick(key)
        if fault is not None and fault != "drop-after":
            sandbox.stats.record(key, fault, fault)
            if fault == "drop":
                self._drop()
                return
            status = int(fault)
            # Retry-After is whole seconds: a fraction rounds up (0.5 s as "0" would say "at once").
            headers = {"Retry-After": str(math.ceil(max(0.0, sandbox.config.retry_after_s)))} if status in (429, 503) else {}
            message = f"injected fault: HTTP {status}"
            if sandbox.config.echo_request_errors and bad_body is None:
                message += f" (request was: {json.dumps(body)})"
            self._send(status, {"code": status, "message": message}, headers)
            return

        error = unmatched or bad_body
        if error is not None:
            sandbox.stats.record(key, error.status)
            self._send(error.status, error.body)
            return
        assert route is not None
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        req = Request(method=method, path=path, params=params, body=body, headers=self.headers)
        status, answer = sandbox.handle_api(route, path_params, req)
        sandbox.stats.record(key, status, fault)
        if fault == "drop-after":
            self._drop()
            return
        self._send(status, answer)
