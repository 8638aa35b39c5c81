"""Credentials API (ATLAN_API §3), roles and whoami (§4b, §4.1) of the sandbox tenant.

Secrets (``password``, ``username`` and secret-looking ``extra`` keys) are kept in a separate
vault part of the record. ``password`` and the secret ``extra`` keys never leave the server through
the API; ``username`` is read back (the package docstring says why). Only ``/_sandbox/state`` shows
the vault, so tests can prove what was stored.

A run uses the credentials its workflow names; ``credential_problem`` says why one of them would
make the run fail (deleted, or failing its test). Anything that can change that answer (archive,
update, the failing-credentials matchers) first settles the runs that have already ended, so a
change never rewrites a finished run's outcome.
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.sandbox import catalogue
from reconciler.sandbox.routing import (
    HttpError,
    Request,
    Router,
    bad_request,
    filter_matches,
    int_param,
    list_filter,
    not_found,
    require_object,
)

router = Router()

# Keys inside `extra` that hold secrets: vaulted, never returned.
SECRET_EXTRA_MARKERS = ("password", "secret", "private_key", "passphrase", "token", "credentials_json")
SECRET_FIELDS = ("username", "password")
PUBLIC_FIELDS = (
    "name",
    "description",
    "host",
    "port",
    "authType",
    "connectorType",
    "connectorConfigName",
    "connector",
    "metadata",
    "level",
    "connection",
)


def is_secret_extra_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_EXTRA_MARKERS)


def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate a credential body into its public part and its secrets."""
    public = {k: copy.deepcopy(body[k]) for k in PUBLIC_FIELDS if k in body}
    secrets: dict[str, Any] = {k: body[k] for k in SECRET_FIELDS if k in body}
    extra = body.get("extra")
    if extra is not None:
        if not isinstance(extra, dict):
            raise bad_request("credential 'extra' must be a JSON object")
        public["extra"] = {k: v for k, v in extra.items() if not is_secret_extra_key(k)}
        secret_extra = {k: v for k, v in extra.items() if is_secret_extra_key(k)}
        if secret_extra:
            secrets["extra"] = secret_extra
    return public, secrets


def _check_body(body: dict[str, Any]) -> None:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("credential 'name' is required", causes=[_cause("name", "required")])
    if not isinstance(body.get("authType"), str) or not body["authType"]:
        raise bad_request("credential 'authType' is required", causes=[_cause("authType", "required")])
    port = body.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise bad_request("credential 'port' must be an integer from 1 to 65535", causes=[_cause("port", "invalid")])


def _cause(location: str, message: str) -> dict[str, Any]:
    return {"errorType": "ValidationError", "errorMessage": message, "location": location}


def _connector_of(public: dict[str, Any]) -> str | None:
    if public.get("connector"):
        return str(public["connector"])
    config = public.get("connectorConfigName") or ""
    if config.startswith("atlan-connectors-"):
        return config[len("atlan-connectors-") :]
    return public.get("connectorType")


def vault(store: Any, body: dict[str, Any], *, created_by: str) -> str:
    """Create a credential record from a raw credential body and return its guid.

    Used by the Credentials API and by App create, which vaults ``inputs.credential``.
    The caller holds the store's mutate lock.
    """
    _check_body(body)
    public, secrets = _split(body)
    guid = store.new_guid()
    now_ms = int(store.now() * 1000)
    record = {
        "id": guid,
        "version": "1.0.0",
        "isActive": True,
        "createdAt": now_ms,
        "updatedAt": now_ms,
        "createdBy": created_by,
        "tenantId": "default",
        "description": None,
        "metadata": None,
        "level": None,
        "connection": None,
        **public,
    }
    record["connector"] = _connector_of(record)
    store.data["credentials"][guid] = {"record": record, "secrets": secrets, "archived": False, "seq": store.next_seq()}
    return guid


def _active(data: dict[str, Any], guid: str) -> dict[str, Any]:
    entry = data["credentials"].get(guid)
    if entry is None or entry["archived"]:
        raise not_found(f"credential {guid!r}")
    return entry


def _public_view(entry: dict[str, Any]) -> dict[str, Any]:
    view = copy.deepcopy(entry["record"])
    if entry["secrets"].get("username") is not None:
        view["username"] = entry["secrets"]["username"]  # the less sensitive half: read back
    return view


def _full_body(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored credential as a test body: its public fields and its secrets."""
    body = {**entry["record"], **{k: v for k, v in entry["secrets"].items() if k != "extra"}}
    body["extra"] = {**(entry["record"].get("extra") or {}), **entry["secrets"].get("extra", {})}
    return body


def credential_problem(data: dict[str, Any], guid: str, *, unknown_ok: bool = False) -> str | None:
    """Why a run using credential ``guid`` fails now (None: it would not). ``unknown_ok``: a guid
    this tenant never issued is taken to exist (the seeded UI templates name credentials vaulted
    before the sandbox's time)."""
    entry = data["credentials"].get(guid)
    if entry is None:
        return None if unknown_ok else f"credential {guid} does not exist"
    if entry["archived"]:
        return f"credential {guid} was deleted (archived); the run cannot authenticate to the source"
    verdict = _test(data, _full_body(entry))
    if verdict["message"] != "successful":
        return f"credential {guid} failed its test: {verdict['error']}"
    return None


def _test(data: dict[str, Any], body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
    """The answer of POST credentials/test for a full credential body (secrets included)."""
    reason = None
    for matcher in data["settings"].get("failing_credentials", []):
        if all(body.get(k) == v for k, v in matcher.items() if not k.startswith("_")):  # "_reason" is not a field
            reason = matcher.get("_reason") or "authentication failed: the source rejected these credentials"
            break
    if reason is None and body.get("authType") == "basic" and not (body.get("username") and body.get("password")):
        reason = "basic authentication needs both a username and a password"
    if reason is None:
        return {"code": 200, "error": "", "info": {}, "message": "successful", "requestId": request_id}
    return {"code": 400, "error": reason, "info": {}, "message": "failed", "requestId": request_id}


def _bool_param(req: Request, name: str, default: bool) -> bool:
    raw = req.params.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise bad_request(f"query parameter {name!r} must be true or false, got {raw!r}")


@router.route("POST", "credentials")
def create_credential(ctx: Any, req: Request) -> dict[str, Any]:
    body = require_object(req.body, "credential body")
    test = _bool_param(req, "testCredential", True)
    with ctx.store.mutate() as data:
        _check_body(body)
        if test:
            result = _test(data, body)
            if result["message"] != "successful":
                raise HttpError(400, f"credential test failed: {result['error']}", code=400,
                                extra={"errorCause": result["error"]})
        guid = vault(ctx.store, body, created_by=catalogue.API_TOKEN_USER["username"])
        return _public_view(data["credentials"][guid])


@router.route("POST", "credentials/test")
def test_credential(ctx: Any, req: Request) -> dict[str, Any]:
    body = require_object(req.body, "credential body")
    with ctx.store.read() as data:
        return _test(data, body, req.headers.get("X-Atlan-Request-Id", ""))


@router.route("GET", "credentials/{guid}")
def get_credential(ctx: Any, req: Request, guid: str) -> dict[str, Any]:
    with ctx.store.read() as data:
        return _public_view(_active(data, guid))


@router.route("POST", "credentials/{guid}")
def update_credential(ctx: Any, req: Request, guid: str) -> dict[str, Any]:
    body = require_object(req.body, "credential body")
    if body.get("id") not in (None, guid):
        raise bad_request(f"credential id {body.get('id')!r} in the body does not match {guid!r} in the path")
    with ctx.store.mutate() as data:
        entry = _active(data, guid)
        merged = {**entry["record"], **{k: v for k, v in body.items() if k != "id"}}
        _check_body(merged)
        ctx.settle_runs()  # new fields or secrets may make this credential fail (or pass) its test
        public, secrets = _split(body)
        if "extra" in public:
            entry["record"]["extra"] = public.pop("extra")
        entry["record"].update(public)
        entry["record"]["connector"] = _connector_of(entry["record"])
        # Secrets the body leaves out are kept; the ones it carries replace the stored ones.
        for key in SECRET_FIELDS:
            if key in secrets:
                entry["secrets"][key] = secrets[key]
        if "extra" in secrets:
            entry["secrets"]["extra"] = secrets["extra"]
        major, minor, patch = (entry["record"]["version"].split(".") + ["0", "0"])[:3]
        entry["record"]["version"] = f"{major}.{minor}.{int(patch) + 1}"
        entry["record"]["updatedAt"] = int(ctx.store.now() * 1000)
        return _public_view(entry)


@router.route("POST", "credentials/{guid}/test")
def test_existing_credential(ctx: Any, req: Request, guid: str) -> dict[str, Any]:
    with ctx.store.read() as data:
        return _test(data, _full_body(_active(data, guid)))


@router.route("POST", "credentials/{guid}/archive")
def archive_credential(ctx: Any, req: Request, guid: str) -> dict[str, Any]:
    with ctx.store.mutate() as data:
        entry = _active(data, guid)
        ctx.settle_runs()  # runs that ended before the archive keep their outcome
        entry["archived"] = True
        entry["archivedAt"] = ctx.store.now()
        entry["record"]["isActive"] = False
        return {"id": guid, "isActive": False, "message": "credential archived"}


@router.route("GET", "credentials")
def list_credentials(ctx: Any, req: Request) -> dict[str, Any]:
    flt = list_filter(req)
    cfg = ctx.config
    limit = min(int_param(req.params, "limit", cfg.credential_list_default_limit, minimum=1), cfg.credential_list_max_limit)
    offset = int_param(req.params, "offset", 0)
    with ctx.store.read() as data:
        active = sorted((e for e in data["credentials"].values() if not e["archived"]), key=lambda e: e["seq"])
        matched = [e for e in active if filter_matches(e["record"], flt)]
        page = [_public_view(e) for e in matched[offset : offset + limit]]
    return {"records": page, "totalRecord": len(active), "filterRecord": len(matched)}


@router.route("GET", "roles")
def list_roles(ctx: Any, req: Request) -> dict[str, Any]:
    flt = list_filter(req)
    limit = int_param(req.params, "limit", 100, minimum=1)
    offset = int_param(req.params, "offset", 0)
    matched = [copy.deepcopy(r) for r in catalogue.ROLES if filter_matches(r, flt)]
    sort = req.params.get("sort")
    if sort:
        key = sort.lstrip("-")
        matched.sort(key=lambda r: str(r.get(key, "")), reverse=sort.startswith("-"))
    return {"totalRecord": len(catalogue.ROLES), "filterRecord": len(matched), "records": matched[offset : offset + limit]}


@router.route("GET", "whoami")
def whoami(ctx: Any, req: Request) -> dict[str, Any]:
    return copy.deepcopy(catalogue.API_TOKEN_USER)
