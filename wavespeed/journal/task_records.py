"""What the journal stores about a task, and the identity that decides whether a re-queue may reuse it.

Pure functions and one frozen dataclass, shared by the SQLite journal and the single-flight logic.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.body_params import PROMPT, wait_keys
from ..core.vocabulary import JournalStatus

# Short spellings of the journal statuses for the node layer (the members themselves, not copies).
STATUS_IN_FLIGHT = JournalStatus.IN_FLIGHT
STATUS_COMPLETED = JournalStatus.COMPLETED
STATUS_FAILED = JournalStatus.FAILED
STATUS_EXPIRED = JournalStatus.EXPIRED

_KEY_LIKE = re.compile(r"(^|[_-])(api[_-]?key|key|token|secret|password|authorization|bearer)$", re.I)
_DATA_URI_KEEP = 256  # a data: URI longer than this is stored as a short summary (the hash uses it whole)


def assert_no_key(value: object, where: str = "params") -> None:
    """Refuse to journal anything with a key-like field: the journal must never hold a secret."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and _KEY_LIKE.search(k):
                raise ValueError(f"refusing to journal {where}.{k}: key-like fields are never stored")
            assert_no_key(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_no_key(v, f"{where}[{i}]")


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def params_hash(model: str, params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of model + params (minus what says how we wait: sync mode, the
    table's ``wait_keys``). Two tasks with the same hash and a fixed seed produce the same image."""
    excluded = wait_keys()
    kept = {k: v for k, v in params.items() if k not in excluded}
    return hashlib.sha256(canonical({"model": model, "params": kept}).encode("utf-8")).hexdigest()


def storable(value: Any) -> Any:
    """Params as stored: long data: URIs (inline images) become a short summary; the rest is kept."""
    if isinstance(value, str) and value.startswith("data:") and len(value) > _DATA_URI_KEEP:
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
        return f"<{value.split(',', 1)[0][:40]} · {len(value)} chars · sha256 {digest}>"
    if isinstance(value, Mapping):
        return {str(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def urls_only(outputs: Iterable[object]) -> tuple[str, ...]:
    return tuple(o for o in outputs if isinstance(o, str) and o.startswith(("http://", "https://")))


def finite(value: object, default: float = 0.0) -> float:
    """A finite float, or ValueError: 1e400 (inf) or NaN in a record is garbage, not a time or a price."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class TaskRecord:
    """One journaled task (``params_hash`` is the input identity, stored in the ``identity`` column)."""

    request_id: str
    model: str
    params_hash: str
    submitted_at: float
    params: dict[str, Any] = field(default_factory=dict)
    account: str = ""
    status: str = STATUS_IN_FLIGHT
    server_status: str = ""
    updated_at: float = 0.0
    outputs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    price_usd: float = 0.0
    error: str = ""
    note: str = ""
    inference_ms: int | None = None

    @property
    def prompt(self) -> str:
        value = self.params.get(PROMPT.key)
        return value if isinstance(value, str) else ""

    def prompt_snippet(self, limit: int = 48) -> str:
        flat = " ".join(self.prompt.split())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Intent:
    """A submit in progress (or interrupted): claimed before the POST, replaced by the task's row
    in the transaction that records the accepted task."""

    account: str
    identity: str
    model: str
    payload_hash: str  # params_hash of the payload as sent, to recognise the task in the history
    claimed_at: float
    host: str
    pid: int
    owner: str  # a random token per process
    lease_until: float
    state: str  # "submitting", or "uncertain" (the submit may have been paid, no id came back)
    # Exactly what was (or is being) sent, uploaded image URLs included: what recovery matches a
    # candidate on. None in rows written before it was kept (then only payload_hash matches).
    payload: dict[str, Any] | None = None
