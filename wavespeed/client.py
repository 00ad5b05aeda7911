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

The API key goes only to the configured base URL: added per API request (the session holds no
default auth), checked again at send time against the parsed origin (transport.GuardedAdapter),
and API calls never follow redirects (a 3xx is a ConfigError). Output downloads (CDN URLs) never
carry the Authorization header, so they may follow redirects (at most 5).

Every request (API call, result poll, download, upload) runs inside a wall-clock window:
min(its own total cap, the caller's deadline). When it closes, or Cancel turns true for a read, the
socket is shut down and the worker returns at once with a typed error (transport.guard). A submit
is not cut by Cancel: once its body is sent, only its own cap ends it, so a paid id gets through;
nor is an upload (free, and its URL fills the cache for the next run): both end at their window.
Replies are size-capped and parsed totally (replies.load_json): only our typed errors come out.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import requests

from . import errors as E
from . import replies as R
from . import transport
from .config import load_settings
from .models import Balance, HistoryItem, KontextRequest, Prediction, UploadReply
from .replies import MAX_REPLY_BYTES, retry_after_s
from .urls import DEFAULT_BASE_URL, parse_origin
from .vocabulary import CancelCheck, check_request_id

log = logging.getLogger("wavespeed")

ProgressCallback = Callable[[Prediction, float], None]

T = TypeVar("T")
Out = TypeVar("Out")
P = ParamSpec("P")
Reader = Callable[[Any], T]  # the envelope's ``data`` -> a typed reply

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
MAX_DOWNLOAD_REDIRECTS = 5
_CANCEL_SLICE_S = 0.1  # how often sleeps look at the cancel callback (issue asks for <= 0.25 s)


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
    max_retry_after_s: float = 120.0  # a server asking for longer gets a typed error now, not a nap

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


class _Broken(Exception):
    """The exchange broke after the connection was made; ``fired`` says whether our window did it."""

    def __init__(self, fired: str | None, reason: str) -> None:
        self.fired = fired
        self.reason = reason
        super().__init__(reason)


def _names_its_task(call: Callable[P, Out]) -> Callable[P, Out]:
    """Once a task exists (the call's ``request_id``), every error it raises names it in its text."""

    @functools.wraps(call)
    def named(*args: P.args, **kwargs: P.kwargs) -> Out:
        try:
            return call(*args, **kwargs)
        except E.WaveSpeedError as exc:
            request_id = kwargs.get("request_id")
            _name_the_task(exc, request_id if isinstance(request_id, str) else None)
            raise

    return named


class WaveSpeedClient:
    """One pooled keep-alive session per client; safe to share between threads."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        request_cap_s: float | None = None,
        download_cap_s: float = 120.0,
        upload_cap_s: float = 120.0,
        retry: RetryPolicy | None = None,
        poll: PollSchedule | None = None,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        client_name: str = "comfyui-wavespeed-kontext",
    ) -> None:
        """``request_cap_s`` is the wall-clock cap of one API call (default: connect + read
        timeout); downloads and uploads have their own caps. A caller's deadline can only shorten
        them."""
        if not api_key:
            raise E.ConfigError("No WaveSpeed API key given: set WAVESPEED_API_KEY.")
        E.register_secret(api_key)
        if not api_key.isascii() or not api_key.isprintable() or " " in api_key:
            raise E.ConfigError(
                "The WaveSpeed API key contains spaces or non-ASCII characters (a copy-paste slip?): "
                "set WAVESPEED_API_KEY to the key exactly as wavespeed.ai shows it."
            )
        self._api_key = api_key
        self.origin = parse_origin(base_url)
        self.base_url = self.origin.base_url
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.request_cap_s = request_cap_s
        self.download_cap_s = download_cap_s
        self.upload_cap_s = upload_cap_s
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollSchedule()
        self.max_download_bytes = max_download_bytes
        self._session = requests.Session()
        adapter = transport.GuardedAdapter(self.origin, pool_connections=4, pool_maxsize=64, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"X-Client-Name": client_name, "User-Agent": client_name})
        self._session.trust_env = False  # no proxy/netrc surprises; .netrc could otherwise add auth
        self._session.max_redirects = MAX_DOWNLOAD_REDIRECTS
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

    def submit(
        self, request: KontextRequest, *, cancel: CancelCheck | None = None, retry_rate_limit: bool = True
    ) -> Prediction:
        """Validate locally, then POST the task once. In sync mode the reply may already be final.

        Contract for callers (the journal codes against it):
          * returns a Prediction whenever the reply names a valid task id, even if other fields
            are garbage (they are dropped; an unreadable status becomes "created");
          * a WaveSpeedError with ``request_id`` set means the task was accepted and paid:
            journal it (it is a SubmitUncertainError whose message gives the id);
          * SubmitUncertainError without ``request_id``: the task may exist; it is never resent;
          * any other WaveSpeedError: no task was created (the price can be given back).
        ``retry_rate_limit=False`` raises RateLimitedError (with ``retry_after_s``) on the first
        429 instead of backing off, for a scheduler that paces submits itself. ``cancel`` is
        checked before the POST; once the body is sent only the request's own cap ends it, so a
        paid id is never dropped by a Cancel.
        """
        request.validate(api_base=self.base_url)  # InvalidRequestError before any request
        read_timeout = max(self.read_timeout_s, 150.0) if request.enable_sync_mode else self.read_timeout_s
        prediction = self._api_json(
            "POST",
            f"/api/v3/{request.model}",
            lambda data: Prediction.from_data(data, lenient=True),
            json=request.payload(),
            during="submit",
            idempotent=False,
            read_timeout_s=read_timeout,
            cancel=cancel,
            retry_rate_limit=retry_rate_limit,
        )
        log.info("submitted %s as task %s (status %s)", request.model, prediction.id, prediction.status)
        return prediction

    def get_result(
        self, request_id: str, *, deadline: float | None = None, cancel: CancelCheck | None = None
    ) -> Prediction:
        request_id = check_request_id(request_id)
        return self._api_json(
            "GET",
            f"/api/v3/predictions/{request_id}/result",
            Prediction.from_data,
            during="result",
            idempotent=True,
            request_id=request_id,
            deadline=deadline,
            cancel=cancel,
        )

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
        self,
        output: str,
        *,
        cancel: CancelCheck | None = None,
        deadline: float | None = None,
        request_id: str | None = None,
    ) -> bytes:
        """Fetch one output: a CDN URL (no Authorization header) or base64 / a data URI.
        ``request_id`` (the task the output belongs to) is named in every error, so a failed
        download still says which paid task to fetch again."""
        if output.startswith(("http://", "https://")):
            return self._download_url(output, cancel=cancel, deadline=deadline, request_id=request_id)
        return _decode_base64_output(output, self.max_download_bytes, request_id)

    def url_is_live(self, url: str, *, deadline: float | None = None) -> bool:
        """True if a HEAD of ``url`` answers 2xx: revalidates a cached upload URL before reuse.

        Sends no Authorization header (the file lives on a CDN, never the API host), follows no
        redirect (a 3xx counts as gone) and runs inside one API call's wall-clock window, so a
        dribbling CDN cannot hold the node; any failure counts as gone, which only costs a free
        re-upload."""
        end, _ = _window(deadline, self.request_cap_s or (self.connect_timeout_s + self.read_timeout_s))
        with self._lock:
            self.request_count += 1
        try:
            with transport.guard(end, None):
                timeout = (self.connect_timeout_s, self.read_timeout_s)
                with self._session.head(url, timeout=timeout, allow_redirects=False) as reply:
                    return 200 <= reply.status_code < 300
        except (requests.RequestException, OSError):
            return False

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
        return self._api_json(
            "POST",
            "/api/v3/media/upload/binary",
            lambda data: UploadReply.from_data(data).download_url,
            files={"file": (filename, data, content_type)},
            during="upload",
            idempotent=True,
            cancel=cancel,
            deadline=deadline,
            cap_s=self.upload_cap_s,
        )

    def balance(self) -> float:
        """The account balance in USD (``GET /api/v3/balance``)."""
        balance = self._api_json(
            "GET", "/api/v3/balance", Balance.from_data, during="balance", idempotent=True
        )
        return balance.usd

    def history_page(
        self,
        query: dict[str, Any],
        *,
        deadline: float | None = None,
        cancel: CancelCheck | None = None,
    ) -> list[HistoryItem]:
        """One page of the account's task history (``POST /api/v3/predictions``, last 7 days).

        Args:
            query: the API's filter body (page, page_size, model, created_after, ...).
        Returns:
            The page's items, parsed (an empty list when the reply has none); callers match them.
        Raises:
            WaveSpeedError: typed, after the read retry rule.
        """
        return self._api_json(
            "POST",
            "/api/v3/predictions",
            HistoryItem.page_from_data,
            json=query,
            during="history",
            idempotent=True,
            deadline=deadline,
            cancel=cancel,
        )

    # ------------------------------------------------------------------ internals

    @_names_its_task
    def _api_json(
        self,
        method: str,
        path: str,
        reader: Reader[T],
        *,
        during: str,
        idempotent: bool,
        json: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
        cancel: CancelCheck | None = None,
        read_timeout_s: float | None = None,
        cap_s: float | None = None,
        retry_rate_limit: bool = True,
    ) -> T:
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}"}
        read_s = read_timeout_s or self.read_timeout_s
        cap = cap_s or self.request_cap_s or (self.connect_timeout_s + read_s)
        # Cancel cuts a read mid-flight; a submit (it may be paid) and an upload (it finishes in the
        # background and fills the upload cache for the next run) end only at their window.
        cancel_cuts = idempotent and during != "upload"
        attempt = 0
        while True:
            self._check_cancel(cancel, request_id)
            timeout = self._timeouts(deadline, read_s, request_id)
            end, by_caller = _window(deadline, cap)
            failure: E.WaveSpeedError
            wait_s: float | None = None
            try:
                with transport.guard(end, cancel if cancel_cuts else None) as window:
                    reply = self._exchange(
                        method, url, window, headers=headers, json=json, files=files, timeout=timeout
                    )
            except _NotSent as exc:
                reason = str(exc)
                failure = E.ServerError(
                    f"Cannot reach WaveSpeed at {self.base_url} during {during} ({exc}); check your network.",
                    request_id=request_id,
                )
            except _Broken as exc:
                reason = exc.reason
                failure = self._broken(exc, during, idempotent, request_id, by_caller=by_caller, cap=cap)
            else:
                wait_s = retry_after_s(reply.headers.get("Retry-After"))
                parsed = R.interpret(
                    reply,
                    reader,
                    during=during,
                    request_id=request_id,
                    idempotent=idempotent,
                    base_url=self.base_url,
                )
                if not isinstance(parsed, tuple):
                    return parsed
                failure, status, message = parsed
                if isinstance(failure, E.RateLimitedError):
                    failure.retry_after_s = wait_s
                    if not idempotent and not retry_rate_limit:
                        raise failure
                reason = f"HTTP {status}" if reply.status != 200 or status != 200 else "malformed reply"
                R.raise_unless_retryable(failure, status, message, idempotent=idempotent)
            attempt += 1
            if attempt >= self.retry.attempts:
                raise failure
            delay = self._delay(attempt, wait_s, deadline, failure, during)
            log.warning("WaveSpeed %s: %s; retry %d in %.2fs", during, reason, attempt, delay)
            self._sleep(delay, cancel=cancel, deadline=deadline, request_id=request_id)

    def _delay(
        self,
        attempt: int,
        wait_s: float | None,
        deadline: float | None,
        failure: E.WaveSpeedError,
        during: str,
    ) -> float:
        """Backoff, or the server's Retry-After; a Retry-After past the deadline (or past
        ``max_retry_after_s``) raises the failure now, saying so, instead of sleeping."""
        if wait_s is None:
            delay = self.retry.delay(attempt - 1)
            return delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
        limit = self.retry.max_retry_after_s
        if deadline is not None:
            limit = min(limit, deadline - time.monotonic())
        if wait_s > limit:
            failure.message = E.redact(_refused_wait_text(failure, wait_s, during, attempt))
            failure.args = (failure.message,)
            raise failure
        return wait_s

    def _exchange(
        self,
        method: str,
        url: str,
        window: transport.Guard,
        *,
        headers: dict[str, str],
        json: dict[str, Any] | None,
        files: dict[str, Any] | None,
        timeout: tuple[float, float],
    ) -> R.Reply:
        """Send one request and read its body up to MAX_REPLY_BYTES, inside ``window``."""
        with self._lock:
            self.request_count += 1
        try:
            resp = self._session.request(
                method,
                url,
                headers=headers,
                json=json,
                files=files,
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise _NotSent("connect timeout") from exc
        except requests.exceptions.ConnectionError as exc:
            if _is_connect_failure(exc) and window.fired is None:
                raise _NotSent("connection refused") from exc
            raise _Broken(window.fired, type(exc).__name__) from None
        except (requests.RequestException, OSError) as exc:
            raise _Broken(window.fired, type(exc).__name__) from None
        try:
            with resp:
                body, truncated = R.read_up_to(resp, MAX_REPLY_BYTES)
        except (requests.RequestException, OSError) as exc:
            raise _Broken(window.fired, type(exc).__name__) from None
        return R.Reply(resp.status_code, resp.headers, body, truncated)

    def _broken(
        self,
        exc: _Broken,
        during: str,
        idempotent: bool,
        request_id: str | None,
        *,
        by_caller: bool,
        cap: float,
    ) -> E.WaveSpeedError:
        """The typed error for an exchange that broke mid-way; raises it when it must not be retried."""
        if exc.fired == transport.FIRED_CANCEL:
            raise E.CancelledError(R.later_hint("Cancelled", request_id), request_id=request_id)
        stalled = exc.fired == transport.FIRED_DEADLINE
        if not idempotent:
            why = (
                f"no complete reply within {cap:.0f} s" if stalled else f"the connection failed: {exc.reason}"
            )
            raise E.SubmitUncertainError(
                f"The submit was sent but {why}; it was not resent to avoid a double charge: check "
                "your WaveSpeed history before queuing again."
            )
        if stalled and by_caller:
            raise self._timeout_error(request_id)
        if stalled:
            return E.ServerError(
                f"WaveSpeed did not finish its {during} reply within {cap:.0f} s (a stalled connection); "
                "retries ran out, try again later.",
                request_id=request_id,
            )
        return E.ServerError(
            f"Network error talking to WaveSpeed during {during} ({exc.reason}); retries ran out.",
            request_id=request_id,
        )

    def _download_url(
        self, url: str, *, cancel: CancelCheck | None, deadline: float | None, request_id: str | None
    ) -> bytes:
        attempt = 0
        of = _of_task(request_id)
        while True:
            self._check_cancel(cancel, request_id)
            timeout = self._timeouts(deadline, self.read_timeout_s, request_id)
            end, by_caller = _window(deadline, self.download_cap_s)
            wait_s: float | None = None
            try:
                with self._lock:
                    self.request_count += 1
                # No Authorization header: outputs live on a CDN that must never see the key.
                with transport.guard(end, cancel) as window:
                    try:
                        with self._session.get(url, stream=True, timeout=timeout) as resp:
                            if resp.status_code != 200:
                                wait_s = retry_after_s(resp.headers.get("Retry-After"))
                                failure: E.WaveSpeedError = E.DownloadError(
                                    f"Downloading an output{of} failed with HTTP {resp.status_code} "
                                    f"({_short_url(url)}).",
                                    request_id=request_id,
                                    status=resp.status_code,
                                )
                                if resp.status_code not in R.RETRYABLE_STATUS:
                                    raise failure
                            else:
                                return self._read_capped(resp, cancel, request_id)
                    except (requests.RequestException, OSError) as exc:
                        raise _Broken(window.fired, type(exc).__name__) from None
            except _Broken as exc:
                failure = self._broken_download(exc, url, request_id, by_caller=by_caller)
            attempt += 1
            if attempt >= self.retry.attempts:
                raise failure
            delay = self._delay(attempt, wait_s, deadline, failure, "download")
            self._sleep(delay, cancel=cancel, deadline=deadline, request_id=request_id)

    def _broken_download(
        self, exc: _Broken, url: str, request_id: str | None, *, by_caller: bool
    ) -> E.WaveSpeedError:
        of = _of_task(request_id)
        if exc.fired == transport.FIRED_CANCEL:
            raise E.CancelledError(
                R.later_hint(f"Cancelled during a download{of}", request_id), request_id=request_id
            )
        if exc.fired == transport.FIRED_DEADLINE and by_caller:
            raise self._timeout_error(request_id, during=" downloading its outputs")
        if exc.fired == transport.FIRED_DEADLINE:
            return E.DownloadError(
                f"Downloading an output{of} did not finish within {self.download_cap_s:.0f} s ({_short_url(url)}).",
                request_id=request_id,
            )
        return E.DownloadError(
            f"Downloading an output{of} failed ({exc.reason}) from {_short_url(url)}.", request_id=request_id
        )

    def _read_capped(
        self, resp: requests.Response, cancel: CancelCheck | None, request_id: str | None
    ) -> bytes:
        declared = resp.headers.get("Content-Length")
        of = _of_task(request_id)
        if declared and declared.isdigit() and int(declared) > self.max_download_bytes:
            raise E.DownloadError(
                f"Output{of} is {int(declared)} bytes, over the {self.max_download_bytes}-byte cap; "
                "refusing to download.",
                request_id=request_id,
            )
        chunks: list[bytes] = []
        total = 0
        for chunk in resp.iter_content(chunk_size=256 * 1024):
            self._check_cancel(cancel, request_id)
            total += len(chunk)
            if total > self.max_download_bytes:
                raise E.DownloadError(
                    f"Output{of} exceeds the {self.max_download_bytes}-byte cap; refusing it.",
                    request_id=request_id,
                )
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
            raise E.CancelledError(R.later_hint("Cancelled", request_id), request_id=request_id)

    @staticmethod
    def _timeout_error(request_id: str | None, during: str = "") -> E.WaitTimeoutError:
        what = f"Timed out{during}" if during else "Timed out waiting for WaveSpeed"
        return E.WaitTimeoutError(R.later_hint(what, request_id), request_id=request_id)


def _refused_wait_text(failure: E.WaveSpeedError, wait_s: float, during: str, attempt: int) -> str:
    """What happened when a Retry-After is longer than the call may wait: no "retries ran out"
    when nothing was retried, and the task id (with how to fetch it) once a task exists."""
    answer = f"HTTP {failure.status}" if failure.status else "a failed reply"
    tried = "" if attempt <= 1 else f", after {attempt - 1} retr{'y' if attempt == 2 else 'ies'}"
    text = (
        f"WaveSpeed asked to wait {wait_s:.0f} s before the next {during} request ({answer}{tried}), "
        "longer than this call may wait"
    )
    if isinstance(failure, E.RateLimitedError):
        text += "; lower the number of parallel tasks"
    if failure.request_id:
        return f"{text}; task {failure.request_id} is kept: paste its request id into Poll Result later (no new charge)."
    if during == "submit":
        return f"{text}; no task was created (nothing charged): queue again later."
    return f"{text}: try again later."


def _window(deadline: float | None, cap_s: float) -> tuple[float, bool]:
    """End of one request's window: min(now + its own cap, the caller's deadline), and whether
    the caller's deadline is the one that ends it."""
    own = time.monotonic() + cap_s
    if deadline is not None and deadline <= own:
        return deadline, True
    return own, False


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True only when the TCP connection was never established (so nothing was sent)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


def _name_the_task(exc: E.WaveSpeedError, request_id: str | None) -> None:
    """Put the task id first in an error's text (a one-line cap cannot cut it) with how to fetch it."""
    if not request_id or request_id in exc.message:
        return
    exc.request_id = exc.request_id or request_id
    exc.message = E.redact(
        E.one_line(
            f"Task {request_id}: {exc.message.rstrip('.')}; Poll Result fetches it later by this "
            "request id (no new charge)."
        )
    )
    exc.args = (exc.message,)


def _of_task(request_id: str | None) -> str:
    return f" of task {request_id}" if request_id else ""


def _short_url(url: str) -> str:
    return url.split("?", 1)[0][:120]


def _decode_base64_output(value: str, cap: int, request_id: str | None = None) -> bytes:
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    of = _of_task(request_id)
    if len(payload) * 3 // 4 > cap:
        raise E.DownloadError(
            f"Base64 output{of} exceeds the {cap}-byte cap; refusing it.", request_id=request_id
        )
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise E.DownloadError(
            f"An output{of} is neither a URL nor valid base64; cannot read it.", request_id=request_id
        ) from None
