"""App: a connector workflow of the App API (``/api/service/v1/app``), e.g. a crawler or miner.

Live: listed in cursor pages whose items carry the rendered DAG (a GET only where one lacks it),
with the input contract of every (app id, entrypoint) in use. Canonical: contract defaults
filled, JSON-string settings parsed, runtime and plumbing keys dropped, the credential and
admin roles named. Apply: a full-replace update that keeps the credential through the
connection; schedules synced after (the API hides them: the state file remembers the ones we
attached); a create is write-ahead and, when its answer is lost, meets its own name (409).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from reconciler.diff import FieldChange
from reconciler.errors import ApiError, Diagnostic, NotFoundError, ServerError
from reconciler.kinds import GUID, Fetched, FetchScope, Kind
from reconciler.model import Resource, ResourceKey
from reconciler.normalize import (
    AppContract,
    Context,
    canonical_json,
    canonical_schedule,
    canonical_schedules,
    canonical_value,
    fingerprint,
)
from reconciler.outcomes import Outcome, RunState, Status
from reconciler.plan import Action, ApplySettings, Change

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from reconciler.apply import Applier
    from reconciler.client import ApiClient

# Keys of `inputs` that the manifest expresses elsewhere (connection, credentialRef): never
# compared or written as inputs. RUNTIME: keys the server adds to every workflow.
PLUMBING = frozenset({"connection", "connection_qualified_name", "credential_guid", "credential"})
RUNTIME = frozenset({"user-id", "user_id", "workflow_id", "correlation_id"})
ADMINS = ("adminRoles", "adminUsers", "adminGroups")


class AppKind(Kind):
    kind = "App"
    schema_file = "app.schema.json"
    rank = 1
    immutable = ("appId",)
    references = (("credentialRef", "Credential"),)
    schedule_list = "schedules"
    declared_only = ("credentialRef", "schedules", "connection.adminRoles", "connection.adminUsers",
                     "connection.adminGroups")
    unseen = ("App schedules edited in Atlan cannot be seen: the API does not return attached schedules, so "
              "they are compared with what apply attached (the state file), not with the tenant")

    # -- fetch ---------------------------------------------------------------------------------------

    def fetch(self, client: ApiClient, scope: FetchScope, pool: Executor) -> Callable[[], Fetched]:
        listed = pool.submit(lambda: list(client.list_apps()))
        roles = pool.submit(lambda: list(client.list_roles()))
        declared = scope.declared(self.kind)
        records = scope.records(self.kind)

        def finish() -> Fetched:
            items = listed.result()
            # The (app id, entrypoint) pairs in use: declared, or live under a declared name.
            in_use = [(str(r.spec.get("appId")), r.spec.get("entrypoint")) for r in declared.values()]
            in_use += [(app_id(item), item.get("entrypoint")) for item in items if item.get("name") in declared and app_id(item)]
            entrypoints: dict[str, set[str]] = {}
            for the_app, entrypoint in in_use:
                entrypoints.setdefault(the_app, set()).update([str(entrypoint)] if entrypoint else [])
            contracts_f = {a: pool.submit(_app_contract, client, a, eps) for a, eps in sorted(entrypoints.items())}
            # Details only where a list item lacks the rendered DAG.
            details_f = {item["slug"]: pool.submit(client.get_app, item["slug"])
                         for item in items if not _args_of(item) and item.get("slug")}
            contracts = {a: f.result() for a, f in contracts_f.items()}
            details = {slug: f.result() for slug, f in details_f.items()}
            objects = []
            for item in items:
                item = details.get(item.get("slug", ""), item)
                objects.append((resource(item, records.get(str(item.get("name"))) or {}), str(item.get("slug"))))
            return Fetched(objects=objects, context={
                "contracts": {a: c for a, c in contracts.items() if c is not None},
                "unknown_apps": frozenset(a for a, c in contracts.items() if c is None),
                "role_names": {str(r.get("id")): str(r.get("name")) for r in roles.result()},
            })
        return finish

    def stub(self, key: ResourceKey, change: Change) -> Resource:
        source = change.after or change.before or {}
        return Resource(key=key, spec={"appId": source.get("appId"), "entrypoint": change.settings.entrypoint})

    # -- normalize and plan -------------------------------------------------------------------------------

    def canonical(self, spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        the_app = spec.get("appId")
        facts = ctx.contracts.get(str(the_app))
        entrypoint = spec.get("entrypoint") or (facts.default_entrypoint if facts else None)
        connection = spec.get("connection") or {}
        out: dict[str, Any] = {
            "appId": the_app,
            "entrypoint": entrypoint,
            "connection": {"name": connection.get("name")},
            "inputs": canonical_inputs(spec.get("inputs") or {}, facts.contract(entrypoint) if facts else None),
        }
        for admins in ADMINS:
            if admins in connection:
                lookup = ctx.role_names if admins == "adminRoles" else {}
                out["connection"][admins] = sorted({lookup.get(str(v), str(v)) for v in connection[admins] or []})
        ref = spec.get("credentialRef")
        if ref:
            out["credentialRef"] = ctx.credential_names.get(ref, ref)
        if "schedules" in spec:
            out["schedules"] = canonical_schedules(spec["schedules"])
        return out

    def settings(self, want: Resource) -> ApplySettings:
        ref = want.spec.get("credentialRef")
        return dataclasses.replace(
            super().settings(want),
            connection_qualified_name=(want.spec.get("connection") or {}).get("qualifiedName") or None,
            connector=(want.spec.get("connection") or {}).get("connector") or None,
            entrypoint=want.spec.get("entrypoint"),
            # A guid given in the manifest is sent as given, never looked up again by name.
            credential_guid=ref if isinstance(ref, str) and GUID.match(ref) else None,
        )

    def tenant_moved(self, want: Resource, have: Resource) -> tuple[list[FieldChange], str]:
        """Stale schedules: a schedule fires the version it was attached to, so once the app is saved
        again (in the UI, by another tool) its schedules fire the old version until re-attached."""
        triggers, version = have.server.get("schedules"), have.server.get("version")
        if "schedules" not in want.spec or not triggers or version is None:
            return [], ""
        old = sorted({t.get("version") for t in triggers if t.get("version") not in (None, version)}, key=str)
        if not old:
            return [], ""
        return ([FieldChange("change", "schedules.version", old, version)],
                f"its schedules fire version {', '.join(map(str, old))}: it was saved since they were attached; "
                f"apply attaches them to version {version}")

    # -- export ----------------------------------------------------------------------------------------

    exportable = True
    export_optional = ("connection.qualifiedName",)

    def discover(self, client: ApiClient) -> list[Resource]:
        return [Resource(ResourceKey("App", str(item.get("name"))), {"appId": app_id(item), "entrypoint": item.get("entrypoint")})
                for item in client.list_apps()]

    def export_spec(self, live: Resource, ctx: Context, ref: Callable[[str, str], str],
                    record: Mapping[str, Any]) -> dict[str, Any]:
        spec = live.spec
        the_app = str(spec.get("appId"))
        facts = ctx.contracts.get(the_app)
        out: dict[str, Any] = {"appId": the_app}
        entrypoint = spec.get("entrypoint")
        if entrypoint and (facts is None or entrypoint != facts.default_entrypoint):
            out["entrypoint"] = entrypoint
        for name, target in self.references:
            if spec.get(name):
                out[name] = ref(target, str(spec[name]))
        connection = spec.get("connection") or {}
        if connection.get("name"):
            written: dict[str, Any] = {"name": connection["name"]}
            if connection.get("qualifiedName"):
                written["qualifiedName"] = connection["qualifiedName"]  # re-created, it keeps its assets' connection
            for admins in ADMINS:
                values = [str(v) for v in connection.get(admins) or []]
                if admins == "adminRoles":
                    values = sorted({ctx.role_names.get(v, v) for v in values})  # "$admin", not a guid
                if values:
                    written[admins] = values
            out["connection"] = written
        inputs = reduced_inputs(spec.get("inputs") or {}, facts.contract(entrypoint) if facts else None)
        if inputs:
            out["inputs"] = inputs
        schedules = spec.get("schedules")
        if schedules is not None:  # known (recorded, or shown by the API); unknown ones are never guessed
            out["schedules"] = [{"cron": s["cron"], "timezone": s.get("timezone") or "UTC"} for s in schedules]
        if record.get("preventDestroy"):
            out["lifecycle"] = {"preventDestroy": True}
        return out

    def export_record(self, live: Resource, record: Mapping[str, Any]) -> dict[str, Any]:
        out = {**record, "slug": live.server.get("slug")}
        if live.server.get("schedules") is not None:
            out["schedules"] = [dict(s) for s in live.server["schedules"]]
        return out

    # -- checks ----------------------------------------------------------------------------------------

    def online_problems(self, want: Resource, ctx: Context) -> list[Diagnostic]:
        """Unknown app ids, entrypoints, and inputs that the tenant's contract rejects."""
        key, origin = want.key, want.origin
        the_app = str(want.spec.get("appId"))
        if the_app in ctx.unknown_apps:
            return [Diagnostic.at(origin, "RC110", f"{key}: the tenant has no app {the_app!r}", "spec.appId",
                                  hint="Check the marketplace id, e.g. snowflake-crawler.")]
        facts = ctx.contracts.get(the_app)
        entrypoint = want.spec.get("entrypoint")
        contract = facts.contract(entrypoint) if facts else None
        if facts is not None and entrypoint and contract is None:
            return [Diagnostic.at(origin, "RC112", f"{key}: app {the_app!r} has no entrypoint {entrypoint!r}",
                                  "spec.entrypoint", hint=f"Omit entrypoint for the default ({facts.default_entrypoint}).")]
        if not contract:
            return []
        inputs = {k: v for k, v in (want.spec.get("inputs") or {}).items() if k not in PLUMBING}
        notes, reported = [], set()
        for error in sorted(_inputs_validator(contract).iter_errors(wire_inputs(inputs, contract)),
                            key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path)
            if error.validator == "additionalProperties":
                extra = sorted(set(error.instance) - set(contract.get("properties") or {}))
                message = f"{key}: the input contract of {the_app} has no input {', '.join(map(repr, extra))}"
                where = ".".join(filter(None, [where, extra[0] if extra else ""]))
            else:
                message = f"{key}: input {where or 'inputs'} is rejected by the contract of {the_app}: {error.message}"
            if where in reported:
                continue  # one problem per input is enough (a wrong type also fails its enum)
            reported.add(where)
            notes.append(Diagnostic.at(origin, "RC111", message, f"spec.inputs.{where}".rstrip("."),
                                       hint=f"See `reconciler contract {the_app}` for the inputs and their types."))
        return notes

    # -- apply ---------------------------------------------------------------------------------------

    def depends_on(self, change: Change) -> tuple[ResourceKey, ...]:
        ref = (change.after or {}).get("credentialRef") if change.action is not Action.DELETE else None
        return (ResourceKey("Credential", str(ref)),) if ref else ()

    def apply(self, change: Change, ops: Applier) -> Outcome | None:
        key, after = change.key, dict(change.after or {})
        live = ops.live.state.get(key)
        record = ops.record(key)
        facts = ops.live.context.contracts.get(str(after.get("appId")))
        entrypoint = change.settings.entrypoint
        contract = facts.contract(entrypoint or after.get("entrypoint")) if facts else None
        if change.action is Action.NOOP or (change.action is Action.UPDATE and live is not None and change.fields
                                            and all(f.path.split(".")[0] == self.schedule_list for f in change.fields)):
            # Unchanged, or only its schedules change: they are triggers, attached apart from the app;
            # saving the app again would publish a version the plan did not show.
            slug = str(live.server["slug"]) if live else str(record.get("slug"))
            owed = change.action is Action.UPDATE and ops.run_planned(key)
            if owed:
                ops.amend(key, runPending=True)  # owed from before the first trigger moves (see ``owing_run``)
            try:
                return _sync(change, ops, slug, live.server.get("version") if live else None,
                             live.server.get("schedules") if live else record.get("schedules"),
                             live.server.get("schedules_source") if live else "state")
            except ApiError as exc:
                moved = ops.record(key).get("schedules") != record.get("schedules") or exc.outcome_unknown
                if owed and not moved:  # refused before any trigger moved: nothing changed, nothing to run
                    ops.amend(key, runPending=record.get("runPending"))
                raise
        inputs = wire_inputs(dict(after.get("inputs") or {}), contract)
        ref = after.get("credentialRef")
        guid = (ops.id_of(ResourceKey("Credential", str(ref))) or change.settings.credential_guid or ref) if ref else None
        if change.action is Action.REPLACE and live is not None:
            ops.client.delete_app(str(live.server["slug"]))
            ops.put(key, None)
            live, record = None, {}
        connection = _connection(change, ops, live.server.get("connection") if live else None)
        if guid:
            # Reuse the vaulted credential through the connection, the way the UI does; a bare
            # top-level guid can flatten a shared credential's config (ATLAN_API §2.11).
            connection["attributes"]["defaultCredentialGuid"] = guid
        if inputs.get("extraction_method") != "agent":
            inputs["credential_guid"] = ""
        inputs["connection"] = connection
        if live is not None:
            slug = str(live.server["slug"])
            with ops.owing_run(change, record):
                version = ops.client.update_app(slug, inputs, entrypoint=entrypoint).get("version")
            return _sync(change, ops, slug, version, live.server.get("schedules"), live.server.get("schedules_source"))
        if ops.run_planned(key):
            # The create's run is owed from before the create (as its write-ahead record below).
            ops.put(key, {**ops.with_lifecycle(dict(record) or {"schedules": []}, change), "runPending": True})
        # Write-ahead: the record exists before the create, so that a kill right after it leaves an
        # app whose schedules are known (none yet) rather than unknown.
        if not ops.record(key):
            ops.put(key, ops.with_lifecycle({"schedules": []}, change))
        try:
            created = ops.client.create_app(str(after["appId"]), key.name, inputs, entrypoint=entrypoint, run=False)
        except ApiError as exc:
            if not record and not exc.outcome_unknown:
                ops.put(key, None)  # nothing was created: no record of it either
            raise
        slug, version = created.slug, created.version
        ops.amend(key, slug=slug)
        if not created.adopted or created.resends:
            # Ours: created now, or by a create of ours whose answer was lost (sent again, it met
            # its own name). It has no schedules yet.
            return _sync(change, ops, slug, version, [], "state")
        # The name was taken by a workflow the plan did not see: make it match. Its schedules are
        # known only if an earlier record of it says so.
        version = ops.client.update_app(slug, inputs, entrypoint=entrypoint).get("version", version)
        return _sync(change, ops, slug, version, record.get("schedules"), "state" if "schedules" in record else None)

    def delete(self, change: Change, live: Resource, ops: Applier) -> None:
        ops.client.delete_app(str(live.server["slug"]))

    def submit_run(self, change: Change, ops: Applier) -> Outcome:
        slug = ops.record(change.key).get("slug")
        if not slug:
            return Outcome(change, Status.SKIPPED, "skipped: the workflow was not created")
        with ops.run_intent(change.key) as settle:
            try:
                run = ops.client.submit_run(str(slug))
            except ServerError as exc:
                if "active run" in exc.server_message or "already" in exc.server_message:
                    settle()
                    return Outcome(change, Status.APPLIED, f"a run is already in flight: {exc.server_message}")
                raise
            settle()
        return Outcome(change, Status.APPLIED, "", run_id=run.get("run_id"), run_status=run.get("status"))

    def run_status(self, client: ApiClient, run_id: str) -> RunState | None:
        run = client.get_run(run_id)
        return RunState(str(run.get("status")), str(run.get("message") or ""))

    def cancel_run(self, client: ApiClient, run_id: str) -> str | None:
        return str(client.cancel_run(run_id).get("status"))


# -- live objects ------------------------------------------------------------------------------------------


def _app_contract(client: ApiClient, the_app: str, wanted: set[str]) -> AppContract | None:
    """The app's default entrypoint and the contracts of the entrypoints in use (the default
    one always); None when the tenant has no such app."""
    try:
        info = client.describe_app(the_app)
    except NotFoundError:
        return None
    entrypoints = [str(e["name"]) for e in info.get("entrypoints") or [] if e.get("name")]
    default = entrypoints[0] if entrypoints else None
    contracts = {}
    for entrypoint in sorted({default or "", *(w for w in wanted if w in entrypoints)}):
        try:
            contracts[entrypoint] = client.get_input_contract(the_app, entrypoint or None)
        except NotFoundError:
            continue  # no native contract for this entrypoint
    return AppContract(default, contracts)


def _args_of(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    try:
        args = item["dag"]["extract"]["inputs"]["args"]
    except (KeyError, TypeError):
        return None
    return args if isinstance(args, dict) else None


def app_id(item: Mapping[str, Any]) -> str:
    if item.get("app_id"):
        return str(item["app_id"])
    try:
        return str(item["dag"]["extract"]["inputs"]["app_id"])
    except (KeyError, TypeError):
        return ""


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def resource(item: Mapping[str, Any], record: Mapping[str, Any]) -> Resource:
    """A workflow as the API returns it (and its state record) → manifest-shaped Resource."""
    args = dict(_args_of(item) or {})
    connection = _json_object(args.get("connection"))
    attributes = connection.get("attributes") or {}
    credential_guid = args.get("credential_guid") or attributes.get("defaultCredentialGuid") or None
    spec: dict[str, Any] = {
        "appId": app_id(item),
        "connection": {
            "name": attributes.get("name"),
            "qualifiedName": attributes.get("qualifiedName"),
            **{admins: list(attributes.get(admins) or []) for admins in ADMINS},
        },
        "inputs": {k: v for k, v in args.items() if k not in PLUMBING and k not in RUNTIME},
    }
    if item.get("entrypoint"):
        spec["entrypoint"] = item["entrypoint"]
    if credential_guid:
        spec["credentialRef"] = credential_guid
    # The API hides attached schedules; the state file remembers the ones we attached, and the
    # ones whose attachment is unverified (an intent: compared as attached, never added again).
    # With neither, they are unknown (None), and the plan says so.
    pending = [i for i in record.get("intents") or [] if i.get("action") == "schedule"]
    if isinstance(item.get("schedules"), list):
        schedules, source, pending = [{"cron": s.get("cron"), "timezone": s.get("timezone") or "UTC",
                                       "trigger_id": s.get("trigger_id"), "version": s.get("version")}
                                      for s in item["schedules"]], "api", []
    elif "schedules" in record:
        schedules, source = list(record["schedules"]), "state"
    else:
        schedules, source = None, None
    spec["schedules"] = None if schedules is None else [{"cron": s["cron"], "timezone": s.get("timezone") or "UTC"}
                                                        for s in [*schedules, *pending]]
    server = {
        "id": item.get("slug"),
        "slug": item.get("slug"),
        "version": item.get("version"),
        "connection": connection,
        "credential_guid": credential_guid,
        "schedules": schedules,  # triggers: seen through the API, or recorded
        "schedules_source": source,  # "api", "state" or None (unknown)
        "fingerprint": fingerprint(item),
    }
    return Resource(key=ResourceKey("App", str(item.get("name"))), spec=spec, server=server)


# -- inputs ----------------------------------------------------------------------------------------------


def reduced_inputs(inputs: Mapping[str, Any], contract: Mapping[str, Any] | None) -> dict[str, Any]:
    """The inputs that differ from the contract's defaults, in canonical form (JSON-string
    settings as mappings), in the contract's order: what a person would have written."""
    have = canonical_inputs(inputs, contract)
    defaults = canonical_inputs({}, contract)
    return {k: v for k, v in have.items() if k not in defaults or canonical_json(defaults[k]) != canonical_json(v)}


def is_json_string_field(prop: Mapping[str, Any] | None) -> bool:
    return prop is not None and prop.get("type") == "string" and prop.get("contentMediaType") == "application/json"


def _parse_json_setting(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def canonical_inputs(inputs: Mapping[str, Any], contract: Mapping[str, Any] | None) -> dict[str, Any]:
    properties: Mapping[str, Any] = (contract or {}).get("properties") or {}
    out: dict[str, Any] = {k: p["default"] for k, p in properties.items() if "default" in p and k not in PLUMBING}
    for key, value in inputs.items():
        if key in PLUMBING or key in RUNTIME:
            continue
        out[key] = value
    for key, value in list(out.items()):
        # JSON settings compare as data: a YAML mapping equals the JSON string the server stores,
        # and the object form the server hands back.
        if is_json_string_field(properties.get(key)) or key not in properties:
            out[key] = _parse_json_setting(value)
    result: dict[str, Any] = canonical_value(out)
    return result


def wire_inputs(inputs: Mapping[str, Any], contract: Mapping[str, Any] | None) -> dict[str, Any]:
    """Inputs as the API wants them: JSON-string settings given as mappings are encoded."""
    properties: Mapping[str, Any] = (contract or {}).get("properties") or {}
    out = {}
    for key, value in inputs.items():
        if is_json_string_field(properties.get(key)) and isinstance(value, (dict, list)):
            value = json.dumps(value)
        out[key] = value
    return out


# By contract object: a run reads each contract once and keeps it, so its identity is the key (the
# contract is kept beside its validator, so an id is never reused while it is a key here).
_validators: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}


def _inputs_validator(contract: Mapping[str, Any]) -> Draft202012Validator:
    """The contract without its plumbing (connection, credential): those come from the manifest's
    connection and credentialRef, and are checked there."""
    cached = _validators.get(id(contract))
    if cached is None or cached[0] is not contract:
        from jsonschema import Draft202012Validator  # only online checks need it: validate starts without

        schema = copy.deepcopy(dict(contract))
        schema.pop("required", None)
        schema.pop("allOf", None)
        schema["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in PLUMBING}
        cached = _validators[id(contract)] = (contract, Draft202012Validator(schema))
    return cached[1]


# -- apply helpers --------------------------------------------------------------------------------------


def connector_of(app_id: str) -> str:
    """The connector of a connection minted for an app whose manifest names none: the app id without
    the ``atlan-`` prefix and the role suffix (``atlan-mysql``: mysql, ``snowflake-miner``:
    snowflake, ``postgres-crawler``: postgres). Apps named otherwise (``Kafka-apache`` is
    apache-kafka) need ``connection.connector``."""
    name = app_id.lower().removeprefix("atlan-")
    for role in ("-crawler", "-miner", "-lineage", "-extractor"):
        if name.endswith(role) and len(name) > len(role):
            return name[: -len(role)]
    return name


def _connection(change: Change, ops: Applier, base: Mapping[str, Any] | None) -> dict[str, Any]:
    after = change.after or {}
    wanted = after.get("connection") or {}
    entity: dict[str, Any] = copy.deepcopy(dict(base)) if base else {"typeName": "Connection", "attributes": {}}
    attributes: dict[str, Any] = entity.setdefault("attributes", {})
    if not attributes.get("qualifiedName"):
        connector = change.settings.connector or connector_of(str(after.get("appId", "")))
        attributes["qualifiedName"] = change.settings.connection_qualified_name or f"default/{connector}/{int(time.time())}"
    attributes.setdefault("connectorName", attributes["qualifiedName"].split("/")[1])
    attributes["name"] = wanted.get("name")
    role_guids = {name: guid for guid, name in ops.live.context.role_names.items()}
    for admins in ADMINS:
        if admins in wanted:
            names = wanted[admins]
            attributes[admins] = [role_guids.get(n, n) for n in names] if admins == "adminRoles" else list(names)
    return entity


def _sync(change: Change, ops: Applier, slug: str, version: Any, known: Any, source: str | None) -> Outcome | None:
    """Sync the schedules, record the app, and say how it went (None: an unchanged app)."""
    key = change.key
    if ops.record(key).get("slug") != slug:
        ops.amend(key, slug=slug)
    schedules, problems = _sync_schedules(change, ops, slug, version, known, source)
    fresh = ops.with_lifecycle({**ops.record(key), "slug": slug, "schedules": schedules}, change)
    if fresh != ops.record(key):
        ops.put(key, fresh)
    if problems:
        return Outcome(change, Status.UNVERIFIED, "; ".join(problems))
    return None if change.action is Action.NOOP else Outcome(change, Status.APPLIED)


def _sync_schedules(change: Change, ops: Applier, slug: str, version: Any, known: Any,
                    source: str | None) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """Make the attached schedules the declared ones, each bound to the app's latest version.

    ``known``: the triggers seen through the API (``source`` "api") or recorded ("state");
    None when nobody can know them, and then nothing is attached (unless the plan adopts them)
    and the record keeps saying "unknown". A schedule attached to an older version fires that
    version, so it is removed and added again. Returns the triggers now attached (None:
    still unknown) and what could not be verified.

    Every add is write-ahead: an intent is recorded before the POST and replaced by the
    trigger id after it. An intent left by a lost answer (or a kill) stands for its schedule:
    it is never attached again until ``reconciler state resolve`` settles it, unless the API
    shows the triggers, which settles it here.
    """
    key, after = change.key, change.after or {}
    intents = [i for i in ops.record(key).get("intents") or [] if i.get("action") == "schedule"]
    if intents and source == "api":
        others = [i for i in ops.record(key).get("intents") or [] if i.get("action") != "schedule"]
        ops.amend(key, intents=others or None)
        intents = []
    if known is None and "schedules" in after and ops.plan.adopt_schedules:
        known = []
    if known is None or "schedules" not in after:
        return (None if known is None else [dict(s) for s in known]), []
    wanted = [canonical_json(s) for s in after.get("schedules") or []]
    problems = []
    for intent in intents:
        canon = canonical_json(canonical_schedule(intent))
        if canon in wanted:
            wanted.remove(canon)
        else:
            problems.append(f"schedule {intent.get('cron')!r} ({intent.get('timezone')}) is unverified and no longer "
                            f"declared; settle it with `reconciler state resolve {key}` so it can be removed")
    keep, stale = [], []
    for trigger in known:
        canon = canonical_json(canonical_schedule(trigger))
        current = version is None or trigger.get("version") in (None, version)
        if canon in wanted and current:
            wanted.remove(canon)
            keep.append(dict(trigger))
        else:
            stale.append(dict(trigger))
    # Add first, then remove: a crash in between leaves an extra trigger on record (removed by
    # the next run), never a missing one.
    for schedule in after.get("schedules") or []:
        canon = canonical_json(schedule)
        if canon not in wanted:
            continue
        wanted.remove(canon)
        cron, timezone = schedule["cron"], schedule.get("timezone") or "UTC"
        intent = ops.new_intent("schedule", cron=cron, timezone=timezone, version=version)
        ops.add_intent(key, intent)
        try:
            answer = ops.client.add_schedule(slug, cron, timezone)
        except ApiError as exc:
            if exc.outcome_unknown:
                problems.append(f"schedule {cron!r} ({timezone}) may or may not be attached ({exc.server_message}); "
                                "it is recorded as an unverified intent")
                continue
            ops.settle_intent(key, intent["id"])
            raise
        keep.append({"trigger_id": answer["trigger_id"], "cron": cron, "timezone": timezone, "version": version})
        ops.settle_intent(key, intent["id"], schedules=keep + stale)
    while stale:
        trigger = stale.pop()
        with contextlib.suppress(NotFoundError):  # already gone
            ops.client.remove_schedule(slug, str(trigger["trigger_id"]))
        ops.amend(key, schedules=keep + stale)
    return keep, problems


KIND = AppKind()
