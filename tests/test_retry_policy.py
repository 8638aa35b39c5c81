"""The retry policy and the request budget.

Policy tests run the client against the sandbox over loopback, switch faults on at run time
(``POST /_sandbox/config``) and count what reached the tenant from ``/_sandbox/stats``: no write
is ever sent twice unless the tenant certainly did nothing. Budget tests drive a fake clock
through a discrete simulation of requests; nothing sleeps.
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3 import HTTPResponse

from reconciler.client import CREATE_APP_RESENDS, ApiClient
from reconciler.errors import ApiConnectionError, ApiError, RateLimitedError, ServerError
from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.transport import (
    RequestBudget,
    RetryCounter,
    Slot,
    answer_may_follow_action,
    retry_policy,
)
from tests.conftest import TOKEN, Introspection, connection, raw_credential

RETRIES = 2  # every policy test's client: a retried request reaches the tenant 1 + RETRIES times


def fast_client(sandbox: Sandbox, **options: Any) -> ApiClient:
    return ApiClient(sandbox.base_url, TOKEN, max_retries=RETRIES, backoff_factor=0.001, **options)


def faults(observer: Introspection, kind: str | None, rate: float = 1.0) -> None:
    """Switch injected faults on (one kind, at ``rate``) or off, and start counting afresh."""
    observer.post("config", {"fault_rate": rate if kind else 0.0, "fault_kinds": [kind] if kind else ["429"]})
    observer.post("reset", {"state": False, "stats": True})


def app_inputs(name: str) -> dict[str, Any]:
    return {"connection": connection("postgres", name), "credential_guid": ""}


# -- the policy, one fault kind at a time ---------------------------------------------------------------

# kind: (error raised, requests that reach the tenant for a GET, and for a non-idempotent POST,
#        whether that POST's outcome is unknown). The sandbox's 503 always carries Retry-After.
POLICY = {
    "429": (RateLimitedError, 1 + RETRIES, 1 + RETRIES, False),
    "500": (ServerError, 1 + RETRIES, 1, True),
    "502": (ServerError, 1 + RETRIES, 1, True),
    "503": (ServerError, 1 + RETRIES, 1 + RETRIES, False),
    "504": (ServerError, 1 + RETRIES, 1, True),
    "drop": (ApiConnectionError, 1 + RETRIES, 1, True),
    "drop-after": (ApiConnectionError, 1 + RETRIES, 1, True),
}
REASON = {"drop": "read", "drop-after": "read"}  # the retry counter's name for each kind


@pytest.mark.parametrize("kind", sorted(POLICY))
def test_a_get_is_retried_after_every_fault(sandbox_factory: Callable[..., Sandbox], kind: str) -> None:
    sandbox = sandbox_factory(retry_after_s=0)
    observer = Introspection(sandbox.base_url, TOKEN)
    error, reached, _, _ = POLICY[kind]
    with fast_client(sandbox) as client:
        faults(observer, kind)
        with pytest.raises(error) as raised:
            client.describe_app("postgres-crawler")
        assert observer.requests_to("GET v1/apps/{app_id}") == reached
        assert client.retries.snapshot() == {REASON.get(kind, kind): RETRIES}
    assert raised.value.outcome_unknown is False  # a read can always be asked again


@pytest.mark.parametrize("kind", sorted(POLICY))
def test_a_create_is_sent_again_only_when_the_tenant_did_nothing(sandbox_factory: Callable[..., Sandbox],
                                                                 kind: str) -> None:
    sandbox = sandbox_factory(retry_after_s=0)
    observer = Introspection(sandbox.base_url, TOKEN)
    error, _, reached, unknown = POLICY[kind]
    with fast_client(sandbox) as client:
        faults(observer, kind)
        with pytest.raises(error) as raised:
            client.create_credential(raw_credential("postgres", "pg", password="never-in-messages"), test=False)
        assert observer.requests_to("POST credentials") == reached
        assert client.retries.total == reached - 1
    assert raised.value.outcome_unknown is unknown
    text = str(raised.value)
    assert ("the tenant may have acted on it" in text) is unknown and "never-in-messages" not in text
    if kind == "drop-after":
        assert "the connection was closed after the request was sent" in text
    # Only drop-after lets the tenant act: then the credential exists, exactly once.
    created = [c["record"]["name"] for c in observer.state()["credentials"].values()]
    assert created == (["pg"] if kind == "drop-after" else [])


def test_a_schedule_whose_answer_is_lost_is_attached_once(client: ApiClient, introspect: Introspection) -> None:
    slug = client.create_app("postgres-crawler", "pg", app_inputs("pg")).slug
    faults(introspect, "drop-after")
    with pytest.raises(ApiConnectionError) as lost:
        client.add_schedule(slug, "0 3 * * *", "UTC")
    assert lost.value.outcome_unknown and lost.value.status is None
    assert introspect.requests_to("POST v1/app/{slug}/schedule") == 1
    assert len(introspect.state()["schedules"]) == 1  # attached by the one request, never twice


def test_a_post_marked_idempotent_gets_the_idempotent_policy(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(retry_after_s=0)
    observer = Introspection(sandbox.base_url, TOKEN)
    with fast_client(sandbox) as client:
        guid = client.create_credential(raw_credential("postgres", "pg"), test=False)["id"]
        body = {**raw_credential("postgres", "pg", password="rotated"), "id": guid}
        faults(observer, "502")
        with pytest.raises(ServerError) as replace:
            client.update_credential(guid, body)  # a full replace by guid: marked idempotent
        assert observer.requests_to("POST credentials/{guid}") == 1 + RETRIES
        assert not replace.value.outcome_unknown
        observer.post("reset", {"state": False, "stats": True})
        with pytest.raises(ServerError) as by_method:
            client.call("POST", f"credentials/{guid}", body=body)  # the same request, by method
        assert observer.requests_to("POST credentials/{guid}") == 1
        assert by_method.value.outcome_unknown


def test_503_without_retry_after_is_retried_only_when_idempotent() -> None:
    # The sandbox always sends Retry-After with a 503, so this case is checked on the policy itself.
    writes = retry_policy(idempotent=False, max_retries=3, backoff_factor=0, backoff_max=0, retry_after_max=5, counter=None)
    reads = retry_policy(idempotent=True, max_retries=3, backoff_factor=0, backoff_max=0, retry_after_max=5, counter=None)
    for status in (429, 500, 502, 503, 504):
        assert reads.is_retry("POST", status, has_retry_after=False)
    assert writes.is_retry("POST", 429, has_retry_after=False)
    assert writes.is_retry("POST", 503, has_retry_after=True)
    for status in (500, 502, 503, 504):
        assert not writes.is_retry("POST", status, has_retry_after=False)

    def answer(status: int, **headers: str) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        return response

    assert answer_may_follow_action(answer(503)) and answer_may_follow_action(answer(500))
    assert not answer_may_follow_action(answer(503, **{"Retry-After": "2"}))
    assert not answer_may_follow_action(answer(429)) and not answer_may_follow_action(answer(409))


def test_a_write_to_an_unreachable_tenant_is_retried_and_not_in_doubt() -> None:
    with ApiClient("http://127.0.0.1:9/", "k", max_retries=1, backoff_factor=0.001, connect_timeout=1) as client, \
            pytest.raises(ApiConnectionError) as refused:
        client.create_credential(raw_credential("postgres", "pg"), test=False)
    assert not refused.value.outcome_unknown  # nothing was sent
    assert "could not connect" in str(refused.value)
    assert client.retries.snapshot() == {"connection": 1}


# -- lost answers at a rate ----------------------------------------------------------------------------


def test_credential_creates_are_never_sent_twice_under_30_percent_drop_after(
        sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(seed=3, fault_rate=0.3, fault_kinds=("drop-after",))
    observer = Introspection(sandbox.base_url, TOKEN)
    answered, in_doubt = 0, 0
    with fast_client(sandbox) as client:
        for i in range(50):
            try:
                client.create_credential(raw_credential("postgres", f"cred-{i:02d}"), test=False)
                answered += 1
            except ApiError as exc:
                assert exc.outcome_unknown, str(exc)
                in_doubt += 1
        assert client.retries.total == 0
    stats = observer.stats()
    assert in_doubt == stats["faults"]["drop-after"] >= 5  # the faults really happened
    assert answered + in_doubt == 50 == stats["requests"]["POST credentials"]  # one request per create
    names = [c["record"]["name"] for c in observer.state()["credentials"].values()]
    assert sorted(names) == [f"cred-{i:02d}" for i in range(50)]  # each created once, none twice


def test_create_app_sends_a_lost_create_again_and_adopts_it(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(seed=4, fault_rate=0.4, fault_kinds=("drop-after",))
    observer = Introspection(sandbox.base_url, TOKEN)
    adopted, gave_up = 0, 0
    with fast_client(sandbox) as client:
        for i in range(20):
            try:
                created = client.create_app("postgres-crawler", f"pg-{i:02d}", app_inputs(f"pg-{i}"))
                assert created.adopted == (created.resends > 0)  # drop-after: the lost create did create it
                adopted += created.adopted
            except ApiError as exc:
                assert exc.outcome_unknown, str(exc)
                gave_up += 1
        resends = client.retries.snapshot().get("read", 0)
    assert adopted >= 3  # a lost answer was sent again, answered 409 and adopted
    # One re-send per adoption, or two when the 409 was lost as well; two for each give-up.
    assert adopted + gave_up * CREATE_APP_RESENDS <= resends <= (adopted + gave_up) * CREATE_APP_RESENDS
    assert observer.requests_to("POST v1/app") == 20 + resends
    names = [a["name"] for a in observer.state()["apps"].values()]
    assert sorted(names) == [f"pg-{i:02d}" for i in range(20)]  # exactly one workflow per name


def test_create_app_gives_up_after_its_resends(client: ApiClient, introspect: Introspection) -> None:
    faults(introspect, "drop-after")
    with pytest.raises(ApiConnectionError) as lost:
        client.create_app("postgres-crawler", "pg", app_inputs("pg"))
    assert lost.value.outcome_unknown
    assert introspect.requests_to("POST v1/app") == 1 + CREATE_APP_RESENDS
    assert [a["name"] for a in introspect.state()["apps"].values()] == ["pg"]


def test_a_get_succeeds_under_20_percent_500s(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(seed=6, fault_rate=0.2, fault_kinds=("500",))
    observer = Introspection(sandbox.base_url, TOKEN)
    with ApiClient(sandbox.base_url, TOKEN, max_retries=6, backoff_factor=0.001) as client:
        for _ in range(30):
            assert client.describe_app("postgres-crawler")["entrypoints"]
        injected = observer.stats()["faults"].get("500", 0)
        assert injected >= 3 and client.retries.snapshot() == {"500": injected}


def test_a_shared_budget_under_30_percent_429s_keeps_half_its_slots(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(seed=8, fault_rate=0.3, fault_kinds=("429",), retry_after_s=0)
    observer = Introspection(sandbox.base_url, TOKEN)
    with ApiClient(sandbox.base_url, TOKEN, max_retries=10, backoff_factor=0.001, parallelism=4) as client:
        def work() -> None:
            for _ in range(30):
                client.describe_app("postgres-crawler")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.retries.total == observer.stats()["faults"]["429"] >= 10
        assert client.budget is not None and client.budget.in_flight == 0
        # Every throttled request succeeded on a retry, so no level below the limit is halved.
        assert client.budget.lowest >= 2


# -- the request budget, on a fake clock ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def simulate(budget: RequestBudget, clock: FakeClock, *, count: int, throttle_rate: float, retry_after: float,
             max_retries: int, seed: int) -> tuple[int, list[int], list[float]]:
    """Run ``count`` requests through ``budget`` as the client does, one event at a time:
    each attempt takes 10 ms; a throttled one (429 with ``retry_after``) keeps its slot, reports
    to the budget when a retry is granted, waits ``retry_after`` and tries again; after
    ``max_retries`` it gives up. Returns the 429 count, ``allowed`` after every event and the
    clock time of every decrease."""
    rng = random.Random(seed)
    order = itertools.count()
    attempts: list[tuple[float, int, Slot, int]] = []
    started = finished = throttles = 0
    levels: list[int] = []
    decreases: list[float] = []
    while finished < count:
        while started < count and budget.wait_time() == 0:
            started += 1
            heapq.heappush(attempts, (clock.now + 0.01, next(order), budget.acquire(), 0))
        if not attempts:
            clock.now += budget.wait_time()  # nothing in flight: only the Retry-After pause holds
            continue
        when, _, slot, retries = heapq.heappop(attempts)
        clock.now = max(clock.now, when)
        if rng.random() < throttle_rate:
            throttles += 1
            if retries < max_retries:
                before = budget.decreases
                budget.throttled(retry_after, slot=slot)
                if budget.decreases > before:
                    decreases.append(clock.now)
                heapq.heappush(attempts, (clock.now + retry_after + 0.01, next(order), slot, retries + 1))
            else:
                budget.release(success=False)
                finished += 1
        else:
            budget.release()
            finished += 1
        levels.append(budget.allowed)
    return throttles, levels, decreases


def test_budget_keeps_half_its_slots_under_30_percent_random_429s() -> None:
    """Bound: ``allowed`` never goes below ``limit // 2``. Every throttled request here succeeds
    on a retry, so every round below the limit earns its +1 (``allowed`` successes) by the time it
    is complete, before a 429 may halve it again: only the limit itself is ever halved. The old
    budget (halve on every 429, +1 after 4 × allowed calm answers in a row) fell to 1 at once."""
    clock = FakeClock()
    budget = RequestBudget(8, clock=clock)
    throttles, levels, decreases = simulate(budget, clock, count=2000, throttle_rate=0.3, retry_after=1.0,
                                            max_retries=20, seed=1)
    assert throttles > 500 and len(decreases) >= 5  # the storm was real, and the budget did react
    assert budget.lowest == min(levels) == 4
    assert statistics.mean(levels) >= 5.5
    assert budget.in_flight == 0


def test_a_sustained_storm_halves_the_budget_at_most_once_per_window() -> None:
    clock = FakeClock()
    budget = RequestBudget(8, clock=clock)
    throttles, levels, decreases = simulate(budget, clock, count=60, throttle_rate=1.0, retry_after=2.0,
                                            max_retries=3, seed=2)
    assert throttles == 60 * 4  # every attempt was throttled
    assert all(later - earlier >= 2.0 for earlier, later in zip(decreases, decreases[1:], strict=False))
    assert len(decreases) == 3 and budget.allowed == budget.lowest == 1  # 8 → 4 → 2 → 1, never below

    # A burst of 429s from one round halves once; their retries, within the window or after it,
    # still belong to that round.
    clock = FakeClock()
    budget = RequestBudget(8, clock=clock)
    slots = [budget.acquire() for _ in range(8)]
    for slot in slots:
        budget.throttled(2.0, slot=slot)
    assert (budget.allowed, budget.decreases) == (4, 1)
    clock.now += 2.5
    for slot in slots:
        budget.throttled(2.0, slot=slot)
    assert (budget.allowed, budget.decreases) == (4, 1)


def test_retry_after_holds_new_requests_until_the_clock_passes_it() -> None:
    clock = FakeClock()
    budget = RequestBudget(4, clock=clock)
    budget.acquire()
    budget.throttled(3.0)  # this thread's request was answered 429 with Retry-After: 3
    assert budget.allowed == 2 and budget.wait_time() == pytest.approx(3.0)
    clock.now += 2.5
    assert budget.wait_time() == pytest.approx(0.5)
    budget.release()  # a request in flight is not held
    clock.now += 0.5
    assert budget.wait_time() == 0
    budget.acquire()

    budget.pause(1.0)  # a 503 with Retry-After: a pause, not a throttle
    assert budget.wait_time() == pytest.approx(1.0) and budget.allowed == 2
    clock.now += 1.0
    budget.acquire()
    assert budget.wait_time() == float("inf")  # every slot taken: wait for a release


def test_the_retry_after_of_a_throttled_answer_reaches_the_budget() -> None:
    clock = FakeClock()
    budget = RequestBudget(4, clock=clock)
    counter = RetryCounter(budget)
    policy = retry_policy(idempotent=False, max_retries=3, backoff_factor=0, backoff_max=0, retry_after_max=5,
                          counter=counter)
    budget.acquire()
    policy = policy.increment("POST", "/x", response=HTTPResponse(status=429, headers={"Retry-After": "100"}))
    assert counter.snapshot() == {"429": 1}
    assert budget.wait_time() == pytest.approx(5.0)  # capped at retry_after_max
    policy.increment("POST", "/x", response=HTTPResponse(status=503, headers={"Retry-After": "1"}))
    assert counter.snapshot() == {"429": 1, "503": 1} and budget.decreases == 1


def _list_after_one_429(retry_after: str) -> dict[str, int]:
    """A real server on loopback answers 429 with ``Retry-After: <retry_after>`` once, then 200: the
    retries the client counted listing credentials from it (it raises if the list fails)."""
    import http.server

    answers = iter([(429, {"Retry-After": retry_after}), (200, {})])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status, headers = next(answers)
            body = b'{"records": [], "totalRecord": 0, "filterRecord": 0}'
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ApiClient(f"http://127.0.0.1:{server.server_address[1]}/", "k", max_retries=2, backoff_factor=0.001) as client:
            assert list(client.list_credentials()) == []
            return client.retries.snapshot()
    finally:
        server.shutdown()


def test_a_fractional_retry_after_is_waited_for_not_a_failure() -> None:
    # Some servers send Retry-After: 0.5; urllib3 alone refuses such an answer (InvalidHeader) and
    # fails the request it was retrying.
    assert _list_after_one_429("0.5") == {"429": 1}
    policy = retry_policy(idempotent=True, max_retries=1, backoff_factor=0, backoff_max=0, retry_after_max=5, counter=None)
    assert policy.parse_retry_after("0.5") == 0.5 and policy.parse_retry_after("2") == 2
    for bad in ("-1", "nan", "soon"):
        with pytest.raises(Exception, match="Invalid Retry-After"):
            policy.parse_retry_after(bad)


def test_an_http_date_retry_after_is_the_time_until_it_capped_and_an_unreadable_one_is_a_backoff() -> None:
    policy = retry_policy(idempotent=True, max_retries=1, backoff_factor=0, backoff_max=0, retry_after_max=5, counter=None)
    assert policy.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date passed: at once
    assert policy.parse_retry_after("Fri, 31 Dec 2117 23:59:59 GMT") == 5  # capped at retry_after_max
    assert policy.parse_retry_after(" 1.5 ") == 1.5 and policy.parse_retry_after("1e9") == 5
    assert _list_after_one_429("Wed, 21 Oct 2015 07:28:00 GMT") == {"429": 1}
    # A Retry-After that is neither seconds nor a date made urllib3 raise InvalidHeader, and the
    # client reported "no answer" for a tenant that had answered; the retry now backs off instead.
    for unreadable in ("soon", "-1", "nan"):
        assert _list_after_one_429(unreadable) == {"429": 1}


def test_the_sandbox_rounds_a_fractional_retry_after_up(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(retry_after_s=0.5, fault_rate=1.0, fault_kinds=("503",))
    answer = requests.get(f"{sandbox.base_url}api/service/credentials", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=10)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"  # whole seconds; "0" would mean at once


def test_every_retry_after_the_sandbox_sends_is_whole_seconds_rounded_up(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(retry_after_s=0.5, fault_rate=1.0, fault_kinds=("429", "503"))
    introspect = Introspection(sandbox.base_url, TOKEN)

    def retry_after() -> str:
        answer = requests.get(f"{sandbox.base_url}api/service/credentials", headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=10)
        assert answer.status_code in (429, 503)
        return str(answer.headers["Retry-After"])

    for seconds, sent in ((1.5, "2"), (0.01, "1"), (2, "2"), (0, "0")):
        introspect.post("config", {"retry_after_s": seconds})
        assert {retry_after() for _ in range(4)} == {sent}
    # The rate limiter's own 429 rounds its wait up too: at 0.4 requests a second, the second
    # request must wait 2.5 s, less the moment since the first.
    limited = sandbox_factory(rate_limit=0.4, rate_burst=1)
    answers = [requests.get(f"{limited.base_url}api/service/credentials", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=10) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429] and answers[1].headers["Retry-After"] == "3"
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="Retry-After"):
            Sandbox(SandboxConfig(retry_after_s=bad))


def test_serve_takes_a_retry_after_and_refuses_a_nonsense_one(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "sandbox", "serve", "--help"], capture_output=True,
                          text=True, timeout=30)
    assert "--retry-after-s" in done.stdout and "rounded up" in done.stdout
    done = subprocess.run([sys.executable, "-m", "reconciler", "sandbox", "serve", "--retry-after-s", "inf",
                           "--state-file", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 64 and "Retry-After" in done.stderr
