"""One exception family for everything that can go wrong talking to WaveSpeed.

Every message is a single actionable line (what went wrong, what to do) and never contains the
API key: the base class scrubs any registered secret from the text it is given, so a server that
echoes the key back, or a URL that carries it, cannot leak it through an error.
"""

from __future__ import annotations

import threading
from typing import TypeVar
from urllib.parse import quote, quote_plus

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def _encoded_forms(secret: str) -> set[str]:
    """The secret as a server may echo it back: raw, and URL-encoded (upper and lower hex)."""
    forms = {secret}
    for encoded in (quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)):
        forms.add(encoded)
        forms.add(_lower_hex(encoded))
    return forms


def _lower_hex(text: str) -> str:
    parts = text.split("%")
    return parts[0] + "".join("%" + p[:2].lower() + p[2:] for p in parts[1:])


def register_secret(secret: str) -> None:
    """Remember a value (the API key) that must never appear in an error or log line, in any of
    the URL-encoded forms a server could echo it in."""
    if secret and len(secret) >= 4:
        with _secrets_lock:
            _secrets.update(_encoded_forms(secret))


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with a fixed marker."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so a server's multi-line message stays one readable line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_Err = TypeVar("_Err", bound="WaveSpeedError")


class WaveSpeedError(Exception):
    """Base class. ``request_id`` is set whenever a task exists, so the result can be fetched later."""

    def __init__(self, message: str, *, request_id: str | None = None, status: int | None = None) -> None:
        self.message = redact(one_line(message))
        self.request_id = request_id
        self.status = status
        super().__init__(self.message)

    def with_task(self: _Err, request_id: str, *, journaled: bool) -> _Err:
        """Record the paid task this error is about (its id, and whether the journal kept it)."""
        self.request_id = request_id
        self.journaled = journaled
        if request_id not in self.message:
            kept = "journaled" if journaled else "not journaled"
            self.message = (
                f"{self.message.rstrip('.')} (task {request_id} was accepted and {kept}: "
                "paste its id into WaveSpeed Poll Result to fetch the result)."
            )
            self.args = (self.message,)
        return self


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

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, request_id=request_id, status=status)


class ServerError(WaveSpeedError):
    """5xx, connection failures or malformed replies that retries could not get past."""


class SubmitUncertainError(ServerError):
    """The submit may or may not have reached the server; it is not retried (one click, one bill)."""


class TaskFailedError(WaveSpeedError):
    """The task ran and failed; carries the server's ``data.error`` and task code."""

    def __init__(self, message: str, *, request_id: str | None = None, code: int | None = None) -> None:
        self.code = code
        super().__init__(message, request_id=request_id)


class ModerationRefusedError(TaskFailedError):
    """WaveSpeed's moderation refused the input (task code 1200, "potentially sensitive"): the same
    input is refused again, so it is never retried; the user changes the prompt or image."""


class ContentFlaggedError(TaskFailedError):
    """The output was flagged NSFW and the node was told to fail on it."""


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
