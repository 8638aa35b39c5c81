"""The sandbox listens while users work: bad clients and bad input get a 4xx that says what is
wrong, never a dropped connection, a traceback or a pinned thread.

Raw sockets where the point is what goes over the wire (framing, stalls, when the body is read);
``requests`` elsewhere. Every wait is bounded by a socket timeout or a deadline, and waits on
something happening (an answer, the connection closing), never on time passing.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.sandbox.routing import MAX_JSON_DEPTH
from tests.conftest import TOKEN, Introspection

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ANSWER_WITHIN = 5.0  # seconds; every answer below comes back from loopback far sooner


def connect(sandbox: Sandbox) -> socket.socket:
    return socket.create_connection(("127.0.0.1", sandbox.port), timeout=ANSWER_WITHIN)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """One HTTP answer off the socket: (status, lower-cased headers, parsed JSON body)."""
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        raw = response.read()
    finally:
        response.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None


def wait_closed(sock: socket.socket, within: float = 10.0) -> bytes:
    """What the server still sends until it closes the connection; fails if it is still open after ``within`` s."""
    deadline = time.monotonic() + within
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the sandbox kept the connection open for {within:.0f} s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            continue
        if not chunk:
            return received
        received += chunk


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except ConnectionError:
        return False
    finally:
        sock.settimeout(ANSWER_WITHIN)


# -- 1. the token first, in constant time; nothing spent on a client without it ---------------------


def test_wrong_tokens_are_401_and_cost_no_rate_limit_or_fault(sandbox_factory: Callable[..., Sandbox]) -> None:
    # Two rate-limit tokens that never refill during the test, and a fault on every request that passes it.
    sandbox = sandbox_factory(rate_limit=0.001, rate_burst=2, fault_rate=1.0, fault_kinds=("500",))
    introspect = Introspection(sandbox.base_url, TOKEN)
    url = f"{sandbox.base_url}api/service/v1/app"
    near_miss = TOKEN[:-1] + chr(ord(TOKEN[-1]) ^ 1)  # same length, last character differs
    assert len(near_miss) == len(TOKEN) and near_miss != TOKEN
    refused = [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {near_miss}"},
               {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer t\u00f6ken"}]
    for headers in refused * 4:
        answer = requests.get(url, headers=headers, timeout=ANSWER_WITHIN)
        assert answer.status_code == 401 and answer.json()["code"] == 401
        # With a body, too: answered without reading it.
        answer = requests.post(url, headers=headers, json={"app_id": "postgres-crawler"}, timeout=ANSWER_WITHIN)
        assert answer.status_code == 401

    stats = introspect.stats()
    assert stats["faults_total"] == 0 and stats["statuses"] == {"401": 40}
    # Both rate-limit tokens are still there: two requests get through to their (injected) fault...
    assert [requests.get(url, headers=AUTH, timeout=ANSWER_WITHIN).status_code for _ in range(3)] == [500, 500, 429]
    assert introspect.stats()["faults"] == {"500": 2, "rate-limit": 1}


def test_latency_applies_to_authenticated_requests(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(latency_ms=300)
    started = time.monotonic()
    assert requests.get(f"{sandbox.base_url}api/service/v1/apps/postgres-crawler", headers=AUTH,
                        timeout=ANSWER_WITHIN).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_the_token_is_checked_before_the_body_is_read(sandbox: Sandbox) -> None:
    # A huge body is announced and never sent: had the sandbox tried to read it, it would wait out
    # its 30 s read timeout, and the answer would not come back within ANSWER_WITHIN.
    with connect(sandbox) as sock:
        sock.sendall(head("POST", "/api/service/v1/app", {"Authorization": "Bearer wrong",
                                                          "Content-Length": "5000000", "Content-Type": "application/json"}))
        sock.sendall(b'{"app')
        status, headers, body = read_answer(sock)
        assert status == 401 and headers["connection"] == "close" and "invalid API token" in body["message"]
        wait_closed(sock)
    # No "100 Continue" invites the body of a client without the token; the same client with it is invited.
    for token, expected in (("wrong", 401), (TOKEN, 200)):
        with connect(sandbox) as sock:
            payload = json.dumps({"matchers": [{"host": "h"}]}).encode()
            sock.sendall(head("POST", "/_sandbox/failing-credentials", {
                "Authorization": f"Bearer {token}", "Content-Length": str(len(payload)), "Expect": "100-continue"}))
            if expected == 200:
                interim = b""
                while not interim.endswith(b"\r\n\r\n"):
                    interim += sock.recv(1)
                assert interim.startswith(b"HTTP/1.1 100")
                sock.sendall(payload)
            status, _, body = read_answer(sock)
            assert status == expected


# -- 1. request bodies over the limit -----------------------------------------------------------------


def test_a_body_over_the_limit_is_413_unread(sandbox_factory: Callable[..., Sandbox]) -> None:
    assert SandboxConfig().max_body_bytes == 10 * 1024 * 1024
    sandbox = sandbox_factory(max_body_bytes=1024)
    for announced in ("1025", "10000000000", "9" * 40):
        with connect(sandbox) as sock:  # only a few bytes are sent: the answer cannot wait for the rest
            sock.sendall(head("POST", "/api/service/v1/app", {**AUTH, "Content-Length": announced}) + b'{"app_id": ')
            status, headers, body = read_answer(sock)
            assert status == 413 and body["code"] == 413 and "limit of 1024 bytes" in body["message"]
            assert headers["connection"] == "close"
            wait_closed(sock)
    with connect(sandbox) as sock:  # the same with Expect: no invitation to send it
        sock.sendall(head("POST", "/_sandbox/seed", {**AUTH, "Content-Length": "2048", "Expect": "100-continue"}))
        assert read_answer(sock)[0] == 413
    # At the limit, a body is read as usual.
    body = json.dumps({"matchers": [{"host": "h"}]}).ljust(1024).encode()
    answer = requests.post(f"{sandbox.base_url}_sandbox/failing-credentials", data=body, headers=AUTH, timeout=ANSWER_WITHIN)
    assert answer.status_code == 200
    assert Introspection(sandbox.base_url, TOKEN).stats()["statuses"] == {"413": 3}


# -- 2. framing: Content-Length must be one plain number ---------------------------------------------------


@pytest.mark.parametrize("framing, status", [
    ({"Content-Length": "-1"}, 400),
    ({"Content-Length": "abc"}, 400),
    ({"Content-Length": "1.5"}, 400),
    ({"Content-Length": "+5"}, 400),
    ({"Content-Length": "\u00b2"}, 400),
    ({"Transfer-Encoding": "chunked"}, 411),
])
def test_a_body_that_cannot_be_framed_is_refused(sandbox: Sandbox, framing: dict[str, str], status: int) -> None:
    with connect(sandbox) as sock:
        sock.sendall(head("POST", "/api/service/v1/app", {**AUTH, **framing}) + b"5\r\n{}")
        answer, headers, body = read_answer(sock)
        assert answer == status and body["code"] == status and headers["connection"] == "close"
        assert "Content-Length" in body["message"]
        wait_closed(sock)
    with connect(sandbox) as sock:  # two Content-Length headers that disagree
        sock.sendall(b"POST /api/service/v1/app HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + TOKEN.encode()
                     + b"\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
        assert read_answer(sock)[0] == 400
    assert requests.get(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN).status_code == 200


# -- 2. slow clients -------------------------------------------------------------------------------------


def test_stalled_clients_do_not_block_other_requests(sandbox: Sandbox) -> None:
    stalled = []
    for n in range(8):
        sock = connect(sandbox)
        if n % 2:  # half the headers
            sock.sendall(b"POST /api/service/v1/app HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthor")
        else:  # the headers and half the body
            sock.sendall(head("POST", "/api/service/v1/app", {**AUTH, "Content-Length": "100"}) + b'{"app_id":')
        stalled.append(sock)
    try:
        answer = requests.get(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN)
        assert answer.status_code == 200
        assert all(still_open(sock) for sock in stalled)  # the read timeout (30 s) has not struck
    finally:
        for sock in stalled:
            sock.close()


def test_a_stalled_request_is_closed_after_the_read_timeout(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(read_timeout_s=0.5)
    # Half the headers, then nothing: closed, unanswered (there is no request to answer).
    started = time.monotonic()
    with connect(sandbox) as sock:
        sock.sendall(b"GET /api/service/v1/app HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert wait_closed(sock) == b""
    assert time.monotonic() - started >= 0.5
    # The headers and half the body: 408, then closed.
    started = time.monotonic()
    with connect(sandbox) as sock:
        sock.sendall(head("POST", "/api/service/v1/app", {**AUTH, "Content-Length": "100"}) + b'{"app_id":')
        status, headers, body = read_answer(sock)
        assert status == 408 and "0.5 s" in body["message"] and headers["connection"] == "close"
        wait_closed(sock)
    assert time.monotonic() - started >= 0.5
    # A client trickling its headers a byte at a time is closed too: the timeout covers the whole request.
    request = head("GET", "/api/service/v1/app", {**AUTH, "X-Padding": "p" * 400})
    with connect(sandbox) as sock:
        closed = False
        deadline = time.monotonic() + 10
        for byte in request:
            assert time.monotonic() < deadline, "a trickling client held its connection for 10 s"
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.05)
            try:
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
                break
        assert closed, "the whole request went through; the trickle was not slow enough to test anything"
    # The sandbox serves on.
    assert requests.get(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN).status_code == 200


def test_a_kept_alive_connection_serves_many_requests(sandbox: Sandbox) -> None:
    with requests.Session() as session:
        for _ in range(5):
            assert session.get(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN).ok
        # A refusal of a request without a body keeps the connection, too.
        assert session.get(f"{sandbox.base_url}api/service/v1/app", timeout=ANSWER_WITHIN).status_code == 401
        assert session.get(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN).ok


# -- 3. deep nesting and bad search pages -----------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("body", ["[" * 200_000, nested(200_000), nested(MAX_JSON_DEPTH + 1),
                                  '{"a":' * 5000 + "1" + "}" * 5000])
def test_deeply_nested_json_is_400(sandbox: Sandbox, body: str) -> None:
    for path in ("api/service/v1/app", "api/service/workflows/indexsearch", "_sandbox/seed"):
        answer = requests.post(f"{sandbox.base_url}{path}", data=body, headers={**AUTH, "Content-Type": "application/json"},
                               timeout=ANSWER_WITHIN)
        assert answer.status_code == 400, path
        assert answer.json()["code"] == 400 and "JSON" in answer.json()["message"], path
    assert requests.get(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN).ok


def test_deeply_nested_json_inside_strings_is_400(sandbox: Sandbox) -> None:
    deep = "[" * 100_000
    answer = requests.post(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN, json={
        "app_id": "postgres-crawler", "name": "pg", "run": False, "inputs": {"connection": deep, "credential_guid": ""}})
    assert answer.status_code == 400
    assert [c["location"] for c in answer.json()["causes"]] == ["inputs.connection"]
    assert "nest deeper than" in answer.json()["causes"][0]["errorMessage"]
    # A query parameter (percent-encoded to 3 bytes a bracket) within the request line's 64 KiB.
    answer = requests.get(f"{sandbox.base_url}api/service/credentials", params={"filter": deep[:20_000]}, headers=AUTH,
                          timeout=ANSWER_WITHIN)
    assert answer.status_code == 400 and "'filter'" in answer.json()["message"]


def test_the_http_layers_own_refusals_are_json(sandbox: Sandbox) -> None:
    answer = requests.get(f"{sandbox.base_url}api/service/credentials", params={"filter": "[" * 30_000}, headers=AUTH,
                          timeout=ANSWER_WITHIN)
    assert answer.status_code == 414 and answer.json()["code"] == 414 and "too long" in answer.json()["message"]
    answer = requests.options(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN)
    assert answer.status_code == 501 and answer.json() == {"code": 501, "message": "Unsupported method ('OPTIONS')"}
    assert requests.get(f"{sandbox.base_url}api/service/v1/app", headers=AUTH, timeout=ANSWER_WITHIN).ok


def test_nesting_within_the_limit_is_served(sandbox: Sandbox) -> None:
    query: dict[str, Any] = {"match_all": {}}
    for _ in range(30):  # 3 levels each: 90 + the envelope, within MAX_JSON_DEPTH
        query = {"bool": {"must": [query]}}
    answer = requests.post(f"{sandbox.base_url}api/service/workflows/indexsearch", json={"query": query}, headers=AUTH,
                           timeout=ANSWER_WITHIN)
    assert answer.status_code == 200 and answer.json()["hits"]["total"]["value"] >= 1


@pytest.mark.parametrize("field", ["from", "size"])
@pytest.mark.parametrize("value, shown", [
    ('"10"', "a string ('10')"),
    ("-1", "a number (-1)"),
    ("1.5", "a number with a fraction (1.5)"),
    ("1e400", "a number with a fraction (inf)"),
    ("NaN", "a number with a fraction (nan)"),
    ("100000000000000000000000000000", "a number (100000000000000000000000000000)"),
    ("10001", "a number (10001)"),
    ('{"a": 1}', "an object"),
    ("[1]", "an array"),
    ("true", "a boolean (true)"),
])
def test_bad_search_page_bounds_are_400(sandbox: Sandbox, field: str, value: str, shown: str) -> None:
    for index in ("workflows", "runs"):
        body = f'{{"query": {{"match_all": {{}}}}, "{field}": {value}}}'
        answer = requests.post(f"{sandbox.base_url}api/service/{index}/indexsearch", data=body, headers=AUTH,
                               timeout=ANSWER_WITHIN)
        assert answer.status_code == 400
        assert answer.json()["message"] == f"'{field}' must be a whole number from 0 to 10000, got {shown}"
        assert [c["location"] for c in answer.json()["causes"]] == [field]


def test_search_page_bounds_that_are_served(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}api/service/workflows/indexsearch"
    for body in ({"from": None, "size": None}, {"from": 0, "size": 10_000}, {"from": 10_000, "size": 0}, {}):
        assert requests.post(url, json=body, headers=AUTH, timeout=ANSWER_WITHIN).status_code == 200, body
    answer = requests.post(url, json={"from": 9_000, "size": 1_001}, headers=AUTH, timeout=ANSWER_WITHIN)
    assert answer.status_code == 400 and "result window is too large" in answer.json()["message"]


@pytest.mark.parametrize("query, message", [
    ({"bool": []}, "'bool' takes an object, got an array"),
    ({"nested": "x"}, "'nested' takes an object, got a string ('x')"),
    ({"exists": {"field": 5}}, "'exists' takes"),
    ({"bool": {"should": [{"match_all": {}}], "minimum_should_match": "75%"}}, "'minimum_should_match'"),
])
def test_malformed_search_clauses_are_400(sandbox: Sandbox, query: dict[str, Any], message: str) -> None:
    answer = requests.post(f"{sandbox.base_url}api/service/workflows/indexsearch", json={"query": query}, headers=AUTH,
                           timeout=ANSWER_WITHIN)
    assert answer.status_code == 400 and message in answer.json()["message"]


def test_runtime_settings_of_the_wrong_type_are_400(introspect: Introspection, sandbox: Sandbox) -> None:
    for settings in ({"fault_rate": "0.5"}, {"fault_kinds": "500"}, {"expose_schedules": 1}, {"latency_ms": None}):
        answer = requests.post(f"{sandbox.base_url}_sandbox/config", json=settings, headers=AUTH, timeout=ANSWER_WITHIN)
        assert answer.status_code == 400 and "must be" in answer.json()["message"], settings
    config = introspect.get("config")
    assert config["fault_rate"] == 0.0 and config["fault_kinds"] == ["429", "502", "503", "504", "drop"]


def test_names_stay_indexed_across_a_restart_a_delete_and_a_reuse(sandbox_factory: Callable[..., Sandbox],
                                                                  tmp_path: Path) -> None:
    # The name index is built from the stored state on first use: a delete as the first request
    # after a restart, then a create reusing the name, then a duplicate (409).
    from reconciler.client import ApiClient
    from tests.conftest import connection

    state = str(tmp_path / "sandbox.json")
    first = sandbox_factory(state_file=state)
    with ApiClient(first.base_url, TOKEN) as client:
        slug = client.create_app("postgres-crawler", "pg-named", {"connection": connection("postgres", "c"),
                                                                 "credential_guid": "", "extraction_method": "agent",
                                                                 "agent_json": {"agent": "a"}}).slug
    first.stop()
    again = sandbox_factory(state_file=state)
    inputs = {"connection": connection("postgres", "c2", epoch=1717286401), "credential_guid": "",
              "extraction_method": "agent", "agent_json": {"agent": "a"}}
    with ApiClient(again.base_url, TOKEN) as client:
        client.delete_app(slug)
        reused = client.create_app("postgres-crawler", "pg-named", inputs)
        assert reused.slug != slug and not reused.adopted
        assert client.create_app("postgres-crawler", "pg-named", inputs).slug == reused.slug  # 409: adopted
        assert [a["slug"] for a in client.list_apps(name="pg-named")] == [reused.slug]
