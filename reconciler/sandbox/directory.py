"""Users, groups and API tokens of the sandbox tenant (ATLAN_API §4b): what the official SDK's
user, group and token clients read, and through them its caches (``user_cache``,
``group_cache``) that a package builder given ``admin_users`` or ``admin_groups`` checks names
with.

* ``GET users`` and ``GET v2/groups``: ``{totalRecord, filterRecord, records}`` pages by
  ``limit``/``offset`` (default 20 and 0), with the list endpoints' ``filter`` (``$ilike``,
  ``$like``, ``$in``, ``$ne``) and ``sort`` (a field, ``-`` first for descending); ``columns`` is
  accepted and every column is returned.
* ``GET users/current``: the API token's service account, as ``UserMinimalResponse``.
* ``GET apikeys``: the tenant's API tokens, filtered the same way (the SDK's user cache asks it
  for a name that is not a user).

The directory is fixed (``catalogue.USERS``, ``GROUPS``, ``API_TOKENS``): the reconciler manages
none of it, and no test needs to change it. Choices where the real server's behaviour is unknown
[?]: the records carry the fields the SDK's models type; ``totalRecord`` counts the whole list,
``filterRecord`` what the filter kept.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from reconciler.sandbox import catalogue
from reconciler.sandbox.routing import Request, Router, filter_matches, int_param, list_filter

router = Router()


def _page(req: Request, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    flt = list_filter(req)
    limit = int_param(req.params, "limit", 20, minimum=1)
    offset = int_param(req.params, "offset", 0)
    matched = [r for r in records if filter_matches(r, flt)]
    sort = req.params.get("sort")
    if sort:
        key = sort.lstrip("-")
        matched.sort(key=lambda r: str(r.get(key, "")), reverse=sort.startswith("-"))
    return {"totalRecord": len(records), "filterRecord": len(matched),
            "records": copy.deepcopy(matched[offset : offset + limit])}


@router.route("GET", "users")
def list_users(ctx: Any, req: Request) -> dict[str, Any]:
    return _page(req, catalogue.USERS)


@router.route("GET", "users/current")
def current_user(ctx: Any, req: Request) -> dict[str, Any]:
    user = catalogue.API_TOKEN_USER
    return {"id": user["id"], "username": user["username"], "firstName": user["firstName"],
            "lastName": user["lastName"], "email": None, "emailVerified": False, "enabled": True,
            "createdTimestamp": catalogue.DIRECTORY_CREATED_MS, "attributes": {}}


@router.route("GET", "v2/groups")
def list_groups(ctx: Any, req: Request) -> dict[str, Any]:
    return _page(req, catalogue.GROUPS)


@router.route("GET", "apikeys")
def list_api_tokens(ctx: Any, req: Request) -> dict[str, Any]:
    return _page(req, catalogue.API_TOKENS)


def username_known(username: str) -> bool:
    """A user of the directory, or an API token's service account."""
    return any(u["username"] == username for u in catalogue.USERS) or \
        any(f"service-account-{t['clientId']}" == username for t in catalogue.API_TOKENS)
