"""How the emulated server echoes a request and stamps times: as a Go server would.

The evidence (WAVESPEED_API.md section 12.1-12.2): the server looks like Go; it decodes the body
into the model's schema, so keys outside it are dropped silently, and a float64 comes back in
Go's shortest form (``4.0`` -> ``4``); ``created_at`` is RFC 3339 with the trailing zeros of its
fraction cut (``.027Z``, ``.92Z``, none at all on a whole second). Whether an echo comes at all,
and under which key, is a switch (``ECHO_KEYS``): by default list items carry ``inputs`` only when
the history call sends ``include_inputs: true`` (``"asked"``, WAVESPEED_API.md 13.2: an official CLI
revision sent it) and a task's ``/result`` carries none (13.2: no evidence it ever does).
``echo_style="raw"`` keeps the older, kinder echo of the bytes sent.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

_FRACTION = re.compile(r"\.(\d+)")  # Python 3.11 reads at most 6 fraction digits
ECHO_KEYS: tuple[str, ...] = ("none", "input", "inputs")
#: The history's echo: "asked" (``inputs`` only when the call sends ``include_inputs: true``) or one
#: of ECHO_KEYS on every item.
HISTORY_ECHOES: tuple[str, ...] = ("asked", *ECHO_KEYS)
ECHO_STYLES: tuple[str, ...] = ("go", "raw")


def go_value(value: Any) -> Any:
    """A JSON value after a Go decode into ``interface{}`` and re-encode: whole floats lose their
    ``.0`` (Go prints float64 4.0 as 4; past 1e21 it switches to an exponent, so those stay
    floats), object keys come back sorted."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): go_value(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [go_value(v) for v in value]
    return value


def echo_of(body: dict[str, Any], schema: frozenset[str], style: str) -> dict[str, Any]:
    """The request as the server echoes it: ``go`` (schema keys only, re-encoded) or ``raw``."""
    if style == "raw":
        return dict(body)
    return {k: go_value(body[k]) for k in sorted(body) if k in schema}


def with_echo(obj: dict[str, Any], key: str, echo: dict[str, Any], *, asked: bool = False) -> dict[str, Any]:
    """``obj`` with the echo under ``key`` ("input" / "inputs"), or unchanged for "none"; "asked":
    under "inputs" when the caller ``asked`` for inputs, else unchanged."""
    if key == "asked":
        key = "inputs" if asked else "none"
    if key == "none":
        return obj
    return {**obj, key: echo}


def go_time(ns: int, *, digits: int = 3) -> str:
    """A ``time.time_ns()`` value as Go's RFC3339Nano prints it at ``digits`` precision: the
    trailing zeros of the fraction cut, and no fraction at all on a whole second."""
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    kept = f"{frac:09d}"[:digits].rstrip("0")
    return f"{stamp}.{kept}Z" if kept else f"{stamp}Z"


def parse_time(text: object) -> float | None:
    """An ISO 8601 / RFC 3339 instant (``Z`` or an offset; any fraction) as epoch seconds; None
    if unreadable. A time without an offset is read as UTC."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text.strip(), count=1)
    value = value.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
