"""Which tenant a command talks to: ATLAN_BASE_URL + the API key, or (with no ATLAN_BASE_URL)
the sandbox tenant started in-process on a free loopback port, its state kept under .reconciler/.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from pathlib import Path
from typing import Iterator

from reconciler.client import ApiClient
from reconciler.errors import UsageError

_announced = False


@contextlib.contextmanager
def connect(base_url: str | None = None, api_key_env: str = "ATLAN_API_KEY",
            state_dir: Path = Path(".reconciler")) -> Iterator[ApiClient]:
    """An API client for the chosen tenant, closed (and any embedded sandbox stopped) on exit."""
    base_url = base_url or os.environ.get("ATLAN_BASE_URL")
    if base_url:
        api_key = os.environ.get(api_key_env, "")
        if not api_key:
            raise UsageError(f"{api_key_env} is not set, so the tenant at {base_url} cannot be called",
                             hint=f"Export {api_key_env} with an API token of the tenant.")
        with ApiClient(base_url, api_key) as client:
            yield client
        return

    from reconciler.sandbox import Sandbox, SandboxConfig  # only needed without a real tenant

    state_file = state_dir / "sandbox.json"
    token = secrets.token_urlsafe(24)
    sandbox = Sandbox(SandboxConfig(token=token, state_file=str(state_file))).start()
    global _announced
    if not _announced:
        _announced = True
        print(f"No ATLAN_BASE_URL set: using the embedded sandbox tenant at {sandbox.base_url} "
              f"(state in {state_file}).", file=sys.stderr)
    try:
        with ApiClient(sandbox.base_url, token) as client:
            yield client
    finally:
        sandbox.stop()
