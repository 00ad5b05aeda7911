"""Find an interrupted submit in the account's WaveSpeed history (E3, ``POST /api/v3/predictions``).

A submit killed mid-POST (kill -9 during a sync-mode inference) may have been accepted and paid
without its id ever reaching us. The history lists the account's tasks of the last 7 days, newest
first. Decisions, and why (WAVESPEED_API.md sections 12.1-12.2 and 13.2):

- **One look.** The history is asked once per recovery ("Do not poll the history endpoint for task
  status", 13.2): one page of the tasks of the same model created no earlier than the intent was
  claimed (minus a clock-skew margin), ``created_after`` in UTC with ``Z`` as the official clients
  send it, and ``include_inputs: true``, which an official CLI revision sent. Candidates whose item
  carries no echo have their own ``/result`` checked through the client's normal result call (at
  most ``MAX_RESULTS``, newest first; the client keeps the documented pace per task). No loop.
- **Exactly or not at all.** The intent keeps the payload that was sent, uploaded image URLs
  included; a candidate matches only on those values. The echo is the server's re-encoding, not our
  bytes (``4.0`` comes back ``4``, keys outside the model's schema are dropped), so values are
  compared as the server's types (``echo_matches``): every sent key must come back with its value,
  and the echo may hold no other schema key. An exact hash of the payload matches too.
- **Never another identity's task.** A candidate the journal already holds for other inputs is
  skipped before anything is asked about it, and the caller's ``claim`` (the guarded journal
  write) has the last word: a candidate taken meanwhile is passed over.
- **No echo anywhere:** the candidates are named (id, created time) so the user can check them,
  and nothing is paid (``Unconfirmed``).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api.body_params import wait_keys
from ..api.models import find_model
from ..api.reply_types import Prediction
from ..core.vocabulary import CancelCheck
from .task_records import params_hash

if TYPE_CHECKING:
    from ..net.client import WaveSpeedClient

log = logging.getLogger("wavespeed")

SKEW_S = 120.0  # our clock and the server's may disagree by this much
PAGE_SIZE = 100  # the one history page asked for (the API's maximum)
MAX_RESULTS = 8  # /result checks per recovery (newest candidates first)
NAMED_CANDIDATES = 2  # how many candidates one line can name (an error line is capped at 300 chars)

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
    sent: Mapping[str, Any], echo: Mapping[str, Any], *, schema: Collection[str] | None = None
) -> bool:
    """Whether ``echo`` (a task's ``inputs`` / ``input``) is exactly the payload ``sent``, re-encoded.

    Args:
        sent: the body we POSTed. echo: the server's echo of a candidate task.
        schema: the model's body keys: a sent key missing from the echo is forgiven only outside
            it (the server dropped it), and the echo may hold no schema key we did not send.
            None: every sent key must come back, and nothing else is looked at.
    Returns:
        True when every sent key (but those that say how we waited: ``wait_keys``) comes back with
        the same value, and (with a schema) the echo names no other input.
    """
    uncompared = wait_keys()
    for key, value in sent.items():
        if key in uncompared:
            continue
        if key not in echo:
            if schema is not None and key not in schema:
                continue
            return False
        if not same_value(value, echo[key]):
            return False
    if schema is not None:
        extra = [k for k in echo if k in schema and k not in uncompared and k not in sent]
        if extra:
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


def history_query(model: str, since: float) -> dict[str, Any]:
    """The one history call of a recovery: the model's tasks created since ``since`` (epoch, minus
    SKEW_S), one page of the API's largest size, with their inputs asked for."""
    return {
        "page": 1,
        "page_size": PAGE_SIZE,
        "model": model,
        "created_after": utc_text(since - SKEW_S),
        "include_inputs": True,
    }


def find_submitted(
    client: WaveSpeedClient,
    *,
    model: str,
    payload_hash: str,
    since: float,
    deadline: float,
    cancel: CancelCheck,
    sent: Mapping[str, Any] | None = None,
    taken: Callable[[str], bool] | None = None,
    claim: Callable[[Prediction], bool] | None = None,
) -> Prediction | Unconfirmed | None:
    """The task this payload created at or after ``since`` (epoch), if the history shows it.

    Args:
        payload_hash: params_hash of the payload as sent (an exact echo matches on it).
        sent: the payload as it was sent (matched with ``echo_matches``); None: hash only.
        taken: whether a task id is already journaled for other inputs (skipped, never asked about).
        claim: called with a matching candidate (the caller journals it); False: another identity
            took it meanwhile, so it is passed over.
    Returns:
        The task; ``Unconfirmed`` (the candidates) when no candidate's inputs are echoed anywhere;
        None when nothing in the window is ours.
    Raises:
        CancelledError; WaveSpeedError from the history calls (the caller treats it as not found).
    """
    start = since - SKEW_S
    row = find_model(model)
    schema = row.body_keys if row is not None else None  # the table's keys for that model

    def ours(echo: Mapping[str, Any]) -> bool:
        try:
            if params_hash(model, echo) == payload_hash:
                return True
        except (ValueError, TypeError, RecursionError, OverflowError):
            pass
        return sent is not None and echo_matches(sent, echo, schema=schema)

    items = client.history_page(history_query(model, since), deadline=deadline, cancel=cancel)
    fetched = 0
    unconfirmed: list[Candidate] = []
    for item in items:
        if item.model != model or item.prediction is None:
            continue
        created = created_epoch(item.created_at)
        if created is not None and created < start:
            continue
        prediction, echo = item.prediction, item.input
        if taken is not None and taken(prediction.id):
            continue  # journaled for other inputs: never ours
        if echo is None and fetched < MAX_RESULTS:
            fetched += 1
            record = client.task_record(prediction.id, deadline=deadline, cancel=cancel)
            echo = record.input
            prediction = record.prediction or prediction
        if echo is None:
            unconfirmed.append(Candidate(prediction.id, item.created_at, str(prediction.status)))
        elif ours(echo) and (claim is None or claim(prediction)):
            return prediction
    if len(items) >= PAGE_SIZE:
        log.info("WaveSpeed history: a full page of candidates; older ones are not looked at")
    return Unconfirmed(tuple(unconfirmed)) if unconfirmed else None
