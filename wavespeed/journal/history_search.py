"""Find an interrupted submit in the account's WaveSpeed history (E3, ``POST /api/v3/predictions``).

A submit killed mid-POST (kill -9 during a sync-mode inference) may have been accepted and paid
without its id ever reaching us. The history lists the account's tasks of the last 7 days, newest
first. Decisions, and why (WAVESPEED_API.md section 12.1-12.2):

- Candidates are items of the same model created no earlier than the intent was claimed (minus a
  clock-skew margin); ``created_after`` goes out as UTC with ``Z``, as the official clients send it.
- List items carry no reliable request echo (the docs' items and the desktop app's type have
  none), so a candidate without one has its own ``/result`` fetched (at most ``MAX_RESULTS`` per
  look, newest first); on either, ``inputs`` is read before ``input``, as the official CLI does.
- The echo is the server's re-encoding, not our bytes: ``4.0`` comes back ``4``, keys outside the
  model's schema are dropped. So a candidate matches on a normalised subset (``echo_matches``):
  every key we sent, numbers compared as numbers; a sent key missing from the echo is forgiven
  only if it is outside the schema. An exact hash of the old payload still matches too.
- No echo anywhere: the candidates are named (id, created time) so the user can check them, and
  nothing is paid (``Unconfirmed``). A candidate still running without an echo is looked at again
  every few seconds, up to the deadline.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api.kontext_request import MODEL_EDIT, MODEL_MULTI, MODEL_TEXT_TO_IMAGE
from ..api.reply_types import HistoryItem, Prediction
from ..core import errors as E
from ..core.vocabulary import CancelCheck
from .task_records import params_hash

if TYPE_CHECKING:
    from ..net.client import WaveSpeedClient

log = logging.getLogger("wavespeed")

SKEW_S = 120.0  # our clock and the server's may disagree by this much
PAGE_SIZE = 100
MAX_PAGES = 5
MAX_RESULTS = 8  # /result fetches per look at the history (newest candidates first)
RECHECK_S = 2.0
NAMED_CANDIDATES = 2  # how many candidates one line can name (an error line is capped at 300 chars)

# The body keys each model's schema knows (WAVESPEED_API.md section 3); the server drops others.
_COMMON = frozenset(
    {
        "prompt",
        "seed",
        "guidance_scale",
        "aspect_ratio",
        "enable_sync_mode",
        "enable_base64_output",
        "num_images",
        "safety_tolerance",
        "enable_safety_checker",
    }
)
SCHEMA_KEYS: dict[str, frozenset[str]] = {
    MODEL_TEXT_TO_IMAGE: _COMMON,
    MODEL_EDIT: _COMMON | {"image"},
    MODEL_MULTI: _COMMON | {"images"},
}
# How we wait, not what we get (as in params_hash): an identical re-queue may differ here.
UNCOMPARED_KEYS = frozenset({"enable_sync_mode"})

_FRACTION = re.compile(r"\.(\d+)")


def created_epoch(value: object) -> float | None:
    """RFC 3339 / ISO 8601 (any number of fraction digits, ``Z`` or an offset) to epoch seconds;
    None if unreadable. A time without an offset is read as UTC."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value.strip(), count=1)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def utc_text(epoch: float) -> str:
    """Epoch seconds as the official clients send times: UTC, milliseconds, ``Z``."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------- matching (pure)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_value(sent: object, echoed: object) -> bool:
    """Whether an echoed value is the one we sent, re-encoded: numbers compared as numbers (as a
    float64, the server's type), bools only with bools, lists item by item, objects key by key."""
    if _number(sent) and _number(echoed):
        a, b = float(sent), float(echoed)  # type: ignore[arg-type]
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(sent, bool) or isinstance(echoed, bool):
        return isinstance(sent, bool) and isinstance(echoed, bool) and sent == echoed
    if isinstance(sent, (list, tuple)) and isinstance(echoed, (list, tuple)):
        return len(sent) == len(echoed) and all(same_value(a, b) for a, b in zip(sent, echoed, strict=True))
    if isinstance(sent, Mapping) and isinstance(echoed, Mapping):
        return set(sent) == set(echoed) and all(same_value(sent[k], echoed[k]) for k in sent)
    return type(sent) is type(echoed) and sent == echoed


def echo_matches(
    sent: Mapping[str, Any],
    echo: Mapping[str, Any],
    *,
    schema: Collection[str] | None = None,
    loose: Collection[str] = (),
) -> bool:
    """Whether ``echo`` (a task's ``inputs`` / ``input``) is the payload ``sent``, re-encoded.

    Args:
        sent: the body we POSTed. echo: the server's echo of a candidate task.
        schema: the model's body keys: a sent key missing from the echo is forgiven only outside
            it (the server dropped it). None: every sent key must come back.
        loose: keys whose value may legitimately differ (an image uploaded again after a restart
            has a new URL): present, and of the same length if a list, is enough.
    Returns:
        True when every sent key (but ``UNCOMPARED_KEYS``) comes back with the same value.
    """
    for key, value in sent.items():
        if key in UNCOMPARED_KEYS:
            continue
        if key not in echo:
            if schema is not None and key not in schema:
                continue
            return False
        if key in loose:
            other = echo[key]
            if isinstance(value, (list, tuple)) != isinstance(other, list):
                return False
            if isinstance(value, (list, tuple)) and len(value) != len(other):
                return False
            continue
        if not same_value(value, echo[key]):
            return False
    return True


@dataclass(frozen=True)
class Candidate:
    """A task of the right model and time whose inputs WaveSpeed does not echo anywhere."""

    id: str
    created_at: str
    status: str


@dataclass(frozen=True)
class Unconfirmed:
    """The history holds candidates but no echo to match them on: the user must check them."""

    candidates: tuple[Candidate, ...]

    def text(self) -> str:
        """The candidates for one line: ``<id> (created 07:12:04)``, newest first."""
        named = [f"{c.id} (created {_local_clock(c.created_at)})" for c in self.candidates[:NAMED_CANDIDATES]]
        more = len(self.candidates) - len(named)
        return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def _local_clock(created_at: str) -> str:
    epoch = created_epoch(created_at)
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch is not None else created_at[:32]


# --------------------------------------------------------------------------- the lookup


def _page(
    client: WaveSpeedClient, model: str, page: int, since: float, deadline: float, cancel: CancelCheck
) -> list[HistoryItem]:
    query = {"page": page, "page_size": PAGE_SIZE, "model": model, "created_after": utc_text(since)}
    return client.history_page(query, deadline=deadline, cancel=cancel)


def find_submitted(
    client: WaveSpeedClient,
    *,
    model: str,
    payload_hash: str,
    since: float,
    deadline: float,
    cancel: CancelCheck,
    sent: Mapping[str, Any] | None = None,
    loose: Collection[str] = (),
) -> Prediction | Unconfirmed | None:
    """The task this payload created at or after ``since`` (epoch), if the history shows it.

    Args:
        payload_hash: params_hash of the payload as sent (an exact echo matches on it).
        sent: the payload as it would be sent now (matched with ``echo_matches``); None: hash only.
        loose: keys of ``sent`` whose values may differ (``echo_matches``).
    Returns:
        The task; ``Unconfirmed`` (the candidates) when no candidate's inputs are echoed anywhere;
        None when nothing in the window is ours.
    Raises:
        CancelledError; WaveSpeedError from the history calls (the caller treats it as not found).
    """
    start = since - SKEW_S
    schema = SCHEMA_KEYS.get(model)

    def ours(echo: Mapping[str, Any]) -> bool:
        try:
            if params_hash(model, echo) == payload_hash:
                return True
        except (ValueError, TypeError, RecursionError, OverflowError):
            pass
        return sent is not None and echo_matches(sent, echo, schema=schema, loose=loose)

    while True:
        pending, fetched = False, 0
        unconfirmed: list[Candidate] = []
        for page in range(1, MAX_PAGES + 1):
            items = _page(client, model, page, start, deadline, cancel)
            older = False
            for item in items:
                if item.model != model or item.prediction is None:
                    continue
                created = created_epoch(item.created_at)
                if created is not None and created < start:
                    older = True
                    continue
                prediction, echo = item.prediction, item.input
                if echo is None and fetched < MAX_RESULTS:
                    fetched += 1
                    record = client.task_record(prediction.id, deadline=deadline, cancel=cancel)
                    echo = record.input
                    prediction = record.prediction or prediction
                if echo is None:
                    pending = pending or not prediction.is_terminal
                    unconfirmed.append(Candidate(prediction.id, item.created_at, str(prediction.status)))
                elif ours(echo):
                    return prediction
            if older or len(items) < PAGE_SIZE:
                break
        if not pending or time.monotonic() + RECHECK_S > deadline:
            return Unconfirmed(tuple(unconfirmed)) if unconfirmed else None
        log.info("WaveSpeed history: a task still running may be the interrupted one; looking again")
        end = time.monotonic() + RECHECK_S
        while time.monotonic() < end:
            if cancel():
                raise E.CancelledError("Cancelled while looking for an interrupted task in the history.")
            time.sleep(0.1)
