"""WaveSpeed v3 REST client: submit, look at a task, download, upload — with retries, deadlines and Cancel.

The public calls, each documented for its callers (Args / Returns / Raises). Underneath, in
api_session.py: the key, the account's name and the one retry loop every API call runs through
(the retry rule that keeps one click from billing twice is written there). Waiting for a task is not
here: every wait goes through the account's Poller (wavespeed/limits/poller.py: ``wait_for``,
``submit_and_wait``), which calls ``get_result``.

Where the rest lives: the loop's mechanics (backoff, windows, Cancel, one exchange and its typed
failures) in request_loop.py; what a download's body must be (size cap, base64) and the download
loop in downloads.py; reply parsing in ../api/replies.py and the typed replies in ../api/reply_types.py.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import requests

from ..api.kontext_request import KontextRequest
from ..api.reply_types import Balance, HistoryItem, Prediction, UploadReply
from ..api.retry_rule import RetryPolicy
from ..core.vocabulary import CancelCheck, check_request_id
from ..settings.config import load_settings
from . import transport
from .api_session import ApiSession, Reader
from .downloads import MAX_DOWNLOAD_BYTES, decode_base64_output, fetch_url
from .request_loop import window

__all__ = ["MAX_DOWNLOAD_BYTES", "RetryPolicy", "WaveSpeedClient"]

log = logging.getLogger("wavespeed")

T = TypeVar("T")


class WaveSpeedClient(ApiSession):
    """The WaveSpeed v3 calls over one pooled keep-alive session (ApiSession); safe to share
    between threads."""

    def __repr__(self) -> str:
        return f"WaveSpeedClient(base_url={self.base_url!r})"

    @classmethod
    def from_env(cls, **kwargs: Any) -> WaveSpeedClient:
        """A client for the key and base URL of the environment / key files (config.load_settings);
        ``kwargs`` go to the constructor. Raises ConfigError when no key is found."""
        settings = load_settings(extra_files=kwargs.pop("extra_key_files", ()))
        return cls(settings.api_key, settings.base_url, **kwargs)

    def __enter__(self) -> WaveSpeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def submit(
        self, request: KontextRequest, *, cancel: CancelCheck | None = None, retry_rate_limit: bool = True
    ) -> Prediction:
        """Validate locally (unless ``request.validate`` already checked it for this base URL), then
        POST the task once. In sync mode the reply may already be final.

        Contract for callers (the journal codes against it):
          * returns a Prediction whenever the reply names a valid task id, even if other fields
            are garbage (they are dropped; an unreadable status becomes "created");
          * a WaveSpeedError with ``request_id`` set means the task was accepted and paid:
            journal it (it is a SubmitUncertainError whose message gives the id);
          * SubmitUncertainError without ``request_id``: the task may exist (a 5xx, a gateway
            page, a 429 that is not WaveSpeed's own, a broken exchange); it is never resent;
          * any other WaveSpeedError: no task was created (the price can be given back): nothing
            was sent, or WaveSpeed refused it (its 429 envelope, a 4xx).
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
        if request.body is None or request.checked_for != self.base_url:  # checked once, for this base
            request.validate(api_base=self.base_url)  # InvalidRequestError before any request
        assert request.body is not None
        read_timeout = max(self.read_timeout_s, 150.0) if request.enable_sync_mode else self.read_timeout_s
        prediction = self._api_json(
            "POST",
            f"/api/v3/{request.model}",
            lambda data: Prediction.from_data(data, lenient=True),
            json=dict(request.body),
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
        """One poll of a task (``GET /api/v3/predictions/{id}/result``), retried like any read;
        each try waits its turn: at least 2 s after the previous check of the task ended.

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
        """``GET /api/v3/predictions/{id}/result`` read by ``reader`` (a poll, or the recovery's echo):
        the one way the pack checks a task, so every check keeps WaveSpeed's pace (check_pace.PACE)."""
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
            paced=True,
        )

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
            trust=self.trust,
        )
