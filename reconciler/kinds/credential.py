"""Credential: a vaulted connection secret (``/api/service/credentials``).

Secrets are write-only: the manifest names them as ``${env:NAME}``, apply reads them from the
environment when it sends them, and only a keyed fingerprint is recorded, to detect rotations.
Every create or update is tested by the tenant first; a failed test stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

from reconciler.errors import ApiError, ConflictError, ReconcilerError
from reconciler.kinds import Fetched, FetchScope, Kind
from reconciler.model import Resource, ResourceKey
from reconciler.normalize import Context, canonical_value, fingerprint
from reconciler.outcomes import Outcome, Status
from reconciler.plan import Action, Change

if TYPE_CHECKING:
    from reconciler.apply import Applier
    from reconciler.client import ApiClient

# The non-secret fields of a credential, as the API and the manifest name them; all but the
# first and fourth are optional (compared only when declared).
FIELDS = ("connector", "connectorConfigName", "connectorType", "authType", "description", "host", "port")
OPTIONAL = ("connectorConfigName", "connectorType", "description", "host", "port")


LISTING_ATTEMPTS = 3


def every_credential(client: ApiClient, pool: Executor, first: Future[tuple[list[dict[str, Any]], int | None]]
                     ) -> list[dict[str, Any]]:
    """Every credential, in list order. The first page tells how many there are and how many a
    page holds; the other pages are then read at once, concurrently (on ``pool``; the caller is
    not one of its workers). Pages by offset shift when the list changes while it is read, which
    would hide a credential (and a plan would create it again): the listing is read again until
    the records found are exactly as many as the tenant counts, each once."""
    for attempt in range(LISTING_ATTEMPTS):
        page, total = first.result() if attempt == 0 else client.credential_page(0)
        if total is None or (total and not page):  # no count to go by: one page after another
            return _distinct(list(client.list_credentials()))
        step = len(page)  # what the tenant serves in a page (it may clamp the size asked for)
        rest = [pool.submit(client.credential_page, offset) for offset in range(step, total, step)] if step else []
        pages = [page, *(f.result()[0] for f in rest)]
        records = _distinct([r for p in pages for r in p])
        if len(records) == total == sum(map(len, pages)):
            return records
    raise ReconcilerError(f"the tenant's credential list changed each of the {LISTING_ATTEMPTS} times it was read",
                          hint="Another client is creating or deleting credentials; run the command again.")


def _distinct(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        seen.setdefault(str(record.get("id")), record)
    return list(seen.values())


class CredentialKind(Kind):
    kind = "Credential"
    schema_file = "credential.schema.json"
    rank = 0
    secret_paths = ("username", "password")
    secret_maps = ("secretExtra",)
    secret_twins = (("extra", "secretExtra"),)
    immutable = ("connector",)
    declared_only = OPTIONAL

    # -- fetch ---------------------------------------------------------------------------------------

    def fetch(self, client: ApiClient, scope: FetchScope, pool: Executor) -> Callable[[], Fetched]:
        first = pool.submit(client.credential_page, 0)

        def finish() -> Fetched:
            records = every_credential(client, pool, first)
            return Fetched(objects=[(resource(r), str(r.get("id"))) for r in records],
                           context={"credential_names": {str(r.get("id")): str(r.get("name")) for r in records}})
        return finish

    # -- normalize -------------------------------------------------------------------------------------

    def canonical(self, spec: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        out: dict[str, Any] = {"connector": spec.get("connector"), "authType": spec.get("authType")}
        for key in OPTIONAL:
            if spec.get(key) is not None:
                out[key] = spec[key]
        out["extra"] = canonical_value(dict(spec.get("extra") or {}))
        return out

    # -- apply ---------------------------------------------------------------------------------------

    def apply(self, change: Change, ops: Applier) -> Outcome | None:
        key, after = change.key, dict(change.after or {})
        record = ops.record(key)
        live = ops.live.state.get(key)
        secrets = ops.secrets(change)
        fingerprint_ = ops.secret_fingerprint(secrets) if secrets else None
        if change.action is Action.NOOP and (not secrets or record.get("secretFingerprint") == fingerprint_):
            ops.remember(key, {**record, "guid": live.server.get("guid") if live else record.get("guid")}, change)
            return None
        from reconciler.client import credential_test_passed  # the network layer: loaded when applying

        body = wire_body(key.name, after, secrets)
        verdict = ops.client.test_credential(body)
        if not credential_test_passed(verdict):
            return Outcome(change, Status.FAILED, f"credential test failed: {verdict.get('error') or verdict.get('message')}")
        if change.action is Action.REPLACE and live is not None:
            ops.client.archive_credential(str(live.server["guid"]))
            ops.put(key, None)
            live, record = None, {}
        if live is None:
            # Write-ahead, as for apps: a kill right after the create leaves a record to find it by.
            if not record:
                ops.put(key, ops.with_lifecycle({}, change))
            try:
                guid = create(ops.client, key.name, body)
            except ApiError as exc:
                if not record and not exc.outcome_unknown:
                    ops.put(key, None)  # nothing was created: no record of it either
                raise
        else:
            guid = str(live.server["guid"])
            ops.client.update_credential(guid, body)
        ops.set_id(key, guid)
        ops.put(key, ops.with_lifecycle({"guid": guid, "secretFingerprint": fingerprint_}, change))
        return Outcome(change, Status.APPLIED, "secrets recorded" if change.action is Action.NOOP else "")

    exportable = True
    unseen = ("Credential secrets changed in Atlan cannot be seen: the API never returns them, so a rotation is found only "
              "by comparing the environment's values with those last applied")

    def export_spec(self, live: Resource, ctx: Context, ref: Callable[[str, str], str],
                    record: Mapping[str, Any]) -> dict[str, Any]:
        spec = live.spec
        # What apply sends for a field the manifest leaves out (the UI's defaults): left out here too.
        implied = wire_body(live.key.name, {"connector": spec.get("connector")}, {})
        out: dict[str, Any] = {"connector": spec.get("connector"), "authType": spec.get("authType")}
        for name in FIELDS:
            if name not in out and spec.get(name) is not None and spec[name] != implied.get(name):
                out[name] = spec[name]
        if spec.get("extra"):
            out["extra"] = dict(spec["extra"])
        return out

    def export_record(self, live: Resource, record: Mapping[str, Any]) -> dict[str, Any]:
        return {**record, "guid": live.server.get("guid")}

    def delete(self, change: Change, live: Resource, ops: Applier) -> None:
        ops.client.archive_credential(str(live.server["guid"]))


def resource(record: Mapping[str, Any]) -> Resource:
    """A credential as the API lists it → manifest-shaped Resource (no secret: the API has none)."""
    spec = {k: record[k] for k in FIELDS if record.get(k) is not None}
    spec["extra"] = dict(record.get("extra") or {})
    server = {"id": record.get("id"), "guid": record.get("id"), "version": record.get("version"),
              "fingerprint": fingerprint(record)}
    return Resource(key=ResourceKey("Credential", str(record.get("name"))), spec=spec, server=server)


def wire_body(name: str, after: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    """The create/update/test body: the canonical fields, the defaults the UI fills in, and the
    secrets read from the environment just now."""
    connector = str(after.get("connector"))
    ui_defaults = {"connectorConfigName": f"atlan-connectors-{connector}", "connectorType": connector}
    body: dict[str, Any] = {"name": name, "connector": connector, "authType": after.get("authType")}
    for optional in OPTIONAL:
        value = after.get(optional)
        if not value and optional in ui_defaults:
            value = ui_defaults[optional]
        if value is not None:
            body[optional] = value
    body["extra"] = {**(after.get("extra") or {}),
                     **{p.split(".", 1)[1]: v for p, v in secrets.items() if p.startswith("secretExtra.")}}
    body.update({p: v for p, v in secrets.items() if "." not in p})
    return body


def create(client: ApiClient, name: str, body: dict[str, Any]) -> str:
    """Create a credential without ever creating it twice: when the answer is lost, look it up
    by name; one found is ours (adopted), none found proves the create did nothing (sent again)."""
    for attempt in range(3):
        try:
            return str(client.create_credential(body, test=False)["id"])
        except ApiError as exc:
            if not exc.outcome_unknown or attempt == 2:
                raise
            found = [c for c in client.list_credentials({"name": name}) if c.get("name") == name]
            if len(found) == 1:
                return str(found[0]["id"])
            if len(found) > 1:
                raise ConflictError(f"{len(found)} credentials are named {name!r} after a create whose answer was lost",
                                    status=None, method=exc.method, url=exc.url,
                                    hint="Archive the duplicates in Atlan, then run again.") from exc
    raise AssertionError("unreachable")


KIND = CredentialKind()
