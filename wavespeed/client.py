"""WaveSpeed v3 REST client: submit, poll, download, upload — with retries, deadlines and Cancel.

The retry rule that keeps one click from billing twice:
  * Reads (result polls, downloads, balance) and uploads are retried on connection errors,
    timeouts, malformed replies, 429 and 5xx, with exponential backoff and jitter, inside the
    caller's deadline; ``Retry-After`` is honoured.
  * A submit (POST of a task) is retried ONLY when the server provably did not accept it: the
    connection could not be opened (refused / connect timeout: nothing was sent), HTTP 429 (rate
    limited, rejected) or HTTP 503 (service unavailable, rejected). Any other failure after the
    body was sent (reset, read timeout, 500/502/504, a garbled 200) may hide an accepted task, so
    it raises SubmitUncertainError and is never repeated automatically.

The API key goes only to the configured base URL. Output downloads (CDN URLs) never carry the
Authorization header: the session holds no default auth; it is added per API request.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from . import errors as E
from .config import DEFAULT_BASE_URL, check_base_url, load_settings
from .models import KontextRequest, Prediction

log = logging.getLogger("wavespeed")

CancelCheck = Callable[[], bool]
ProgressCallback = Callable[[Prediction, float], None]

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_CANCEL_SLICE_S = 0.1  # how often sleeps look at the cancel callback (issue asks for <= 0.25 s)
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_SUBMIT_RETRYABLE_STATUS = frozenset({429, 503})


class _RedactingFilter(logging.Filter):
    """Last line of defence: scrub registered secrets from every record of our logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = E.redact(record.getMessage())
        record.args = ()
        return True


log.addFilter(_RedactingFilter())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: delay_n = uniform(0.5, 1) * min(cap, base * 2**n)."""

    attempts: int = 6
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return float(random.uniform(0.5, 1.0) * min(self.max_delay_s, self.base_delay_s * 2.0**attempt))


@dataclass(frozen=True)
class PollSchedule:
    """First look fast, then back off to a cap. The cap bounds the polling lag by design:
    a task that finishes just after a poll is seen at most ``cap_s`` later."""

    first_s: float = 0.1
    factor: float = 1.5
    cap_s: float = 0.3

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield min(delay, self.cap_s)
            delay *= self.factor


class _NotSent(Exception):
    """The request provably never reached the server (safe to retry even a submit)."""


def _retry_after_s(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _server_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        ctype = resp.headers.get("Content-Type", "unknown type")
        return f"HTTP {resp.status_code} with a non-JSON reply ({ctype.split(';')[0]})"
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return f"HTTP {resp.status_code}"


def _error_for_status(
    status: int, message: str, *, during: str, request_id: str | None = None
) -> E.WaveSpeedError:
    """Map an HTTP (or envelope) status to the typed error with an actionable one-line message."""
    low = message.lower()
    if status == 402 or (status == 403 and ("balance" in low or "credit" in low or "insufficient" in low)):
        return E.InsufficientBalanceError(
            f"WaveSpeed balance too low ({message}): top up at wavespeed.ai, then queue again.", status=status
        )
    if status in (401, 403):
        return E.AuthenticationError(
            f"WaveSpeed rejected the API key (HTTP {status}: {message}): check WAVESPEED_API_KEY; "
            "new keys work only after the account's first top-up.",
            status=status,
        )
    if status == 404 and during == "result":
        return E.NotFoundError(
            f"WaveSpeed has no task {request_id}: check the request id (results are kept for 7 days).",
            request_id=request_id,
            status=status,
        )
    if status in (400, 404, 413, 422):
        return E.InvalidRequestError(f"WaveSpeed rejected the {during} request: {message}", status=status)
    if status == 429:
        return E.RateLimitedError(
            f"WaveSpeed rate limit hit during {during} (HTTP 429) and retries ran out: wait a minute "
            "or lower the number of parallel tasks.",
            request_id=request_id,
            status=status,
        )
    return E.ServerError(
        f"WaveSpeed server error during {during} (HTTP {status}: {message}); retries ran out, try again later.",
        request_id=request_id,
        status=status,
    )


class WaveSpeedClient:
    """One pooled keep-alive session per client; safe to share between threads."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        poll: PollSchedule | None = None,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        client_name: str = "comfyui-wavespeed-kontext",
    ) -> None:
        if not api_key:
            raise E.ConfigError("No WaveSpeed API key given: set WAVESPEED_API_KEY.")
        E.register_secret(api_key)
        if not api_key.isascii() or not api_key.isprintable() or " " in api_key:
            raise E.ConfigError(
                "The WaveSpeed API key contains spaces or non-ASCII characters (a copy-paste slip?): "
                "set WAVESPEED_API_KEY to the key exactly as wavespeed.ai shows it."
            )
        self._api_key = api_key
        self.base_url = check_base_url(base_url)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollSchedule()
        self.max_download_bytes = max_download_bytes
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"X-Client-Name": client_name, "User-Agent": client_name})
        self._session.trust_env = False  # no proxy/netrc surprises; .netrc could otherwise add auth
        self._lock = threading.Lock()
        self.request_count = 0

    def __repr__(self) -> str:
        return f"WaveSpeedClient(base_url={self.base_url!r})"

    @classmethod
    def from_env(cls, **kwargs: Any) -> WaveSpeedClient:
        settings = load_settings(extra_files=kwargs.pop("extra_key_files", ()))
        return cls(settings.api_key, settings.base_url, **kwargs)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> WaveSpeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def submit(self, request: KontextRequest, *, cancel: CancelCheck | None = None) -> Prediction:
        """Validate locally, then POST the task once. In sync mode the reply may already be final."""
        request.validate(api_base=self.base_url)  # InvalidRequestError before any request
        read_timeout = max(self.read_timeout_s, 150.0) if request.enable_sync_mode else self.read_timeout_s
        body = self._api_json(
            "POST",
            f"/api/v3/{request.model}",
            json=request.payload(),
            during="submit",
            idempotent=False,
            read_timeout_s=read_timeout,
            cancel=cancel,
        )
        prediction = Prediction.from_data(body.get("data"))  # shape already checked by _parse
        log.info("submitted %s as task %s (status %s)", request.model, prediction.id, prediction.status)
        return prediction

    def get_result(
        self, request_id: str, *, deadline: float | None = None, cancel: CancelCheck | None = None
    ) -> Prediction:
        request_id = _check_request_id(request_id)
        body = self._api_json(
            "GET",
            f"/api/v3/predictions/{request_id}/result",
            during="result",
            idempotent=True,
            request_id=request_id,
            deadline=deadline,
            cancel=cancel,
        )
        return Prediction.from_data(body.get("data"))  # shape already checked by _parse

    def wait(
        self,
        request_id: str,
        *,
        timeout_s: float = 600.0,
        cancel: CancelCheck | None = None,
        progress: ProgressCallback | None = None,
        first: Prediction | None = None,
    ) -> Prediction:
        """Poll until completed; raise TaskFailedError, WaitTimeoutError or CancelledError.

        ``first`` is a reply already in hand (e.g. the submit's), used instead of an immediate poll.
        """
        start = time.monotonic()
        deadline = start + timeout_s
        delays = self.poll.delays()
        prediction = first
        while True:
            self._check_cancel(cancel, request_id)
            if prediction is None:
                prediction = self.get_result(request_id, deadline=deadline, cancel=cancel)
            if progress is not None:
                progress(prediction, time.monotonic() - start)
            if prediction.is_completed:
                return prediction
            if prediction.is_failed:
                raise E.TaskFailedError(
                    f"WaveSpeed task {request_id} {prediction.status}: "
                    f"{prediction.error or 'no reason given'}"
                    + (f" (code {prediction.code})" if prediction.code else ""),
                    request_id=request_id,
                    code=prediction.code,
                )
            self._sleep(next(delays), cancel=cancel, deadline=deadline, request_id=request_id)
            prediction = None

    def run(
        self,
        request: KontextRequest,
        *,
        timeout_s: float = 600.0,
        cancel: CancelCheck | None = None,
        progress: ProgressCallback | None = None,
    ) -> Prediction:
        """Submit and wait: the convenience path for scripts and benchmarks."""
        first = self.submit(request, cancel=cancel)
        return self.wait(first.id, timeout_s=timeout_s, cancel=cancel, progress=progress, first=first)

    def download(
        self, output: str, *, cancel: CancelCheck | None = None, deadline: float | None = None
    ) -> bytes:
        """Fetch one output: a CDN URL (no Authorization header) or base64 / a data URI."""
        if output.startswith(("http://", "https://")):
            return self._download_url(output, cancel=cancel, deadline=deadline)
        return _decode_base64_output(output, self.max_download_bytes)

    def upload(
        self,
        data: bytes,
        *,
        filename: str = "image.png",
        content_type: str = "image/png",
        cancel: CancelCheck | None = None,
        deadline: float | None = None,
    ) -> str:
        """Upload bytes to WaveSpeed's media store; return the URL to pass as ``image``.
        Uploads cost nothing, so they are retried like reads."""
        body = self._api_json(
            "POST",
            "/api/v3/media/upload/binary",
            files={"file": (filename, data, content_type)},
            during="upload",
            idempotent=True,
            cancel=cancel,
            deadline=deadline,
        )
        url = body.get("data", {}).get("download_url") if isinstance(body.get("data"), dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise E.ServerError("WaveSpeed upload reply has no download_url; try again.")
        return url

    def balance(self) -> float:
        body = self._api_json("GET", "/api/v3/balance", during="balance", idempotent=True)
        data = body.get("data")
        value = data.get("balance") if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise E.ServerError("WaveSpeed balance reply has no balance number.")
        return float(value)

    # ------------------------------------------------------------------ internals

    def _api_json(
        self,
        method: str,
        path: str,
        *,
        during: str,
        idempotent: bool,
        json: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
        cancel: CancelCheck | None = None,
        read_timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """One API call with the retry rule above; returns the parsed 200 envelope."""
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}"}
        attempt = 0
        while True:
            self._check_cancel(cancel, request_id)
            timeout = self._timeouts(deadline, read_timeout_s or self.read_timeout_s, request_id)
            failure: E.WaveSpeedError
            wait_s: float | None = None
            try:
                resp = self._send(method, url, headers=headers, json=json, files=files, timeout=timeout)
            except _NotSent as exc:
                reason = str(exc)
                failure = E.ServerError(
                    f"Cannot reach WaveSpeed at {self.base_url} during {during} ({exc}); check your network.",
                    request_id=request_id,
                )
            except requests.RequestException as exc:
                reason = type(exc).__name__
                if not idempotent:
                    raise E.SubmitUncertainError(
                        f"The connection failed after the submit was sent ({reason}); it was not resent to "
                        "avoid a double charge: check your WaveSpeed history before queuing again."
                    ) from None
                failure = E.ServerError(
                    f"Network error talking to WaveSpeed during {during} ({reason}); retries ran out.",
                    request_id=request_id,
                )
            else:
                parsed = self._parse(resp, during=during, request_id=request_id, idempotent=idempotent)
                if isinstance(parsed, dict):
                    return parsed
                failure, status, message = parsed
                reason = f"HTTP {status}" if resp.status_code != 200 or status != 200 else "malformed reply"
                wait_s = _retry_after_s(resp)
                _raise_unless_retryable(failure, status, message, idempotent=idempotent)
            attempt += 1
            if attempt >= self.retry.attempts:
                raise failure
            delay = self.retry.delay(attempt - 1) if wait_s is None else wait_s
            if deadline is not None and time.monotonic() + delay > deadline:
                if wait_s is not None:
                    raise failure  # the server asks us to wait beyond the deadline: say why now
                delay = max(0.0, deadline - time.monotonic())
            log.warning("WaveSpeed %s: %s; retry %d in %.2fs", during, reason, attempt, delay)
            self._sleep(delay, cancel=cancel, deadline=deadline, request_id=request_id)

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        json: dict[str, Any] | None,
        files: dict[str, Any] | None,
        timeout: tuple[float, float],
    ) -> requests.Response:
        with self._lock:
            self.request_count += 1
        try:
            return self._session.request(
                method, url, headers=headers, json=json, files=files, timeout=timeout
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise _NotSent("connect timeout") from exc
        except requests.exceptions.ConnectionError as exc:
            if _is_connect_failure(exc):
                raise _NotSent("connection refused") from exc
            raise

    def _parse(
        self, resp: requests.Response, *, during: str, request_id: str | None, idempotent: bool
    ) -> dict[str, Any] | tuple[E.WaveSpeedError, int, str]:
        """A 200 envelope with code 200 -> dict; anything else -> (error, effective status, server
        message), where the status is the HTTP one or, inside a 200 reply, the envelope's code
        (200 for a malformed reply), so both go through the same retry rule."""
        if resp.status_code != 200:
            message = _server_message(resp)
            error = _error_for_status(resp.status_code, message, during=during, request_id=request_id)
            return error, resp.status_code, message
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if not idempotent:
                raise E.SubmitUncertainError(
                    "WaveSpeed answered the submit with a malformed reply; it was not resent to avoid a "
                    "double charge: check your WaveSpeed history before queuing again."
                )
            error = E.ServerError(
                f"WaveSpeed sent a malformed {during} reply (not JSON); retries ran out.",
                request_id=request_id,
            )
            return error, 200, "not JSON"
        code = body.get("code", 200)
        if isinstance(code, int) and not isinstance(code, bool) and code != 200:
            message = str(body.get("message") or body.get("error") or f"code {code}")
            return _error_for_status(code, message, during=during, request_id=request_id), code, message
        if during in ("submit", "result"):
            try:
                Prediction.from_data(body.get("data"))
            except ValueError as exc:  # valid JSON, wrong shape: a read retries it, a submit cannot
                if not idempotent:
                    raise E.SubmitUncertainError(
                        f"WaveSpeed's reply to the submit is malformed ({exc}); it was not resent to avoid "
                        "a double charge: check your WaveSpeed history before queuing again."
                    ) from None
                error = E.ServerError(
                    f"WaveSpeed sent a malformed {during} reply ({exc}); retries ran out, try again.",
                    request_id=request_id,
                )
                return error, 200, str(exc)
        return body

    def _download_url(self, url: str, *, cancel: CancelCheck | None, deadline: float | None) -> bytes:
        attempt = 0
        while True:
            self._check_cancel(cancel, None)
            timeout = self._timeouts(deadline, self.read_timeout_s, None)
            wait_s: float | None = None
            try:
                with self._lock:
                    self.request_count += 1
                # No Authorization header: outputs live on a CDN that must never see the key.
                with self._session.get(url, stream=True, timeout=timeout) as resp:
                    if resp.status_code != 200:
                        wait_s = _retry_after_s(resp)
                        failure = E.DownloadError(
                            f"Downloading an output failed with HTTP {resp.status_code} ({_short_url(url)})."
                        )
                        if resp.status_code not in _RETRYABLE_STATUS:
                            raise failure
                    else:
                        return self._read_capped(resp, url, cancel)
            except requests.RequestException as exc:
                failure = E.DownloadError(
                    f"Downloading an output failed ({type(exc).__name__}) from {_short_url(url)}."
                )
            attempt += 1
            if attempt >= self.retry.attempts:
                raise failure
            delay = self.retry.delay(attempt - 1) if wait_s is None else wait_s
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            self._sleep(delay, cancel=cancel, deadline=deadline, request_id=None)

    def _read_capped(self, resp: requests.Response, url: str, cancel: CancelCheck | None) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_download_bytes:
            raise E.DownloadError(
                f"Output is {int(declared)} bytes, over the {self.max_download_bytes}-byte cap; refusing to download."
            )
        chunks: list[bytes] = []
        total = 0
        for chunk in resp.iter_content(chunk_size=256 * 1024):
            self._check_cancel(cancel, None)
            total += len(chunk)
            if total > self.max_download_bytes:
                raise E.DownloadError(f"Output exceeds the {self.max_download_bytes}-byte cap; refusing it.")
            chunks.append(chunk)
        data = b"".join(chunks)
        if declared and declared.isdigit() and len(data) != int(declared):
            raise requests.exceptions.ChunkedEncodingError(f"truncated: {len(data)} of {declared} bytes")
        if not data:
            raise requests.exceptions.ChunkedEncodingError("empty body")
        return data

    def _timeouts(self, deadline: float | None, read_s: float, request_id: str | None) -> tuple[float, float]:
        if deadline is None:
            return (self.connect_timeout_s, read_s)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timeout_error(request_id)
        return (min(self.connect_timeout_s, remaining), min(read_s, remaining))

    def _sleep(
        self, seconds: float, *, cancel: CancelCheck | None, deadline: float | None, request_id: str | None
    ) -> None:
        """Sleep in short slices so Cancel and the deadline are noticed quickly."""
        end = time.monotonic() + seconds
        while True:
            self._check_cancel(cancel, request_id)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise self._timeout_error(request_id)
            if now >= end:
                return
            time.sleep(min(_CANCEL_SLICE_S, end - now))

    @staticmethod
    def _check_cancel(cancel: CancelCheck | None, request_id: str | None) -> None:
        if cancel is not None and cancel():
            raise E.CancelledError(_later_hint("Cancelled", request_id), request_id=request_id)

    @staticmethod
    def _timeout_error(request_id: str | None) -> E.WaitTimeoutError:
        return E.WaitTimeoutError(
            _later_hint("Timed out waiting for WaveSpeed", request_id), request_id=request_id
        )


def _raise_unless_retryable(
    failure: E.WaveSpeedError, status: int, message: str, *, idempotent: bool
) -> None:
    """The retry rule of the module docstring, for one failed reply; returns only if it may be retried."""
    if idempotent:
        if status in _RETRYABLE_STATUS or status == 200:  # 200 here means a malformed reply
            return
        raise failure
    if status in _SUBMIT_RETRYABLE_STATUS:
        return
    if status >= 500:
        # 500/502/504 after the body was sent may hide an accepted (paid) task.
        raise E.SubmitUncertainError(
            f"WaveSpeed answered the submit with HTTP {status} ({message}); it was not resent to avoid "
            "a double charge: check your WaveSpeed history before queuing again.",
            status=status,
        )
    raise failure


def _later_hint(what: str, request_id: str | None) -> str:
    if not request_id:
        return f"{what}."
    return (
        f"{what}; task {request_id} may still finish and is already paid for: paste this request id "
        "into WaveSpeed Poll Result to fetch it later without a new charge."
    )


def _check_request_id(request_id: str) -> str:
    rid = (request_id or "").strip()
    if not rid or not all(c.isalnum() or c in "-_" for c in rid) or len(rid) > 128:
        raise E.InvalidRequestError(
            f"{request_id!r} is not a WaveSpeed request id (expected letters and digits, e.g. 32 hex characters)."
        )
    return rid


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True only when the TCP connection was never established (so nothing was sent)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


def _short_url(url: str) -> str:
    return url.split("?", 1)[0][:120]


def _decode_base64_output(value: str, cap: int) -> bytes:
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    if len(payload) * 3 // 4 > cap:
        raise E.DownloadError(f"Base64 output exceeds the {cap}-byte cap; refusing it.")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise E.DownloadError("An output is neither a URL nor valid base64; cannot read it.") from None
