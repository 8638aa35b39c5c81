"""The sandbox tenant: a faithful emulator of the Atlan tenant API (see ATLAN_API.md) served over
real HTTP on 127.0.0.1. It is the embedded default for users trying the tool and the server every
test runs against.

Modules: ``catalogue`` (apps, input contracts, seeded legacy templates, roles, users, groups),
``store`` (state and persistence), ``apps`` / ``credentials`` / ``directory`` / ``legacy`` (the
API), ``assets`` (asset search under ``/api/meta/``: connections and App runs), ``search`` (the
index-search subset) and ``dates`` (its date ranges), ``faults`` (latency, faults, rate limit),
``server`` (HTTP, auth, introspection).

The apps: every app id the official SDK (pyatlan) has a typed builder for, with an input
contract derived from what that builder sends, from ``catalogue_sdk.py``, a module generated
from the installed SDK and committed (the sandbox never imports the SDK). Regenerate it after
upgrading pyatlan with ``python -m reconciler.sandbox.generate_catalogue`` (``--check`` to only
compare); ``catalogue`` says which contracts are kept by hand instead and why.

Where the SDK (pyatlan 11.6) contradicts ATLAN_API.md, the sandbox follows the SDK:

* §2.3 says ``inputs`` go out as ``AppInput.to_inputs()`` (``exclude_none``) and that with an
  agent no ``credential_guid`` is sent. But ``AppClient.create`` and ``update`` are wrapped in
  pydantic's ``validate_arguments``, which turns a builder's Inputs model into a plain dict before
  ``to_inputs()`` runs: every unset ``Optional`` goes out as ``null`` (``agent_json: null`` in
  direct mode, ``credential_guid: null`` with an agent, Kafka Confluent's
  ``include_cloud_metrics``). Contracts accept those nulls; a direct-mode ``credential_guid`` must
  still be a string. (The keys are still the snake_case field names; ``preview()`` shows no nulls.)
* §2.2 says object-valued settings are declared as strings holding JSON. Several builders send
  objects: Databricks' ``include_filter``/``exclude_filter`` (a hidden ``{}`` default, hierarchies
  from ``asset_selection``) and ``sql_warehouse`` (default ``{}``); the ``Dict`` filters of Anaplan,
  Metabase, Redash and Knowledge Catalog (default ``{}``); Power BI's ``odbc_dsn_config_mapping``.
  Those are declared ``object`` (or string-or-object). SnowflakeCrawler's filter setters also
  forward a mapping unencoded, but the hand-written Snowflake contract keeps §2.2's JSON strings
  (and the SDK generator's own note says such fields take a string or an array).
* §2.1 shows named entrypoints. 15 SDK apps have none (``_ENTRYPOINT = ""``, e.g. ``atlan-mysql``,
  ``atlan-dbt``, ``atlan-tableau``): describe lists ``entrypoints: []``, the contract sits at the
  default slot, and the builders omit ``entrypoint``.
* §3.2 says ``GET credentials/{guid}`` returns no ``username``, after ``CredentialClient.get``'s
  docstring ("never ... usernames, passwords"). The rest of the SDK says otherwise:
  ``CredentialResponse`` types ``username``, ``to_credential()`` copies it and says only the
  password "must still be populated manually", and the docs' fixture carries ``"username": "u"``.
  The sandbox returns ``username`` (on get, list, create and update), so the SDK's
  ``get → to_credential() → set password → test_and_update`` round trip keeps the username, and a
  client that prints what it reads is caught printing it; ``password`` and secret-looking ``extra``
  keys are never returned.
* The legacy LineageBuilder (pyatlan 10, the last release with ``client.workflow``) sends
  snake_case parameters (``lineage_prefix``, ``cloud_source``) with typed values (booleans and
  numbers as JSON, not strings), and ``cloud_source: "{{credentialGuid}}"`` that the server fills
  with the guid it vaulted from the payload; the seeded ``csa-lineage-builder-1716000000`` is what
  that builder creates (it was kebab-case, with the placeholder left in).
* ``WorkflowUpdateOwner`` names its ``{"username": …}`` query parameters, but the client sends
  them as the request body: both are accepted.
* App ids are not all lower case: the SDK's Kafka apps are ``Kafka-apache`` and
  ``Kafka-confluent``.
* "true"/"false" toggle strings (§2.2: "some CloudSQL/AlloyDB toggles") are common: Athena,
  Postgres, Databricks, Redash, Teradata, Oracle, Power BI, CSA export, Snowflake Miner's hidden
  defaults. Teradata Miner's ``miner_start_time_epoch`` is typed ``str`` but its default goes out
  as the integer ``0``; its contract takes both.
* §4.4 says an update carries no ``payload``. That holds for a search hit's ``to_workflow()``, but
  ``WorkflowClient.update`` sends whatever Workflow it is given: a builder's ``to_workflow()``
  carries ``payload`` and ``{{credentialGuid}}``. The update route vaults it as create does.

Choices made where ATLAN_API.md says the real server's behaviour is unknown [?]:

* Errors: every error body is a JSON object with ``code`` and ``message``; field-level problems
  are listed in ``causes: [{errorType, errorMessage, location}]`` with ``location`` such as
  ``inputs.include_filter``. Contract violations are 400. The one exception is the duplicate-name
  409 on App create, which carries no code key (as the real server, §2.4).
* Unknown or empty entrypoint: 400 ``{"code": 1003, "message": "unknown entrypoint … (1003)"}``,
  on create, update and ``GET v1/apps/{id}/inputs``; an omitted one is the app's default (for an
  app without named entrypoints, its only contract). An app with no native contract answers 404
  on ``inputs`` and describes itself with ``native_ready: false`` and no ``execution_mode`` or
  ``app_service_url`` (the value a non-native app reports is unknown): ``tableau-crawler``, a
  sandbox-only id kept as the example.
* ``credential`` is not a declared contract property; it is recognised by shape on create *and*
  update and vaulted into a new credential record (so a raw credential on update rotates the
  guid). The issued guid goes in ``credential_guid`` and on
  ``connection.attributes.defaultCredentialGuid``. A non-empty ``credential_guid`` must name an
  existing (not archived) credential, and so must a named credential field (dbt's
  ``api_credential_guid``, which the SDK vaults through the Credentials API before the create, not
  by shape) and the connection's ``defaultCredentialGuid`` (unless a raw ``credential`` replaces
  it): otherwise 400 with a cause whose ``location`` names the field (e.g.
  ``inputs.connection.attributes.defaultCredentialGuid``), on create and update. On update, ``credential_guid: ""`` keeps the stored credential, unless the
  connection carries a different ``defaultCredentialGuid``: that switches to it (and the stored
  ``credential_guid`` becomes ""). Contracts reject unknown input keys (``additionalProperties: false``).
* JSON-string fields are declared ``type: string`` with ``contentMediaType: application/json``
  and must hold valid JSON. On read, ``control_config`` (and Snowflake's ``asset_selection``) come
  back parsed as objects, Standard Lineage's ``cross_connection_qualified_names`` as a list; the
  include/exclude filters come back as the strings they were.
* ``GET v1/app/{slug}`` and list items return ``slug, name, version, owner, app_id, entrypoint``
  (left out for an app without named entrypoints), ``created_at, updated_at`` and ``dag.extract.inputs.{app_id, args}`` plus ``dag.publish``; no
  top-level ``inputs``. ``version`` is the epoch second of the change, bumped by at least one on
  every update.
* List: ordered by creation; ``limit`` defaults to 50 and is clamped to 200; ``cursor`` is an
  opaque token naming the last item of the previous page (an invalid cursor is 400).
* Archived (deleted) workflows disappear from the list and answer 404; their name is free for
  reuse and their schedules are removed. Deleting twice is 404.
* Unknown slug, run id or trigger id: 404 with ``code`` and ``message``.
* Submit: the first status is ``Pending``; ``started_at`` is ISO-8601 UTC. A run stays Pending
  for ``run_pending_s``, Running for ``run_running_s``, then Succeeded, or Failed with probability
  ``run_failure_rate``. A run uses the credentials its version names (``credential_guid``, named
  credential fields, the connection's ``defaultCredentialGuid``); if one of them is deleted
  (archived) or fails its test (see the failing-credentials matchers below) *at the moment the run
  ends*, it ends ``Failed``, so a credential purged while the run is in flight fails it. A Failed
  run's answer carries ``message`` saying why (``AppRunResponse`` has no such field; the SDK
  ignores it). ``Error``, ``Paused``, ``Terminated`` and ``Skipped`` are never produced.
  Submit while Pending/Running: 500 whose message names the active run.
* Cancel of a terminal run: 200 ``{"cancelled": false, "status": <current>}``.
* Schedules: bound to the version current when attached; an update does not move them, so they
  keep firing the old version (introspection shows it). ``schedules`` is absent from get/list
  unless ``expose_schedules`` is on. A null timezone is 400 on both the schedule endpoint and in
  the create body; an omitted one means UTC. Crons are five fields or ``@daily``-style macros.
* Credentials: ``GET`` returns neither ``password`` nor ``extra`` keys that look secret
  (containing password, secret, private_key, passphrase, token, credentials_json); it does return
  ``username`` (see above).
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
  A run uses the credentials its template's parameters name when it is submitted (a guid value, as
  ``credential-guid`` or the lineage builder's ``cloud_source``, or a connection JSON's
  ``defaultCredentialGuid``) and ends ``Failed`` with ``status.message`` saying why, as an App run
  does, when one is deleted or failing as it ends. A guid this tenant never issued is taken to exist
  (the seeded UI templates name credentials vaulted before the sandbox's time).
  Archive answers ``{"name", "archived": true, "message"}``. Search indexes are named
  ``atlan-workflow-templates`` and ``atlan-workflow-runs``.
* ``whoami`` reports the ``$api-token-default-access`` role, so SDK clients use ``workflows/…``;
  it has a guid of its own (it borrowed ``$admin``'s once) and is not a workspace role, so
  ``GET roles`` does not list it.
* ``Retry-After`` is whole seconds: a fractional ``retry_after_s`` is rounded up (0.5 s is sent
  as 1, never as 0, which would say "at once").
* Index search: ``from`` and ``size`` must be JSON integers from 0 to 10,000 (null or absent:
  0 and 10) and ``from + size`` at most 10,000, Elasticsearch's default
  ``index.max_result_window``; anything else is 400 naming the field and what was sent. A
  malformed clause (``bool`` that is not an object, ``minimum_should_match: "75%"``) is 400.
  ``range`` on a date is Elasticsearch's (date math on the sandbox's clock, rounding, formats,
  ``time_zone``; see ``search``), as the real index evaluates it.
* Bad requests, checked in this order so that a client without the token costs nothing: a path
  outside ``/api/service/`` and ``/api/meta/`` is 404; a missing or wrong token is 401 (compared
  in constant time), answered before the body is read, and it neither takes a rate-limit token nor
  gets latency or an injected fault; a chunked body is 411; a ``Content-Length`` that is not one plain number is 400;
  a body over ``max_body_bytes`` (10 MiB) is 413, unread. "100 Continue" is sent only after those
  checks. A request still unanswered at that point with its body unread ends its connection
  (``Connection: close``). JSON (a body, a JSON-string field, the ``filter`` parameter) that
  nests deeper than 128 levels is 400. A request line, headers and body must all arrive within
  ``read_timeout_s`` (30 s) of the server starting to wait for them: a stalled body is answered
  408; stalled headers, and idle kept-alive connections, are closed. http.server's own refusals
  (414, 431, 501 for an unserved method) are JSON too. An unexpected error in a handler is a 500
  naming it, never a dropped connection.

Ids: slugs, workflow ids, run ids and names, trigger ids, credential guids and template uids come
from a generator seeded with ``seed`` (``--seed``), so a run is repeatable. Started on an existing
state file, the generator is seeded with the seed *and* a digest of the stored state (the same seed
would otherwise replay the first life's ids and overwrite its records), and an id already in use is
skipped: for one seed and one state file the ids are the same every time, and never a stored one.

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
