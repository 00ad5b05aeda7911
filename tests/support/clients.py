"""The one WaveSpeedClient factory of the tests: short timeouts and near-instant retries,
so a test against a loopback server (the emulator or tests/support/hostile_server.py) runs in
seconds. A test that needs another setting passes that WaveSpeedClient keyword."""

from __future__ import annotations

from typing import Any

from wavespeed_kontext_pack.wavespeed.net.client import RetryPolicy, WaveSpeedClient


def fast_retry(attempts: int = 4) -> RetryPolicy:
    """``attempts`` tries 10-20 ms apart (a server's Retry-After is still honoured)."""
    return RetryPolicy(attempts=attempts, base_delay_s=0.01, max_delay_s=0.02)


def fast_client(base_url: str, api_key: str, *, attempts: int = 4, **kw: Any) -> WaveSpeedClient:
    """A client on ``base_url`` with ``attempts`` fast retries; ``kw`` overrides any other keyword."""
    kw.setdefault("connect_timeout_s", 2.0)
    kw.setdefault("read_timeout_s", 3.0)
    kw.setdefault("retry", fast_retry(attempts))
    return WaveSpeedClient(api_key, base_url, **kw)
