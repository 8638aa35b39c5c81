"""The sandbox's app catalogue against the official SDK: every app id pyatlan has a typed builder
for is described by the sandbox with an input contract, a create through each builder is
accepted, a plan naming each id knows the app, and the generated catalogue is what the installed
SDK generates (byte for byte). Over real HTTP, as a tenant would be driven."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

pytest.importorskip("pyatlan")

import pyatlan.model.apps as sdk_apps  # noqa: E402
from pyatlan.client.atlan import AtlanClient  # noqa: E402
from pyatlan.errors import AtlanError, NotFoundError  # noqa: E402
from pyatlan.model.apps import AppBuilder, AtlanMysql  # noqa: E402

from reconciler.client import ApiClient  # noqa: E402
from reconciler.errors import InvalidRequestError  # noqa: E402
from reconciler.kinds.app import connector_of  # noqa: E402
from reconciler.sandbox import Sandbox, catalogue, catalogue_sdk, generate_catalogue  # noqa: E402
from tests.conftest import TOKEN, connection, fast_config  # noqa: E402

# The SDK's builders as it exports them (not through the generator's own module walk).
BUILDERS: list[type[Any]] = sorted(
    (c for c in (getattr(sdk_apps, n) for n in sdk_apps.__all__)
     if isinstance(c, type) and issubclass(c, AppBuilder) and c is not AppBuilder),
    key=lambda c: str(c._APP_ID),
)
APP_IDS = [str(b._APP_ID) for b in BUILDERS]
# The App manifest schema allows only lower-case app ids; the SDK's Kafka apps are "Kafka-…".
UPPER_CASE_IDS = [a for a in APP_IDS if a != a.lower()]


@pytest.fixture(scope="module")
def tenant() -> Iterator[Sandbox]:
    """One sandbox for the module: every test here makes objects under names of its own."""
    with Sandbox(fast_config()).start() as sandbox:
        yield sandbox


@pytest.fixture
def atlan(tenant: Sandbox) -> AtlanClient:
    return AtlanClient(base_url=tenant.base_url, api_key=TOKEN)


def _credential_step(builder: Any) -> Any:
    """The builder's simplest credential method (basic when it has one) with dummy values; the
    builder unchanged when it has none (miners reuse a connection's credential, lineage has none)."""
    methods = [name for name, member in vars(type(builder)).items()
               if inspect.isfunction(member) and "_stage_credential" in inspect.getsource(member)]
    if not methods:
        return builder
    name = "basic" if "basic" in methods else methods[0]
    params = inspect.signature(getattr(builder, name)).parameters.values()
    return getattr(builder, name)(**{p.name: f"dummy-{p.name}" for p in params
                                     if p.kind is p.KEYWORD_ONLY and p.default is p.empty})


def test_the_sdk_has_builders_and_the_catalogue_knows_each() -> None:
    assert len(BUILDERS) >= 38  # pyatlan 11.6
    assert set(APP_IDS) <= set(catalogue.APPS), "run: python -m reconciler.sandbox.generate_catalogue"
    if importlib.metadata.version("pyatlan") == catalogue_sdk.PYATLAN_VERSION:
        assert set(APP_IDS) == set(catalogue_sdk.APPS)


@pytest.mark.parametrize("builder", BUILDERS, ids=APP_IDS)
def test_every_sdk_app_is_described_with_an_input_contract(builder: type[Any], atlan: AtlanClient) -> None:
    app_id, entrypoint = builder._APP_ID, builder._ENTRYPOINT or None
    info = atlan.app.describe(app_id)
    assert (info.app_id, info.native_ready, info.execution_mode) == (app_id, True, "native")
    names = [e.name for e in info.entrypoints]
    assert names == ([entrypoint] if entrypoint else [])  # an unnamed default slot is not listed

    contract = atlan.app.get_input_contract(app_id, entrypoint)
    assert contract.title == "AppInputContract"
    assert "connection" in contract.field_names()
    assert contract.credential_field() == "credential_guid"
    # Every key the builder sends by default is an input of the contract, with that default.
    sent = builder(None).connection(name="x").preview()
    assert set(sent) <= set(contract.properties)
    for key, value in sent.items():
        if key not in ("connection", "credential_guid", "extraction_method"):
            assert contract.properties[key].get("default") == value, key


@pytest.mark.parametrize("builder", BUILDERS, ids=APP_IDS)
def test_a_create_through_every_sdk_builder_is_accepted(builder: type[Any], atlan: AtlanClient) -> None:
    name = f"catalogue-{builder._APP_ID.lower()}"
    created = _credential_step(builder(atlan)).connection(name=name).create(name=name)
    assert created.slug and created.execution_mode == "native" and created.run_id is None

    args = atlan.app.get(created.slug).dict()["dag"]["extract"]["inputs"]["args"]
    assert json.loads(args["connection"])["attributes"]["name"] == name
    assert "credential" not in args
    # The named credential fields (dbt's) hold the guid of a credential the builder vaulted first,
    # and the sandbox refuses one that names no credential.
    for field in catalogue_sdk.APPS[builder._APP_ID].get("credential_fields", ()):
        if args.get(field):
            assert atlan.credentials.get(args[field]).id == args[field]
            with pytest.raises(AtlanError, match=field):
                atlan.app.update(created.slug, inputs={**args, field: "no-such-credential"})


def test_an_sdk_builder_with_an_agent_is_accepted_and_a_null_guid_is_not_without_one(atlan: AtlanClient) -> None:
    # create() sends credential_guid: null with an agent (its validate_arguments turns the Inputs
    # model into a dict with every unset field, bypassing to_inputs()).
    created = AtlanMysql(atlan).agent({"agent": "a1"}).connection(name="catalogue-agent").create(name="catalogue-agent")
    assert atlan.app.get(created.slug).dict()["dag"]["extract"]["inputs"]["args"]["extraction_method"] == "agent"
    with pytest.raises(AtlanError, match="credential_guid"):
        atlan.app.create(app_id="atlan-mysql", name="catalogue-null-guid", run=False,
                         inputs={"connection": connection("mysql", "n"), "credential_guid": None})


# SnowflakeCrawler's filter and asset-selection setters forward a mapping unencoded; the sandbox keeps
# its hand-written Snowflake contract, whose JSON-string fields (as ATLAN_API §2.2 has them) refuse it.
REFUSED = {("snowflake-crawler", setter, key) for setter, key in [
    ("include_metadata", "include_filter"), ("exclude_metadata", "exclude_filter"), ("asset_selection", "asset_selection")]}


@pytest.mark.parametrize("builder", BUILDERS, ids=APP_IDS)
def test_what_every_setter_of_every_builder_sends_fits_the_served_contract(builder: type[Any], tenant: Sandbox) -> None:
    """Each builder, run offline by the generator with sample arguments for each of its setters:
    every ``inputs`` its ``create()`` would send fits the contract the sandbox serves (types,
    enums, no unknown key). The JSON inside string filters is not checked: samples are not JSON."""
    app = generate_catalogue.App(builder, AppBuilder, generate_catalogue.Recorder(AtlanClient))
    with ApiClient(tenant.base_url, TOKEN) as client:
        contract = client.get_input_contract(builder._APP_ID, builder._ENTRYPOINT or None)
    validator = Draft202012Validator(contract)
    refused = set()
    for setter, inputs in app.recorded:
        inputs = {k: v for k, v in inputs.items() if k != "credential"}  # vaulted by shape, not a contract input
        for error in validator.iter_errors(inputs):
            refused.add((builder._APP_ID, setter, ".".join(map(str, error.absolute_path)) or error.message))
    assert refused <= REFUSED


def _plan_folder(tmp_path: Path, app_ids: list[str], connectors: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    for n, app_id in enumerate(app_ids):
        connector = f", connector: {connectors[app_id]}" if connectors and app_id in connectors else ""
        # Agent extraction: no credential to declare, and every app's contract has it.
        (folder / f"app-{n}.yaml").write_text(f"""apiVersion: reconciler/v1
kind: App
metadata: {{name: plan-{n}}}
spec:
  appId: {app_id}
  connection: {{name: plan-{n}{connector}}}
  inputs: {{extraction_method: agent, agent_json: {{agent: a1}}}}
""")
    return folder


def _plan(tenant: Sandbox, folder: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLAN_BASE_URL": tenant.base_url, "ATLAN_API_KEY": TOKEN}
    return subprocess.run([sys.executable, "-m", "reconciler", "plan", str(folder), "--format", "json"],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_a_plan_naming_any_sdk_app_id_knows_the_app(tenant: Sandbox, tmp_path: Path) -> None:
    app_ids = [a for a in APP_IDS if a not in UPPER_CASE_IDS]
    done = _plan(tenant, _plan_folder(tmp_path, app_ids), tmp_path)
    assert "RC110" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert sorted(c["after"]["appId"] for c in plan["changes"] if c["action"] == "create") == sorted(app_ids)


def test_a_plan_naming_the_upper_case_sdk_app_ids_knows_the_apps(tenant: Sandbox, tmp_path: Path) -> None:
    done = _plan(tenant, _plan_folder(tmp_path, UPPER_CASE_IDS), tmp_path)
    assert "RC110" not in done.stdout + done.stderr
    assert done.returncode == 0, done.stderr


def test_every_sdk_app_applies_on_its_connector_and_converges(tmp_path: Path) -> None:
    # A connection is minted as default/{connector}/{epoch} with the connector the SDK's builder uses:
    # derived from the app id, or given as connection.connector where the id does not say it.
    sdk_connector = {str(b._APP_ID): str(b._CONNECTOR_NAME) for b in BUILDERS}
    given = {a: c for a, c in sdk_connector.items() if connector_of(a) != c}
    assert set(given) <= {"Kafka-apache", "Kafka-confluent", "anaplan-anaplan", "atlan-knowledge-catalog",
                          "atlan-standard-lineage", "csa-uber-asset-export-basic", "mongodbatlas-atlas"}
    with Sandbox(fast_config()).start() as sandbox:
        folder = _plan_folder(tmp_path, APP_IDS, given)
        env = {**os.environ, "ATLAN_BASE_URL": sandbox.base_url, "ATLAN_API_KEY": TOKEN}
        applied = subprocess.run([sys.executable, "-m", "reconciler", "apply", str(folder), "--auto-approve"],
                                 capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        with ApiClient(sandbox.base_url, TOKEN) as client:
            apps = {a["app_id"]: json.loads(a["dag"]["extract"]["inputs"]["args"]["connection"])["attributes"]
                    for a in client.list_apps()}
        assert {a: (c["connectorName"], c["qualifiedName"].split("/")[1]) for a, c in apps.items()} == {
            a: (c, c) for a, c in sdk_connector.items()}
        again = subprocess.run([sys.executable, "-m", "reconciler", "plan", str(folder), "--detailed-exitcode"],
                               capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert again.returncode == 0 and "No changes." in again.stdout, again.stdout + again.stderr


def test_an_app_without_a_named_entrypoint_uses_its_default_slot(tenant: Sandbox) -> None:
    with ApiClient(tenant.base_url, TOKEN) as client:
        inputs = {"connection": connection("mysql", "my"), "credential_guid": "", "include_filter": '{"^db$": ["^s$"]}'}
        created = client.create_app("atlan-mysql", "catalogue-mysql-default-slot", inputs)
        item = client.get_app(created.slug)
        assert "entrypoint" not in item
        assert item["dag"]["extract"]["inputs"]["args"]["exclude_table_regex"] == ""  # a default filled on read
        assert client.get_input_contract("atlan-mysql", None)["properties"]["include_filter"]["contentMediaType"]
        with pytest.raises(InvalidRequestError, match="1003"):
            client.create_app("atlan-mysql", "catalogue-mysql-named", inputs, entrypoint="crawler")
        with pytest.raises(InvalidRequestError, match="1003"):
            client.call("GET", "v1/apps/atlan-mysql/inputs", params={"entrypoint": ""})


def test_describe_is_coherent_for_an_app_the_app_api_cannot_run(atlan: AtlanClient) -> None:
    info = atlan.app.describe("tableau-crawler")  # a sandbox fixture: no native contract
    assert info.native_ready is False and info.execution_mode is None and info.app_service_url is None
    with pytest.raises(NotFoundError):
        atlan.app.get_input_contract("tableau-crawler")
    tableau = atlan.app.describe("atlan-tableau")  # the SDK's Tableau app is native
    assert (tableau.native_ready, tableau.execution_mode) == (True, "native")
    with pytest.raises(AtlanError):
        atlan.app.describe("no-such-app")


def test_the_committed_catalogue_is_what_the_installed_sdk_generates() -> None:
    installed = importlib.metadata.version("pyatlan")
    if installed != catalogue_sdk.PYATLAN_VERSION:
        pytest.skip(f"catalogue_sdk.py was generated from pyatlan {catalogue_sdk.PYATLAN_VERSION}, {installed} is installed")
    committed = generate_catalogue.OUTPUT.read_text(encoding="utf-8")
    assert generate_catalogue.generate() == committed, "run: python -m reconciler.sandbox.generate_catalogue"


def test_the_catalogue_needs_no_sdk_at_run_time() -> None:
    code = ("import sys; sys.modules['pyatlan'] = None\n"
            "from reconciler.sandbox import catalogue\n"
            "print(len(catalogue.APPS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(catalogue_sdk.APPS) + 1  # and the not-runnable fixture
