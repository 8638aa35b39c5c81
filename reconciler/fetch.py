"""The tenant → live State, fetched concurrently (bounded by ``parallelism``).

Takes an API client, the desired State and the state file's records; returns every live object
as a manifest-shaped ``Resource`` (with the server's facts and a fingerprint of the raw object in
``Resource.server``), the names that more than one live object carries, and the normalization
context (input contracts, role and credential names).

Every kind starts its reads at once on one pool (``Kind.fetch``), then each is waited for. The
calls, whatever the number of objects: the app list in pages of the largest size the API
serves (its items carry the rendered DAG, so no per-app GET unless an item lacks it), the
credential list by pages (the first tells how many, then the others at once), the roles once,
one describe and one input-contract fetch per distinct app id (cached for the run), and one
index search per legacy workflow named in the manifests or the records.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler import kinds
from reconciler.client import ApiClient
from reconciler.defaults import PARALLELISM
from reconciler.model import Resource, ResourceKey, State
from reconciler.normalize import Context


@dataclass
class Live:
    state: dict[ResourceKey, Resource]
    context: Context
    ambiguous: dict[ResourceKey, list[str]] = field(default_factory=dict)


def fetch(client: ApiClient, desired: State, *, recorded: Mapping[str, Mapping[str, Any]] | None = None,
          parallelism: int = PARALLELISM) -> Live:
    """``recorded``: the state file's records of this tenant, keyed "Kind/name"."""
    scope = kinds.FetchScope(desired, recorded or {})
    every = kinds.by_rank()
    # The calls share one pool; each kind waits for its own on a thread of its own, so that one
    # whose list comes back first goes on to its next calls (the app contracts) at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool, \
            concurrent.futures.ThreadPoolExecutor(max_workers=len(every)) as waiters:
        started = [kind.fetch(client, scope, pool) for kind in every]
        results = [f.result() for f in [waiters.submit(finish) for finish in started]]

    state: dict[ResourceKey, Resource] = {}
    ambiguous: dict[ResourceKey, list[str]] = {}
    context: dict[str, Any] = {}
    for result in results:
        context.update(result.context)
        for resource, identity in result.objects:
            if resource.key in state:
                ambiguous.setdefault(resource.key, [str(state[resource.key].server["id"])]).append(identity)
            else:
                state[resource.key] = resource
    for key in ambiguous:
        state.pop(key, None)
    return Live(state=state, context=Context(**context), ambiguous=ambiguous)
