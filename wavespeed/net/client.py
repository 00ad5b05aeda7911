"""WaveSpeed v3 REST client: submit, look at a task, download, upload — with retries, deadlines and Cancel.

Waiting for a task is not here: every wait goes through the account's Poller
(wavespeed/limits/poller.py: ``wait_for``, ``submit_and_wait``), which calls ``get_result``.

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

Where the rest lives: the loop's mechanics (backoff, windows, Cancel, one exchange and its typed
failures) in request_loop.py; what a download's body must be (size cap, base64) in downloads.py;
the download loop in downloads.py; reply parsing in replies.py / models.py. This file is the
public facade plus the API call's retry loop; it is over ~400 lines only because each public call
documents its Args / Returns / Raises for callers (about a quarter of it), which we keep here
rather than split one facade across files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from ..api import errors as E
from ..api import replies as R
from ..api.models import Balance, HistoryItem, KontextRequest, Prediction, UploadReply
from ..api.replies import retry_after_s
from ..api.vocabulary import CancelCheck, check_request_id
from ..settings.config import load_settings
from ..settings.origin import DEFAULT_BASE_URL, parse_origin
from . import transport
from .downloads import MAX_DOWNLOAD_BYTES, MAX_DOWNLOAD_REDIRECTS, decode_base64_output, fetch_url
from .request_loop import (
    Broken,
    NotSent,
    RetryPolicy,
    backoff,
    broken,
    check_cancel,
    exchange,
    names_its_task,
    sleep,
    timeouts,
    window,
)

__all__ = ["MAX_DOWNLOAD_BYTES", "RetryPolicy", "WaveSpeedClient"]

log = logging.getLogger("wavespeed")

T = TypeVar("T")
Reader = Callable[[Any], T]  # the envelope's ``data`` -> a typed reply


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
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        client_name: str = "comfyui-wavespeed-kontext",
    ) -> None:
        """``request_cap_s`` is the wall-clock cap of one API call (default: connect + read
        timeout); downloads and uploads have their own caps. A caller's deadline can only shorten
        them.

        Raises:
            ConfigError: no key, a key with spaces or non-ASCII characters, or a bad ``base_url``.
        """
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
        """A client for the key and base URL of the environment / key files (config.load_settings);
        ``kwargs`` go to the constructor. Raises ConfigError when no key is found."""
        settings = load_settings(extra_files=kwargs.pop("extra_key_files", ()))
        return cls(settings.api_key, settings.base_url, **kwargs)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> WaveSpeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    @property
    def account_tag(self) -> str:
        """A one-way, key-free tag of this client's account (base URL + key), the name the journal,
        the scheduler and the poller know the account by; the key itself never leaves the client."""
        from ..journal.task_records import account_tag

        return account_tag(self.base_url, self._api_key)

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

        Returns:
            The accepted task (``id`` always valid; ``outputs`` filled when sync mode finished it).
        Raises:
            InvalidRequestError: the request fails local validation (nothing was sent).
            SubmitUncertainError: see the contract above.
            RateLimitedError: a 429 with ``retry_rate_limit=False``, or 429s past the retries.
            WaveSpeedError: the typed rest (auth, balance, validation by the server, ...).
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
        """One poll of a task (``GET /api/v3/predictions/{id}/result``), retried like any read.

        Args:
            request_id: the task id (checked: ASCII letters, digits, ``-`` and ``_`` only).
            deadline: a ``time.monotonic()`` instant the call must end by, retries included.
        Returns:
            The task as it stands now (any status; the Poller, wavespeed/limits/poller.py, loops over this).
        Raises:
            InvalidRequestError: a malformed request id (nothing was sent).
            NotFoundError: the server does not know the task.
            WaitTimeoutError / CancelledError: the deadline passed / Cancel turned true.
            WaveSpeedError: the typed rest; every error names the task.
        """
        return self._read_result(request_id, Prediction.from_data, "result", deadline, cancel)

    def download(
        self,
        output: str,
        *,
        cancel: CancelCheck | None = None,
        deadline: float | None = None,
        request_id: str | None = None,
    ) -> bytes:
        """Fetch one output: a CDN URL (no Authorization header) or base64 / a data URI.

        Args:
            output: one entry of a completed task's ``outputs``.
            request_id: the task the output belongs to; named in every error, so a failed
                download still says which paid task to fetch again.
        Returns:
            The file's bytes (at most ``max_download_bytes``).
        Raises:
            DownloadError: an HTTP error, a broken or oversized body, or unreadable base64.
            WaitTimeoutError / CancelledError: the deadline passed / Cancel turned true.
        """
        if output.startswith(("http://", "https://")):
            return self._download_url(output, cancel=cancel, deadline=deadline, request_id=request_id)
        return decode_base64_output(output, self.max_download_bytes, request_id)

    def url_is_live(self, url: str, *, deadline: float | None = None) -> bool:
        """True if a HEAD of ``url`` answers 2xx: revalidates a cached upload URL before reuse.

        Sends no Authorization header (the file lives on a CDN, never the API host), follows no
        redirect (a 3xx counts as gone) and runs inside one API call's wall-clock window, so a
        dribbling CDN cannot hold the node; any failure counts as gone, which only costs a free
        re-upload."""
        end, _ = window(deadline, self.request_cap_s or (self.connect_timeout_s + self.read_timeout_s))
        self._count()
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
        """Upload bytes to WaveSpeed's media store (``POST /api/v3/media/upload/binary``).

        Uploads cost nothing, so they are retried like reads; Cancel is checked between attempts
        but does not cut one in flight (its URL fills the upload cache for the next run).

        Returns:
            The file's URL, to pass as the request's ``image``.
        Raises:
            WaveSpeedError: typed, after the read retry rule (ServerError for an unreadable reply).
        """
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
        """The account balance in USD (``GET /api/v3/balance``).

        Raises:
            AuthenticationError: the key is refused.
            WaveSpeedError: typed, after the read retry rule.
        """
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
            deadline: a ``time.monotonic()`` instant the call must end by, retries included.
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

    def task_record(
        self, request_id: str, *, deadline: float | None = None, cancel: CancelCheck | None = None
    ) -> HistoryItem:
        """A task's ``/result`` with the request echo the server may add (``inputs`` / ``input``):
        what the history lookup matches an interrupted submit on when list items carry none.

        Raises:
            InvalidRequestError / NotFoundError / WaveSpeedError: as ``get_result``.
        """
        return self._read_result(request_id, HistoryItem.task_from_data, "history", deadline, cancel)

    # ------------------------------------------------------------------ internals

    def _read_result(
        self,
        request_id: str,
        reader: Reader[T],
        during: str,
        deadline: float | None,
        cancel: CancelCheck | None,
    ) -> T:
        """``GET /api/v3/predictions/{id}/result`` read by ``reader`` (a poll, or the recovery's echo)."""
        request_id = check_request_id(request_id)
        return self._api_json(
            "GET",
            f"/api/v3/predictions/{request_id}/result",
            reader,
            during=during,
            idempotent=True,
            request_id=request_id,
            deadline=deadline,
            cancel=cancel,
        )

    @names_its_task
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
            check_cancel(cancel, request_id)
            timeout = timeouts(self.connect_timeout_s, read_s, deadline, request_id)
            end, by_caller = window(deadline, cap)
            failure: E.WaveSpeedError
            wait_s: float | None = None
            try:
                with transport.guard(end, cancel if cancel_cuts else None) as guard:
                    self._count()
                    reply = exchange(
                        self._session,
                        method,
                        url,
                        guard,
                        headers=headers,
                        json=json,
                        files=files,
                        timeout=timeout,
                    )
            except NotSent as exc:
                reason = str(exc)
                failure = E.ServerError(
                    f"Cannot reach WaveSpeed at {self.base_url} during {during} ({exc}); check your network.",
                    request_id=request_id,
                )
            except Broken as exc:
                reason = exc.reason
                failure = broken(exc, during, idempotent, request_id, by_caller=by_caller, cap=cap)
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
            delay = backoff(self.retry, attempt, wait_s, deadline, failure, during)
            log.warning("WaveSpeed %s: %s; retry %d in %.2fs", during, reason, attempt, delay)
            sleep(delay, cancel=cancel, deadline=deadline, request_id=request_id)

    def _download_url(
        self, url: str, *, cancel: CancelCheck | None, deadline: float | None, request_id: str | None
    ) -> bytes:
        return fetch_url(
            self._session,
            url,
            retry=self.retry,
            timeouts_s=(self.connect_timeout_s, self.read_timeout_s),
            cap_s=self.download_cap_s,
            max_bytes=self.max_download_bytes,
            count=self._count,
            cancel=cancel,
            deadline=deadline,
            request_id=request_id,
        )

    def _count(self) -> None:
        """One more request sent (tests and benchmarks read ``request_count``)."""
        with self._lock:
            self.request_count += 1
