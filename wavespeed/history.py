"""Find an interrupted submit in the account's WaveSpeed history (E3, ``POST /api/v3/predictions``).

A submit killed mid-POST (kill -9 during a sync-mode inference) may have been accepted and paid
without its id ever reaching us. The history lists the account's tasks of the last 7 days, newest
first; an item is ours when it is of the same model, was created no earlier than the intent was
claimed (minus a clock-skew margin) and its ``input`` echo hashes to the payload we sent. Items
still running may carry no ``input`` yet: while such a candidate exists we look again every few
seconds, up to the deadline. No match: None (the caller says so in one line).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

from . import errors as E
from .models import HistoryItem, Prediction
from .records import params_hash
from .vocabulary import CancelCheck, TaskStatus

if TYPE_CHECKING:
    from .client import WaveSpeedClient

log = logging.getLogger("wavespeed")

SKEW_S = 120.0  # our clock and the server's may disagree by this much
PAGE_SIZE = 100
MAX_PAGES = 5
RECHECK_S = 2.0


def created_epoch(value: object) -> float | None:
    """RFC 3339 (with nanoseconds, as the API sends it) to epoch seconds; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Python 3.10 parses exactly 3 or 6 fractional digits
        head, _, rest = text.partition(".")
        n = len(rest) - len(rest.lstrip("0123456789"))  # the fraction's digits, not the offset's
        text = f"{head}.{rest[:n][:6].ljust(6, '0')}{rest[n:]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        return None


def _page(
    client: WaveSpeedClient, model: str, page: int, since: float, deadline: float, cancel: CancelCheck
) -> list[HistoryItem]:
    created_after = datetime.fromtimestamp(since).astimezone().isoformat()
    query = {"page": page, "page_size": PAGE_SIZE, "model": model, "created_after": created_after}
    return client.history_page(query, deadline=deadline, cancel=cancel)


def find_submitted(
    client: WaveSpeedClient,
    *,
    model: str,
    payload_hash: str,
    since: float,
    deadline: float,
    cancel: CancelCheck,
) -> Prediction | None:
    """The task this payload created at or after ``since`` (epoch), if the history shows it."""
    start = since - SKEW_S
    while True:
        pending = False
        for page in range(1, MAX_PAGES + 1):
            items = _page(client, model, page, start, deadline, cancel)
            older = False
            for item in items:
                if item.model != model:
                    continue
                created = created_epoch(item.created_at)
                if created is not None and created < start:
                    older = True
                    continue
                if item.input is None:
                    pending = pending or item.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED)
                    continue
                try:
                    if params_hash(model, item.input) != payload_hash:
                        continue
                except (ValueError, TypeError, RecursionError, OverflowError):
                    continue
                if item.prediction is not None:
                    return item.prediction
            if older or len(items) < PAGE_SIZE:
                break
        if not pending or time.monotonic() + RECHECK_S > deadline:
            return None
        log.info("WaveSpeed history: a task still running may be the interrupted one; looking again")
        end = time.monotonic() + RECHECK_S
        while time.monotonic() < end:
            if cancel():
                raise E.CancelledError("Cancelled while looking for an interrupted task in the history.")
            time.sleep(0.1)
