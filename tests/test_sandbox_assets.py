"""Asset search under /api/meta/ as the official SDK uses it: a builder reusing an existing connection
by qualifiedName, and ``AppClient.submit(slug, idempotent=True)`` looking for an in-flight run.
Also the docs' raw REST create body, whose credential has no name."""

from __future__ import annotations

from typing import Any

import pytest
import requests

pyatlan = pytest.importorskip("pyatlan")

import pyatlan.client.app as sdk_app  # noqa: E402
from pyatlan.client.atlan import AtlanClient  # noqa: E402
from pyatlan.errors import AtlanError  # noqa: E402
from pyatlan.model.apps import SnowflakeCrawler, SnowflakeMiner  # noqa: E402
from pyatlan.model.assets import AppWorkflowRun, Connection  # noqa: E402

from reconciler.sandbox import Sandbox  # noqa: E402
from reconciler.sandbox.catalogue import ROLES  # noqa: E402
from reconciler.sandbox.store import ManualClock  # noqa: E402
from tests.conftest import TOKEN, Introspection, raw_credential  # noqa: E402

ADMIN_GUID = ROLES[0]["id"]
SEARCH = "/api/meta/search/indexsearch"


@pytest.fixture
def atlan(sandbox: Sandbox) -> AtlanClient:
    return AtlanClient(base_url=sandbox.base_url, api_key=TOKEN)


def _crawler(atlan: AtlanClient, name: str) -> Any:
    return (
        SnowflakeCrawler(atlan)
        .basic(username="loader", password="crawler-pw-1")
        .connection(name=name, admin_roles=[ADMIN_GUID], admin_users=["jdoe"])
        .create(name=name)
    )


def _stored(introspect: Introspection, slug: str) -> dict[str, Any]:
    return introspect.state()["apps"][slug]


def _search(sandbox: Sandbox, body: Any) -> requests.Response:
    return requests.post(sandbox.base_url + SEARCH, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def test_a_miner_reuses_its_crawlers_connection_by_qualified_name(atlan: AtlanClient, introspect: Introspection) -> None:
    crawler = _crawler(atlan, "sf-prod")
    crawler_inputs = _stored(introspect, crawler.slug)["inputs"]
    qualified_name = crawler_inputs["connection"]["attributes"]["qualifiedName"]

    found = atlan.asset.get_by_qualified_name(qualified_name, Connection, min_ext_info=True,
                                              attributes=["defaultCredentialGuid", "adminRoles", "adminUsers"])
    assert found.qualified_name == qualified_name and found.name == "sf-prod"
    assert found.default_credential_guid == crawler_inputs["credential_guid"]
    assert found.admin_roles == {ADMIN_GUID} and found.admin_users == {"jdoe"}

    miner = SnowflakeMiner(atlan).connection(qualified_name=qualified_name).create(name="sf-prod-miner")
    connection = _stored(introspect, miner.slug)["inputs"]["connection"]["attributes"]
    # The whole connection went back as the UI sends it: its name (so the run cannot rename it) and
    # the crawler's credential, reused with no credential step.
    assert connection["qualifiedName"] == qualified_name and connection["name"] == "sf-prod"
    assert connection["defaultCredentialGuid"] == crawler_inputs["credential_guid"]
    assert connection["adminRoles"] == [ADMIN_GUID]
    assert len(introspect.state()["credentials"]) == 1


def test_a_builder_naming_an_unknown_connection_fails_before_creating_anything(atlan: AtlanClient,
                                                                               introspect: Introspection) -> None:
    with pytest.raises(AtlanError) as refused:
        SnowflakeMiner(atlan).connection(qualified_name="default/snowflake/1").create(name="orphan-miner")
    assert "ATLAN-PYTHON-400-081" in str(refused.value)
    assert introspect.state()["apps"] == {}


def test_a_connection_written_without_a_name_is_renamed_to_its_epoch(atlan: AtlanClient, sandbox: Sandbox,
                                                                      introspect: Introspection) -> None:
    # The rename the SDK guards against (a stub connection without its name): the sandbox shows it.
    crawler = _crawler(atlan, "sf-rename")
    inputs = _stored(introspect, crawler.slug)["inputs"]
    qualified_name = inputs["connection"]["attributes"]["qualifiedName"]
    stub = {"typeName": "Connection", "attributes": {"qualifiedName": qualified_name, "connectorName": "snowflake"}}
    answer = requests.put(f"{sandbox.base_url}/api/service/v1/app/{crawler.slug}",
                          json={"inputs": {**inputs, "connection": stub, "credential_guid": ""}},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    found = atlan.asset.get_by_qualified_name(qualified_name, Connection, attributes=["name"])
    assert found.name == qualified_name.rsplit("/", 1)[-1] != "sf-rename"


def test_idempotent_submit_refuses_a_second_run_while_one_is_in_flight(atlan: AtlanClient, sandbox: Sandbox,
                                                                       introspect: Introspection) -> None:
    # The SDK's own live test, on the sandbox's clock so the first run cannot end before the second
    # submit, however slow the machine.
    clock = sandbox.store.clock = ManualClock()
    slug = _crawler(atlan, "sf-idem").slug
    first = atlan.app.submit(slug)
    with pytest.raises(AtlanError) as refused:
        atlan.app.submit(slug, idempotent=True)
    assert "ATLAN-PYTHON-400-080" in str(refused.value)  # the SDK's "already running", found by search
    assert introspect.requests_to("POST v1/app/{slug}/submit") == 1  # refused before submitting
    assert introspect.requests_to("POST meta/search/indexsearch") == 1

    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s)
    second = atlan.app.submit(slug, idempotent=True)
    assert second.run_id != first.run_id
    assert atlan.app.get_run(first.run_id).is_terminal


def test_idempotent_submit_behind_a_lagging_index_surfaces_the_servers_refusal(
        atlan: AtlanClient, sandbox: Sandbox, introspect: Introspection, monkeypatch: pytest.MonkeyPatch) -> None:
    # The index has not seen the first run yet: the pre-check finds nothing, the server refuses the
    # submit (500, "already has an active run"), and the SDK's confirmation poll still finds nothing,
    # so the server's own refusal is what the caller gets. Either way no second run exists.
    monkeypatch.setattr(sdk_app, "_RUN_CHECK_TIMEOUT_SECONDS", 0.0)
    sandbox.store.clock = ManualClock()
    sandbox.config.index_lag_s = 5.0
    slug = _crawler(atlan, "sf-lag").slug
    atlan.app.submit(slug)
    with pytest.raises(AtlanError) as refused:
        atlan.app.submit(slug, idempotent=True)
    assert "already has an active run" in str(refused.value) and "500" in str(refused.value)
    assert len(introspect.state()["runs"]) == 1
    assert introspect.requests_to("POST meta/search/indexsearch") == 2  # the pre-check and one confirmation


def test_runs_are_assets_with_their_status(atlan: AtlanClient, sandbox: Sandbox) -> None:
    clock = sandbox.store.clock = ManualClock()
    slug = _crawler(atlan, "sf-assets").slug
    run = atlan.app.submit(slug)

    def statuses() -> list[tuple[str, str]]:  # a new request each time: iterating pages moves its offset
        request = sdk_app.FluentSearch().where(sdk_app.CompoundQuery.asset_type(AppWorkflowRun)).where(
            AppWorkflowRun.QUALIFIED_NAME.startswith(f"{sdk_app._APP_WORKFLOW_RUN_QN_PREFIX}{slug}/")
        ).include_on_results(AppWorkflowRun.APP_WORKFLOW_RUN_STATUS).to_request()
        return [(r.qualified_name, r.app_workflow_run_status.value) for r in atlan.asset.search(request)]

    qualified_name = f"{sdk_app._APP_WORKFLOW_RUN_QN_PREFIX}{slug}/{run.run_id}"
    assert statuses() == [(qualified_name, "Pending")]
    clock.advance(sandbox.config.run_pending_s + sandbox.config.run_running_s)
    assert statuses() == [(qualified_name, "Succeeded")]


def test_search_answers_as_atlas_does(sandbox: Sandbox, atlan: AtlanClient) -> None:
    _crawler(atlan, "sf-search")
    nothing = _search(sandbox, {"dsl": {"query": {"term": {"__typeName.keyword": "Table"}}}})
    assert nothing.status_code == 200 and nothing.json()["approximateCount"] == 0
    assert "entities" not in nothing.json()  # Atlas leaves the key out when nothing matched

    answer = _search(sandbox, {"dsl": {"size": 5, "query": {"term": {"__typeName.keyword": "Connection"}}},
                               "attributes": ["connectorName", "noSuchAttribute"]}).json()
    assert answer["approximateCount"] == 1
    [entity] = answer["entities"]
    assert entity["typeName"] == "Connection" and entity["status"] == "ACTIVE"
    assert set(entity["attributes"]) == {"qualifiedName", "name", "connectorName"}

    for bad in ([], {"dsl": []}, {"dsl": {"query": {"wildcard": {"name": "x*"}}}}, {"attributes": "name"}):
        refused = _search(sandbox, bad)
        assert refused.status_code == 400 and refused.json()["message"], bad
    assert requests.get(sandbox.base_url + SEARCH, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 405
    assert requests.post(sandbox.base_url + SEARCH, json={}, timeout=10).status_code == 401
    assert requests.post(sandbox.base_url + "/api/meta/entity/bulk", json={},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 404


def test_the_docs_raw_create_body_vaults_an_unnamed_credential(sandbox: Sandbox, introspect: Introspection) -> None:
    credential = raw_credential("bigquery", "ignored")
    del credential["name"]
    body = {"app_id": "bigquery-crawler", "name": "bq-raw", "entrypoint": "crawler", "run": False,
            "inputs": {"connection": {"typeName": "Connection",
                                      "attributes": {"qualifiedName": "default/bigquery/1717286400",
                                                     "connectorName": "bigquery", "name": "bq-raw"}},
                       "extraction_method": "direct", "credential_guid": "", "credential": credential}}
    answer = requests.post(sandbox.base_url + "/api/service/v1/app", json=body,
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    [stored] = introspect.state()["credentials"].values()
    assert stored["record"]["name"] == "default-bigquery-1717286400-0"
    assert introspect.state()["apps"][answer.json()["slug"]]["inputs"]["credential_guid"] == stored["record"]["id"]
