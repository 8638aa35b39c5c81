"""The sandbox tenant: a faithful emulator of the Atlan tenant API (see ATLAN_API.md) served over
real HTTP on 127.0.0.1. It is the embedded default for users trying the tool and the server every
test runs against.

Modules: ``catalogue`` (apps, input contracts, seeded legacy templates, roles), ``store`` (state
and persistence), ``apps`` / ``credentials`` / ``legacy`` (the API), ``search`` (the index-search
subset), ``faults`` (latency, faults, rate limit), ``server`` (HTTP, auth, introspection).

Choices made where ATLAN_API.md says the real server's behaviour is unknown [?]:

* Errors: every error body is a JSON object with ``code`` and ``message``; field-level problems
  are listed in ``causes: [{errorType, errorMessage, location}]`` with ``location`` such as
  ``inputs.include_filter``. Contract violations are 400. The one exception is the duplicate-name
  409 on App create, which carries no code key (as the real server, §2.4).
* Unknown or empty entrypoint: 400 ``{"code": 1003, "message": "unknown entrypoint … (1003)"}``,
  on create, update and ``GET v1/apps/{id}/inputs``. An app with no native contract answers 404
  on ``inputs`` (``tableau-crawler`` in the catalogue).
* ``credential`` is not a declared contract property; it is recognised by shape on create *and*
  update and vaulted into a new credential record (so a raw credential on update rotates the
  guid). The issued guid goes in ``credential_guid`` and on
  ``connection.attributes.defaultCredentialGuid``. A non-empty ``credential_guid`` must name an
  existing credential. On update, ``credential_guid: ""`` keeps the stored credential, unless the
  connection carries a different ``defaultCredentialGuid``: that switches to it (and the stored
  ``credential_guid`` becomes ""). Contracts reject unknown input keys (``additionalProperties: false``).
* JSON-string fields are declared ``type: string`` with ``contentMediaType: application/json``
  and must hold valid JSON. On read, ``control_config`` (and Snowflake's ``asset_selection``) come
  back parsed as objects; the include/exclude filters come back as the strings they were.
* ``GET v1/app/{slug}`` and list items return ``slug, name, version, owner, app_id, entrypoint,
  created_at, updated_at`` and ``dag.extract.inputs.{app_id, args}`` plus ``dag.publish``; no
  top-level ``inputs``. ``version`` is the epoch second of the change, bumped by at least one on
  every update.
* List: ordered by creation; ``limit`` defaults to 50 and is clamped to 200; ``cursor`` is an
  opaque token naming the last item of the previous page (an invalid cursor is 400).
* Archived (deleted) workflows disappear from the list and answer 404; their name is free for
  reuse and their schedules are removed. Deleting twice is 404.
* Unknown slug, run id or trigger id: 404 with ``code`` and ``message``.
* Submit: the first status is ``Pending``; ``started_at`` is ISO-8601 UTC. A run stays Pending
  for ``run_pending_s``, Running for ``run_running_s``, then Succeeded, or Failed with probability
  ``run_failure_rate``. ``Error``, ``Paused``, ``Terminated`` and ``Skipped`` are never produced.
  Submit while Pending/Running: 500 whose message names the active run.
* Cancel of a terminal run: 200 ``{"cancelled": false, "status": <current>}``.
* Schedules: bound to the version current when attached; an update does not move them, so they
  keep firing the old version (introspection shows it). ``schedules`` is absent from get/list
  unless ``expose_schedules`` is on. A null timezone is 400 on both the schedule endpoint and in
  the create body; an omitted one means UTC. Crons are five fields or ``@daily``-style macros.
* Credentials: ``GET`` returns neither ``username`` nor ``password``, nor ``extra`` keys that look
  secret (containing password, secret, private_key, passphrase, token, credentials_json).
  ``testCredential`` accepts ``true``/``false`` in any case (also ``"True"`` as requests sends it)
  and defaults to true; a failing test on create is 400. Update keeps the fields and secrets its
  body leaves out and bumps the string ``version``. List: ``limit`` default 100 (max 500),
  ``offset`` default 0, archived excluded, ``totalRecord``/``filterRecord`` included. Names need
  not be unique. Archive answers ``{"id", "isActive": false, "message"}``; the guid is then 404.
  A credential "fails" its test when it matches one of the matchers set through
  ``POST /_sandbox/failing-credentials``, or is ``basic`` without username and password.
* Legacy: ``workflows/{name}`` accepts the whole search ``_source`` (``status`` is ignored;
  server-owned metadata is kept; ``resourceVersion`` and ``generation`` bump). The schedule lives
  in annotations and is exposed as a ``<name>-cron`` object while the annotation is present.
  Stopped runs are reported as ``Failed`` with a message. Runs of one template may overlap (Argo).
  Archive answers ``{"name", "archived": true, "message"}``. Search indexes are named
  ``atlan-workflow-templates`` and ``atlan-workflow-runs``.
* ``whoami`` reports the ``$api-token-default-access`` role, so SDK clients use ``workflows/…``.
* Index search: ``from`` and ``size`` must be JSON integers from 0 to 10,000 (null or absent:
  0 and 10) and ``from + size`` at most 10,000, Elasticsearch's default
  ``index.max_result_window``; anything else is 400 naming the field and what was sent. A
  malformed clause (``bool`` that is not an object, ``minimum_should_match: "75%"``) is 400.
* Bad requests, checked in this order so that a client without the token costs nothing: a path
  outside ``/api/service/`` is 404; a missing or wrong token is 401 (compared in constant time),
  answered before the body is read, and it neither takes a rate-limit token nor gets latency or an
  injected fault; a chunked body is 411; a ``Content-Length`` that is not one plain number is 400;
  a body over ``max_body_bytes`` (10 MiB) is 413, unread. "100 Continue" is sent only after those
  checks. A request still unanswered at that point with its body unread ends its connection
  (``Connection: close``). JSON (a body, a JSON-string field, the ``filter`` parameter) that
  nests deeper than 128 levels is 400. A request line, headers and body must all arrive within
  ``read_timeout_s`` (30 s) of the server starting to wait for them: a stalled body is answered
  408; stalled headers, and idle kept-alive connections, are closed. http.server's own refusals
  (414, 431, 501 for an unserved method) are JSON too. An unexpected error in a handler is a 500
  naming it, never a dropped connection.

Test-only introspection (same bearer token, never faulted): ``GET /_sandbox/state`` (everything,
attached schedules and vaulted secrets included), ``GET /_sandbox/stats`` (requests per
``METHOD route-template``, statuses, injected faults), ``GET|POST /_sandbox/config`` (change
faults, latency and run timing at run time), ``POST /_sandbox/reset``, ``POST
/_sandbox/failing-credentials``, ``POST /_sandbox/seed`` (insert workflows directly, duplicate
names allowed), ``POST /_sandbox/flush``. In-process tests can also drive time: run progress
and timestamps follow ``sandbox.store.clock``, which a ``store.ManualClock`` replaces, so a test
moves runs along with ``clock.advance(seconds)`` instead of sleeping.
"""

from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.server import Sandbox

__all__ = ["Sandbox", "SandboxConfig"]
