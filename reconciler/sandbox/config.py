"""Settings of one sandbox tenant: where it keeps state, how it misbehaves, how runs progress."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

# Fault kinds the injector can choose from. "drop" closes the connection before the request is
# handled; "drop-after" handles it and then closes the connection without answering, which is
# what makes retried POSTs dangerous (opt in: it is not in the default set). "400" refuses the
# request as invalid, having done nothing (opt in too: it is not transient).
FAULT_KINDS = ("400", "429", "500", "502", "503", "504", "drop", "drop-after")
DEFAULT_FAULT_KINDS = ("429", "502", "503", "504", "drop")


@dataclass
class SandboxConfig:
    token: str = "sandbox-token"
    state_file: str | None = None
    seed: int | None = None
    expose_schedules: bool = False
    # Faults.
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    # Only these routes ("POST v1/app/{slug}/schedule", as /_sandbox/stats names them) get faults;
    # empty: every API route.
    fault_routes: tuple[str, ...] = ()
    # Quote the request body in every error answer, as some servers do (a test of secret masking).
    echo_request_errors: bool = False
    # The Retry-After of injected 429 and 503 faults; sent in whole seconds, a fraction rounded up.
    retry_after_s: float = 1.0
    rate_limit: float = 0.0  # requests per second; 0 = unlimited
    rate_burst: int = 0  # bucket size; 0 = same as rate_limit (at least 1)
    # Runs: Pending for run_pending_s, Running for run_running_s, then Succeeded or Failed.
    run_pending_s: float = 0.5
    run_running_s: float = 2.0
    run_failure_rate: float = 0.0
    # Asset search (/api/meta/) shows an App run this long after it was submitted: the real index
    # lags by seconds, which is why the SDK's idempotent submit polls it after a refused submit.
    index_lag_s: float = 0.0
    # Lists.
    app_list_default_limit: int = 50
    app_list_max_limit: int = 200
    credential_list_default_limit: int = 100
    credential_list_max_limit: int = 500
    persist_interval: float = 0.2
    # Connections. A request body over max_body_bytes is answered 413 without being read. A request
    # (line, headers and body) must arrive within read_timeout_s of the server starting to wait for
    # it, and an idle keep-alive connection is closed after as long, so a slow client never holds a
    # thread for longer.
    max_body_bytes: int = 10 * 1024 * 1024
    read_timeout_s: float = 30.0

    def validate(self) -> None:
        unknown = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}")
        if not 0 <= self.fault_rate <= 1:
            raise ValueError("fault rate must be between 0 and 1")
        if not 0 <= self.run_failure_rate <= 1:
            raise ValueError("run failure rate must be between 0 and 1")
        if self.rate_limit < 0 or self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("rate limit, latency and jitter cannot be negative")
        if not (math.isfinite(self.retry_after_s) and self.retry_after_s >= 0):
            raise ValueError("the Retry-After delay must be a number of seconds, 0 or more (a fraction is sent "
                             "rounded up: Retry-After is whole seconds)")
        if self.index_lag_s < 0:
            raise ValueError("the index lag cannot be negative")
        if self.max_body_bytes < 0:
            raise ValueError("the request body limit cannot be negative")
        if not self.read_timeout_s > 0:
            raise ValueError("the read timeout must be more than 0 seconds")

    # Settings a test may change at run time through POST /_sandbox/config.
    RUNTIME_KEYS = (
        "expose_schedules",
        "latency_ms",
        "jitter_ms",
        "fault_rate",
        "fault_kinds",
        "fault_routes",
        "echo_request_errors",
        "retry_after_s",
        "rate_limit",
        "rate_burst",
        "run_pending_s",
        "run_running_s",
        "run_failure_rate",
        "index_lag_s",
    )

    def public(self) -> dict[str, Any]:
        """Everything but the token."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "token"}
