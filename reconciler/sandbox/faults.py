"""Deterministic misbehaviour for the sandbox: latency with jitter, transient faults and a
token-bucket request-rate limit. Same seed and same request order, same faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from reconciler.sandbox.config import SandboxConfig


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up. ``take()`` says how long to wait if empty."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst or int(rate) or 1)
        self.clock = clock
        self.tokens = float(self.burst)
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self) -> float | None:
        """None when a token was taken; otherwise the seconds until one is available."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return None
            return (1 - self.tokens) / self.rate


class FaultInjector:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.rng = random.Random(None if config.seed is None else config.seed + 1)
        self.lock = threading.Lock()
        self.bucket: TokenBucket | None = None
        self.reconfigure()

    def reconfigure(self) -> None:
        cfg = self.config
        self.bucket = TokenBucket(cfg.rate_limit, cfg.rate_burst) if cfg.rate_limit > 0 else None

    def delay(self) -> float:
        cfg = self.config
        if cfg.latency_ms <= 0 and cfg.jitter_ms <= 0:
            return 0.0
        with self.lock:
            jitter = self.rng.uniform(0, cfg.jitter_ms) if cfg.jitter_ms > 0 else 0.0
        return (cfg.latency_ms + jitter) / 1000.0

    def throttle(self) -> float | None:
        """Seconds the client must wait when the rate limit is exceeded, else None."""
        return self.bucket.take() if self.bucket is not None else None

    def pick(self, route: str = "") -> str | None:
        """The fault to inject into this request (``route``: "METHOD template"), or None."""
        cfg = self.config
        if cfg.fault_rate <= 0 or not cfg.fault_kinds or (cfg.fault_routes and route not in cfg.fault_routes):
            return None
        with self.lock:
            if self.rng.random() >= cfg.fault_rate:
                return None
            return self.rng.choice(list(cfg.fault_kinds))
