"""One exception family for everything that can go wrong talking to WaveSpeed: errors as data.

Decisions, and why:

* **Fields, rendered once.** An error carries what happened (``what``), the task it concerns
  (``request_id``), the HTTP ``status``, what to do (``hint``), the task's output ``urls`` and
  whether the paid task is in the journal (``journaled``). Its text (``message``, ``str()``) is
  composed from them in one place, :meth:`WaveSpeedError.render`.
* **Built whole, never edited.** Every field is given when the error is built: the code that
  raises it knows the task, the status, the Retry-After and the hint. A caller that learns more
  after it was raised (the paid path: whether the task is journaled, what was charged) raises a
  new error built from it (:meth:`replaced`), never changes the one it caught.
* **Redact, then collapse, then cut.** The key is redacted (redaction.py: raw, URL-encoded, base64,
  any 8+ characters of them) from the whole composed text before whitespace is collapsed and before
  any cut, and once more after each step, so no cut or join can leave a piece of it. The fields are
  also redacted when set, so ``vars(error)`` and ``repr`` show no key either.
* **One line, with what matters kept.** The line is at most :data:`LINE_LIMIT` characters. When it
  is too long, output URLs go first (they are listed only when they fit whole; otherwise the line
  says where they are kept), then the end of ``what`` (cut with "…" between words, never inside one
  unless a single word is longer than the room); the task note, what was charged and the hint stay.
* **What was charged** (``charged``, e.g. "$0, nothing was accepted") is said once the paid path
  knows it (a field like the others).
* **Three ways a call can fail that are not the request's fault, told apart by type**, because
  what to do differs: :class:`ConnectionFailedError` (WaveSpeed could not be reached, or the
  connection broke: check the network), :class:`ServerError` (WaveSpeed answered with a 5xx or a
  reply that cannot be read: try again later) and the journal's ``JournalError``
  (journal/sqlite_file.py: the local journal cannot answer, so nothing is paid). A submit that may
  have been paid is none of them: :class:`SubmitUncertainError`, whichever way it failed.
* **Short type names.** ComfyUI's error details show ``type.__module__ + "." + __qualname__``, and a
  pack's modules live under its install path: the family reports its module as ``wavespeed``, so the
  details read ``wavespeed.ModerationRefusedError``.
* **A task, once it exists, is always named**: an error with a ``request_id`` that its ``what``
  does not mention says which task and how to fetch it (Poll Result, no new charge).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypeVar

# Importing redaction also makes the pack's "wavespeed" logger, with its redacting filter: every
# module that logs imports this one first.
from .redaction import redact, register_secret

__all__ = ["LINE_LIMIT", "WaveSpeedError", "redact", "register_secret"]

LINE_LIMIT = 300
_CUT = "…"
_URLS_KEPT = "in your task history on wavespeed.ai (the journal keeps them)"
_MIN_WHAT = 60  # characters of ``what`` a cut keeps before it gives up the tail's extras
_SHORT_MODULE = "wavespeed"  # what ComfyUI's "Exception Type" shows before the class name

_E = TypeVar("_E", bound="WaveSpeedError")


def _flat(text: str) -> str:
    """Whitespace collapsed (a server's multi-line message stays one line), redacted again: a key
    holding spaces may only match once its whitespace is collapsed."""
    return redact(" ".join(text.split()))


class WaveSpeedError(Exception):
    """Base class. ``request_id`` is set whenever a task exists, so the result can be fetched later.

    ``SomeError("text", request_id=..., status=...)``: the text is ``what``; ``hint`` says what to do,
    ``urls`` lists the task's outputs, ``journaled`` whether the paid task is in the journal.
    """

    def __init__(
        self,
        what: str = "",
        *,
        request_id: str | None = None,
        status: int | None = None,
        hint: str = "",
        urls: Iterable[str] = (),
        journaled: bool | None = None,
        charged: str = "",
    ) -> None:
        self.what = redact(str(what))
        self.charged = charged
        self.request_id = request_id
        self.status = status
        self.hint = redact(hint)
        self.urls = tuple(redact(u) for u in urls)
        self.journaled = journaled
        super().__init__(self.what)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__module__ = _SHORT_MODULE

    def replaced(self: _E, **fields: Any) -> _E:
        """A copy with some fields changed (a new error, built from this one's data)."""
        unknown = set(fields) - set(vars(self))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(unknown))}")
        new = copy.copy(self)
        for name, value in fields.items():
            if name in ("what", "hint"):
                value = redact(str(value))
            elif name == "urls":
                value = tuple(redact(u) for u in value)
            setattr(new, name, value)
        return new

    # ------------------------------------------------------------------ the one rendering

    #: Whether the text names the task and how to fetch it: not when there is nothing to fetch.
    names_task = True

    def _task_note(self) -> str:
        rid = self.request_id
        if (
            not rid
            or not self.names_task
            or any(r in text for r in {rid, redact(rid)} for text in (self.what, self.hint))
        ):
            return ""
        if self.journaled is None:
            return f" (task {rid}: paste its id into WaveSpeed Poll Result to fetch it, no new charge)"
        kept = "journaled" if self.journaled else "not journaled"
        return f" (task {rid} was accepted and {kept}: paste its id into WaveSpeed Poll Result to fetch the result)"

    def _tail(self, urls: str) -> str:
        """Everything after ``what``: the task note, the hint, and the URLs (``urls`` "list"), where
        they are kept ("pointer") or nothing of them ("none")."""
        tail = self._task_note()
        if self.charged:
            tail += f"; {self.charged}"
        if self.hint:
            tail += f"; {self.hint.strip().rstrip('.')}"
        if self.urls and urls != "none":
            plural = "s" if len(self.urls) > 1 else ""
            tail += f"; output{plural}: {' '.join(self.urls) if urls == 'list' else _URLS_KEPT}"
        return tail

    def render(self, limit: int = LINE_LIMIT) -> str:
        """The error as one line of at most ``limit`` characters, with no piece of the key.

        Too long, it gives up, in this order: listing the URLs (it says where they are kept), the
        end of ``what`` (cut with "…", at least :data:`_MIN_WHAT` characters kept), the pointer to
        the URLs; a hint and note too long for that are cut like any text."""
        what = _flat(self.what)
        if not self._tail("list"):
            return _cut(what, limit)
        what = what.rstrip(". ")
        for urls, may_cut in (("list", False), ("pointer", False), ("pointer", True), ("none", True)):
            tail = _flat(f"|{self._tail(urls)}.")[1:]  # "|" keeps the tail's leading space
            if len(what) + len(tail) <= 2 * limit:  # else it cannot fit: no pass over a long text
                text = redact(f"{what}{tail}")
                if len(text) <= limit:
                    return text
            room = limit - len(tail) - len(_CUT)
            if may_cut and room >= _MIN_WHAT:
                return redact(f"{_words(what, room)}{_CUT}{tail}")
        return _cut(redact(f"{what[: 2 * limit]}{tail}"), limit)

    @property
    def message(self) -> str:
        """The one-line text shown to the user (and written to the journal)."""
        return self.render()

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.render()!r})"


def _words(text: str, room: int) -> str:
    """The start of ``text`` within ``room`` characters, ended between two words where the cut would
    fall inside one (unless that gives up more than a third of the room: one very long word)."""
    head = text[:room]
    if len(text) > room and not text[room].isspace():
        space = head.rfind(" ")
        if space >= room * 2 // 3:
            head = head[:space]
    return head.rstrip(" ,;:")


def _cut(text: str, limit: int) -> str:
    """``text`` (already redacted) within ``limit``, cut between words; redacted again where the cut
    mark meets it."""
    return text if len(text) <= limit else redact(_words(text, limit - len(_CUT)) + _CUT)


class ConfigError(WaveSpeedError):
    """No API key, or a base URL that would expose it."""


class AuthenticationError(WaveSpeedError):
    """The server refused the key (HTTP 401/403)."""


class InsufficientBalanceError(WaveSpeedError):
    """The account cannot pay for the task."""


class InvalidRequestError(WaveSpeedError):
    """The request is wrong (found locally before any spend, or reported by the server)."""


class ValidationError(InvalidRequestError, ValueError):
    """A request (or request id) that must not be sent; the message says which field and how to fix
    it. Also a ValueError, so total parsers that catch ValueError catch it too."""


class NotFoundError(WaveSpeedError):
    """Unknown request id (expired after 7 days, mistyped, or from another account)."""


class RateLimitedError(WaveSpeedError):
    """HTTP 429 persisted past the retry budget, or was not to be retried (``submit(...,
    retry_rate_limit=False)``). ``retry_after_s`` is the server's Retry-After, clamped (None if
    absent or unreadable): a scheduler can wait that long before trying again."""

    def __init__(self, what: str = "", *, retry_after_s: float | None = None, **fields: Any) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(what, **fields)


class ConnectionFailedError(WaveSpeedError):
    """WaveSpeed could not be reached (DNS, proxy, TLS, a refused connection: nothing was sent), or
    the connection broke or stalled during a read, past the retries. The line says which and what
    to check; for a submit it is raised only when nothing was sent (else SubmitUncertainError)."""


class ServerError(WaveSpeedError):
    """WaveSpeed answered, but with a server error (5xx, a gateway page) or a reply that cannot be
    read, past the retries."""


class SubmitUncertainError(WaveSpeedError):
    """The submit may or may not have created a (paid) task: it failed after its body was sent, in
    any way (a broken connection, a 5xx, a gateway page, a garbled reply). It is never re-sent (one
    click, one bill); with ``request_id`` set the task exists and is paid."""


class TaskFailedError(WaveSpeedError):
    """The task ran and failed; carries the server's ``data.error`` and task code. Its text does not
    name the task (there is nothing to fetch; ``request_id`` and the journal keep it)."""

    names_task = False

    def __init__(self, what: str = "", *, code: int | None = None, **fields: Any) -> None:
        self.code = code
        super().__init__(what, **fields)


class ModerationRefusedError(TaskFailedError):
    """WaveSpeed's moderation refused the input (task code 1200, "potentially sensitive"): the same
    input is refused again, so it is never retried; the user changes the prompt or image."""


class ContentFlaggedError(TaskFailedError):
    """The output was flagged NSFW and the node was told to fail on it (the output exists: named)."""

    names_task = True


class WaitTimeoutError(WaveSpeedError):
    """The wait deadline passed; the task may still finish and can be fetched by its request id."""


class CancelledError(WaveSpeedError):
    """The user cancelled the wait; the task may still finish and can be fetched by its request id."""


class DownloadError(WaveSpeedError):
    """An output could not be fetched (network, size cap, truncated body)."""


class ImageDecodeError(WaveSpeedError):
    """Bytes that are not a usable image: corrupt, truncated, unsupported, or a decompression bomb."""


class BudgetExceededError(WaveSpeedError):
    """Submitting would cross the session budget the user set."""


WaveSpeedError.__module__ = _SHORT_MODULE
