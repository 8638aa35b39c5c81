"""Every default a user can override, defined once (the CLI's options, reconciler.yaml and the
engine all read them from here)."""

from __future__ import annotations

PARALLELISM = 8  # concurrent API calls, when neither --parallelism nor reconciler.yaml says
MAX_DELETES = 10  # an apply that would delete more is refused as a whole
MAX_PLAN_AGE = 24 * 3600.0  # seconds after which a saved plan is refused as too old
LOCK_TIMEOUT = 60.0  # seconds to wait for the state file's lock (0 when $CI is set: fail at once)
WAIT_TIMEOUT = 1800.0  # seconds `apply --wait` follows the runs it submitted
API_KEY_ENV = "ATLAN_API_KEY"  # the environment variable that holds the API key
STATE_FILE = "reconciler.state.json"  # beside reconciler.yaml: committed with the manifests
