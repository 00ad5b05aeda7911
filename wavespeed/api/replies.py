"""Reading what a server sends back, totally: any bytes in, a value or one of our errors out.

Decisions, and why:

* **Size.** An API reply is read up to ``MAX_REPLY_BYTES`` (1 MiB; a real one is a few hundred
  bytes) and refused beyond, so a 100 MB reply costs 1 MiB of reading, never its whole size.
* **JSON.** ``load_json`` raises only :class:`MalformedReply` (a ValueError). ``NaN``/``Infinity``
  constants, floats that overflow (``1e400``) and integers longer than 20 digits become ``None``
  (absent), so an absurd field cannot sink the fields next to it. Containers nested deeper than
  ``MAX_DEPTH`` are replaced by ``None`` before parsing (the envelope and its task id survive;
  the deep part is refused), and RecursionError, OverflowError and UnicodeDecodeError are caught.
  Duplicate keys: the last value wins (as in JSON parsers generally), except that a valid task
  id under ``"id"`` (or a ``"data"`` object holding one) is never replaced by a later duplicate:
  the first valid id is the task that was paid for, and it must reach the journal.
* **Meaning.** :func:`interpret` turns one capped reply (its envelope read by
  :class:`.reply_types.Envelope`) into the reader's value or a :class:`.retry_rule.BadReply`: the
  typed error the reply means, built whole (the task, the status, the Retry-After), which the
  retry rule (retry_rule.decide) reads; nothing is raised. A submit reply that names a valid task
  id never becomes one a submit is re-sent after (the id is returned, or named by the error as
  its ``request_id``).
* **A refused submit.** Only WaveSpeed's own word says a submit created nothing: a 429 inside its
  JSON envelope (``{"code": 429, ...}``, under HTTP 429 or 200), or a 4xx it answered. A 5xx, a
  gateway page (an HTML 502/503/504) or a 429 without the envelope (a proxy's, a CDN's) may have
  come after the task was created, as every official SDK assumes (WAVESPEED_API.md 13.4): it is
  :func:`uncertain_submit`, never re-sent. That is what such a reply means, so it is said here;
  a reply's error is a RateLimitedError for a submit only when WaveSpeed's envelope said 429.
* **Retry-After.** Seconds or an HTTP date; garbage (``soon``), NaN and unparsable dates give
  None (normal backoff), negative gives 0, huge and infinite values are clamped to
  ``MAX_RETRY_AFTER_S``; the client then refuses to sleep past its deadline.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Any, TypeVar

from ..core import errors as E
from ..core.vocabulary import is_request_id
from .reply_types import Envelope, server_message
from .retry_rule import BadReply

if TYPE_CHECKING:  # requests loads on first use, never at the pack's import: stay light
    import requests

MAX_REPLY_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_RETRY_AFTER_S = 24 * 3600.0
_MAX_INT_CHARS = 20
T = TypeVar("T")
REFUSED_SUBMIT_CODE = 429  # in WaveSpeed's envelope: the one reply that says a submit created nothing
UNCERTAIN_HINT = (
    "it was not resent to avoid a double charge: check your WaveSpeed history before queuing again"
)

# A JSON string (unrolled loop: no backtracking blow-up) or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class MalformedReply(ValueError):
    """A reply body that is not the JSON we can read; the message says why in a few words."""


def _int_or_absent(text: str) -> int | None:
    return int(text) if len(text) <= _MAX_INT_CHARS else None


def _float_or_absent(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _absent(_: str) -> None:
    return None


def _prune_deep(text: str, max_depth: int) -> str:
    """``text`` with every container that opens deeper than ``max_depth`` replaced by ``null``."""
    pieces: list[str] = []
    depth = 0
    cut_from: int | None = None
    last = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            if depth == max_depth + 1 and cut_from is None:
                cut_from = match.start()
        else:
            if depth == max_depth + 1 and cut_from is not None:
                pieces += [text[last:cut_from], "null"]
                last, cut_from = match.end(), None
            depth -= 1
    pieces.append(text[last:])
    return "".join(pieces)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose duplicate keys never drop a valid task id (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out and _names_a_task(key, out[key]):
            continue
        out[key] = value
    return out


def _names_a_task(key: str, value: Any) -> bool:
    if key == "id":
        return is_request_id(value)
    return key == "data" and isinstance(value, dict) and is_request_id(value.get("id"))


def load_json(data: bytes) -> Any:
    """Parse a reply body; raise MalformedReply (and nothing else) when it cannot be read."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedReply("not UTF-8") from None
    if text.count("[") + text.count("{") > MAX_DEPTH:
        text = _prune_deep(text, MAX_DEPTH)
    try:
        return json.loads(
            text,
            parse_int=_int_or_absent,
            parse_float=_float_or_absent,
            parse_constant=_absent,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise MalformedReply("nested too deeply") from None
    except (ValueError, OverflowError, TypeError):
        raise MalformedReply("not JSON") from None


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, clamped to 0..MAX_RETRY_AFTER_S; None if absent
    or unreadable (the caller then uses its own backoff)."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _http_date_in(text, time.time() if now is None else now)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _http_date_in(text: str, now: float) -> float | None:
    try:
        import email.utils  # only for HTTP-date Retry-After values: keeps the pack import light

        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


# --------------------------------------------------------------------------- meaning


def error_for_status(
    status: int,
    message: str,
    *,
    during: str,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> E.WaveSpeedError:
    """Map an HTTP (or envelope) status to the typed error with an actionable one-line message
    (the advice is its ``hint``: a long server message is cut, never the advice); every one names
    ``request_id``, the task the call concerns."""
    low = message.lower()
    # "Insufficient credits" is the live text, under a status nobody has seen (12.4): any status.
    if (
        status == 402
        or "insufficient credits" in low
        or (status == 403 and ("balance" in low or "credit" in low or "insufficient" in low))
    ):
        return E.InsufficientBalanceError(
            f"WaveSpeed balance too low ({message})",
            hint="top up at wavespeed.ai, then queue again",
            request_id=request_id,
            status=status,
        )
    if status in (401, 403):
        return E.AuthenticationError(
            f"WaveSpeed rejected the API key (HTTP {status}: {message})",
            hint="check WAVESPEED_API_KEY; new keys work only after the account's first top-up",
            request_id=request_id,
            status=status,
        )
    if status == 404 and during == "result":
        return E.NotFoundError(
            f"WaveSpeed has no task {request_id}: check the request id (results are kept for 7 days).",
            request_id=request_id,
            status=status,
        )
    if status in (400, 404, 413, 422):
        return E.InvalidRequestError(
            f"WaveSpeed rejected the {during} request: {message}", request_id=request_id, status=status
        )
    if status == 429:
        return E.RateLimitedError(
            f"WaveSpeed rate limit hit during {during} (HTTP 429) and retries ran out: wait a minute "
            "or lower the number of parallel tasks.",
            request_id=request_id,
            status=status,
            retry_after_s=retry_after,
        )
    return E.ServerError(
        f"WaveSpeed server error during {during} (HTTP {status}: {message})",
        hint="retries ran out, try again later",
        request_id=request_id,
        status=status,
    )


def uncertain_submit(what: str, status: int | None = None) -> E.SubmitUncertainError:
    """A submit that may have created a task we have no id for: said in one line, never re-sent."""
    return E.SubmitUncertainError(what, hint=UNCERTAIN_HINT, status=status)


def read_up_to(resp: requests.Response, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body, and whether there was more (never reads past cap + 1 chunk)."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        return b"", True
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(chunk_size=64 * 1024):
        total += len(chunk)
        if total > cap:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def refused_by_wavespeed(envelope: Envelope | None) -> bool:
    """A reply in which WaveSpeed itself refuses a submit: a 429 in its JSON envelope."""
    return envelope is not None and envelope.code == REFUSED_SUBMIT_CODE


def accepted_but(request_id: str, what: str) -> BadReply:
    """A submit reply that names a task but reports ``what`` besides: the task exists, it is paid."""
    error = E.SubmitUncertainError(
        f"WaveSpeed accepted task {request_id} but its reply reports {what}; the task is paid for: "
        "paste this request id into WaveSpeed Poll Result to fetch it instead of queuing again.",
        request_id=request_id,
    )
    return BadReply(error, f"accepted task, {what}")


@dataclass(frozen=True)
class Reply:
    """One HTTP reply, its body read up to the cap inside the request's window."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", ""))


@dataclass(frozen=True)
class _Reading:
    """What :func:`interpret` is reading for: the call's name, its task, whether it is a read."""

    during: str
    request_id: str | None
    idempotent: bool

    def said_no(self, status: int, message: str, wait_s: float | None) -> BadReply:
        """An error status (HTTP, or the envelope's code inside a 200) as the error it means. A
        submit's 5xx may come after the task was created (503 as much as 500): uncertain."""
        error = error_for_status(
            status, message, during=self.during, request_id=self.request_id, retry_after=wait_s
        )
        if not self.idempotent and status >= 500 and not isinstance(error, E.InsufficientBalanceError):
            error = uncertain_submit(f"WaveSpeed answered the submit with HTTP {status} ({message})", status)
        return BadReply(error, f"HTTP {status}", retry_after_s=wait_s)

    def garbled(self, why: str, *, tail: str = "retries ran out.") -> BadReply:
        """A reply that cannot be read: a read tries again, a submit cannot (it may be paid)."""
        if not self.idempotent:
            what = f"WaveSpeed answered the submit with a malformed reply ({why})"
            return BadReply(uncertain_submit(what), "malformed reply")
        what = f"WaveSpeed sent a malformed {self.during} reply ({why}); {tail}"
        return BadReply(E.ServerError(what, request_id=self.request_id), "malformed reply", garbled=True)


def interpret(
    reply: Reply,
    reader: Callable[[Any], T],
    *,
    during: str,
    request_id: str | None,
    idempotent: bool,
    base_url: str,
) -> T | BadReply:
    """A 200 envelope with code 200 -> ``reader(envelope["data"])`` (None when absent); anything
    else -> a BadReply holding the typed error it means (built with the task, the status and the
    Retry-After), for the retry rule (retry_rule.decide). A submit reply that names a task id is
    never one a submit may be re-sent after: its error names the task (see the module docstring)."""
    reading = _Reading(during, request_id, idempotent)
    body: Any = None
    why = f"over {MAX_REPLY_BYTES} bytes"
    if not reply.truncated:
        try:
            body = load_json(reply.body)
        except MalformedReply as exc:
            why = str(exc)
    envelope = Envelope.parse(body)
    paid = None if idempotent or envelope is None else envelope.task_id
    if 300 <= reply.status < 400:
        if paid:
            return accepted_but(paid, f"a redirect (HTTP {reply.status})")
        error = E.ConfigError(
            f"WaveSpeed at {base_url} answered the {during} with a redirect (HTTP {reply.status}); "
            "API calls do not follow redirects: set WAVESPEED_BASE_URL to the API's own address.",
            request_id=request_id,
            status=reply.status,
        )
        return BadReply(error, f"HTTP {reply.status}")
    wait_s = retry_after_s(reply.headers.get("Retry-After"))
    if reply.status != 200:
        message = server_message(envelope, reply.status, reply.content_type)
        if paid:  # whatever the status says, a reply that names a task: it exists, it is paid
            return accepted_but(paid, f"HTTP {reply.status} ({message})")
        if not idempotent and reply.status == REFUSED_SUBMIT_CODE and not refused_by_wavespeed(envelope):
            # A 429 that is not WaveSpeed's own (a proxy's, a CDN's): it says nothing about the task.
            what = f"The submit was answered HTTP 429 without WaveSpeed's reply ({message})"
            return BadReply(uncertain_submit(what, reply.status), f"HTTP {reply.status}")
        return reading.said_no(reply.status, message, wait_s)
    if envelope is None:
        return reading.garbled("not a JSON object" if body is not None else why)
    if envelope.code != 200:
        message = server_message(envelope, envelope.code, "")
        if paid:
            return accepted_but(paid, f"code {envelope.code} ({message})")
        return reading.said_no(envelope.code, message, wait_s)
    try:
        return reader(envelope.data)
    except ValueError as exc:  # valid JSON, wrong shape: a read retries it, a submit cannot
        if paid:
            return accepted_but(paid, f"a malformed task ({exc})")
        if not idempotent:
            what = f"WaveSpeed's reply to the submit is malformed ({exc})"
            return BadReply(uncertain_submit(what), "malformed reply")
        return reading.garbled(str(exc), tail="retries ran out, try again.")
