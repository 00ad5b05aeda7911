"""The download path of one task output: the retry loop, the size cap, base64 / data-URI outputs.

Outputs are fetched from a CDN without the Authorization header, retried like reads (connection
errors, 429, 5xx: the one retry rule, ../api/retry_rule.py) inside min(the download cap, the
caller's deadline), and every error names the task the output belongs to, so a failed download
still says which paid task to fetch again.

Decisions, and why:

* **Size.** The cap holds for the DECODED bytes: a body sent with ``Content-Encoding: gzip`` or
  ``deflate`` is decoded by urllib3 (which inflates at most one chunk per read), counted chunk by
  chunk, and refused the moment it passes the cap, so a gzip bomb never fills memory. A declared
  Content-Length over the cap is refused before reading when the body is not encoded.
* **Truncation.** A Content-Length counts the bytes on the wire (encoded), so it is compared with
  what urllib3 read from the socket (``raw.tell()``), never with the decoded length; a shorter (or
  empty) body counts as a broken exchange and is retried.
* **Redirects.** Followed only within the output URL's own origin (scheme, host, port), at most
  ``MAX_DOWNLOAD_REDIRECTS``: the host WaveSpeed named is the one trusted to serve the output; a
  redirect elsewhere (an internal address, a metadata service) is a destination nobody vetted, so
  it is refused in one line (no retry) and the task stays fetchable by its id. No key is at stake:
  downloads never carry it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import urljoin

import requests
from urllib3.util import parse_url

from ..api.replies import retry_after_s
from ..api.retry_rule import (
    BadReply,
    Call,
    Cut,
    CutBy,
    Outcome,
    RetryPolicy,
    Unsent,
    cancelled_error,
    timeout_error,
)
from ..core import errors as E
from ..core.vocabulary import CancelCheck
from ..settings import network
from . import transport
from .request_loop import check_cancel, cut_by, retrying, timeouts, unreached, window

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
MAX_DOWNLOAD_REDIRECTS = 5


def fetch_url(
    session: requests.Session,
    url: str,
    *,
    retry: RetryPolicy,
    timeouts_s: tuple[float, float],
    cap_s: float,
    max_bytes: int,
    count: Callable[[], None],
    cancel: CancelCheck | None,
    deadline: float | None,
    request_id: str | None,
    trust: network.Trust | None = None,
) -> bytes:
    """GET one output URL with the read retry rule; ``count`` is called once per request sent;
    ``trust`` (the client's) is named when a certificate is not trusted.

    Raises:
        DownloadError: an HTTP error, a broken or oversized body, after the retries.
        WaitTimeoutError / CancelledError: the deadline passed / Cancel turned true.
    """
    connect_s, read_s = timeouts_s
    call = Call("download", repeatable=True, request_id=request_id, deadline=deadline, policy=retry)

    def attempt() -> bytes | Outcome:
        timeout = timeouts(connect_s, read_s, deadline, request_id)
        end, by_caller = window(deadline, cap_s)
        # No Authorization header: outputs live on a CDN that must never see the key.
        with transport.guard(end, cancel) as guard:
            try:
                with get_within_origin(session, url, timeout, count, request_id) as resp:
                    if resp.status_code == 200:
                        return read_capped(resp, max_bytes, cancel, request_id)
                    failure = status_error(url, resp.status_code, request_id)
                    wait_s = retry_after_s(resp.headers.get("Retry-After"))
                    return BadReply(failure, f"HTTP {resp.status_code}", retry_after_s=wait_s)
            except (requests.RequestException, OSError) as exc:
                if guard.sent == 0 and guard.fired is None:
                    why = unreached(exc, url, trust)
                    return Unsent(failed_download(url, why.what, request_id), why.what, final=why.final)
                by = cut_by(guard.fired, by_caller)
                reason = type(exc).__name__
                return Cut(cut_download(url, reason, request_id, by, cap_s), reason, by=by)

    return retrying(call, attempt, cancel)


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) as urllib3 would connect, the default port filled in."""
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    return scheme, (parsed.host or "").lower(), parsed.port or {"http": 80, "https": 443}.get(scheme)


def get_within_origin(
    session: requests.Session,
    url: str,
    timeout: tuple[float, float],
    count: Callable[[], None],
    request_id: str | None,
) -> requests.Response:
    """GET ``url`` following redirects only within its own origin; the final reply (not a 3xx)."""
    target = url
    for _hop in range(MAX_DOWNLOAD_REDIRECTS + 1):
        count()
        resp = session.get(target, stream=True, timeout=timeout, allow_redirects=False)
        location = resp.headers.get("Location") if resp.is_redirect else None
        if location is None:
            return resp
        resp.close()
        following = urljoin(target, location)
        if origin_of(following) != origin_of(url):
            raise E.DownloadError(
                f"An output{of_task(request_id)} at {short_url(url)} redirects to another host "
                f"({short_url(following)[:60]}); downloads follow redirects only within the output's "
                "own host: open the URL yourself, the task is kept.",
                request_id=request_id,
                status=resp.status_code,
            )
        target = following
    raise E.DownloadError(
        f"An output{of_task(request_id)} at {short_url(url)} redirected more than "
        f"{MAX_DOWNLOAD_REDIRECTS} times; the task is kept.",
        request_id=request_id,
    )


def of_task(request_id: str | None) -> str:
    return f" of task {request_id}" if request_id else ""


def short_url(url: str) -> str:
    return url.split("?", 1)[0][:120]


def read_capped(
    resp: requests.Response, max_bytes: int, cancel: CancelCheck | None, request_id: str | None
) -> bytes:
    """The body of a 200 reply, refused over ``max_bytes``; Cancel is checked between chunks."""
    declared = resp.headers.get("Content-Length")
    encoded = resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    of = of_task(request_id)
    if declared and declared.isdigit() and int(declared) > max_bytes and not encoded:
        raise E.DownloadError(
            f"Output{of} is {int(declared)} bytes, over the {max_bytes}-byte cap; refusing to download.",
            request_id=request_id,
        )
    chunks: list[bytes] = []
    total = 0
    # iter_content decodes gzip/deflate; urllib3 inflates at most about one chunk per read.
    for chunk in resp.iter_content(chunk_size=256 * 1024):
        check_cancel(cancel, request_id)
        total += len(chunk)
        if total > max_bytes:
            how = " once decoded" if encoded else ""
            raise E.DownloadError(
                f"Output{of} exceeds the {max_bytes}-byte cap{how}; refusing it.",
                request_id=request_id,
            )
        chunks.append(chunk)
    data = b"".join(chunks)
    on_wire = resp.raw.tell() if hasattr(resp.raw, "tell") else len(data)
    if declared and declared.isdigit() and on_wire != int(declared):
        raise requests.exceptions.ChunkedEncodingError(f"truncated: {on_wire} of {declared} bytes")
    if not data:
        raise requests.exceptions.ChunkedEncodingError("empty body")
    return data


def status_error(url: str, status: int, request_id: str | None) -> E.DownloadError:
    """A non-200 answer to a download; the caller retries it when the status is retryable."""
    return E.DownloadError(
        f"Downloading an output{of_task(request_id)} failed with HTTP {status} ({short_url(url)}).",
        request_id=request_id,
        status=status,
    )


def failed_download(url: str, reason: str, request_id: str | None) -> E.DownloadError:
    """A download that failed on the way (retried like any read, then said in this line)."""
    return E.DownloadError(
        f"Downloading an output{of_task(request_id)} failed ({reason}) from {short_url(url)}.",
        request_id=request_id,
    )


def cut_download(
    url: str, reason: str, request_id: str | None, by: CutBy | None, cap_s: float
) -> E.WaveSpeedError:
    """The error of a download that broke mid-way: Cancel, the caller's deadline, its own cap, or
    the connection (``reason``)."""
    of = of_task(request_id)
    if by is CutBy.CANCEL:
        return cancelled_error(request_id, f"Cancelled during a download{of}")
    if by is CutBy.DEADLINE:
        return timeout_error(request_id, during=" downloading its outputs")
    if by is CutBy.CAP:
        return E.DownloadError(
            f"Downloading an output{of} did not finish within {cap_s:.0f} s ({short_url(url)}).",
            request_id=request_id,
        )
    return failed_download(url, reason, request_id)


def decode_base64_output(value: str, cap: int, request_id: str | None = None) -> bytes:
    """An output given inline (base64 or a data URI), refused over ``cap`` bytes or when malformed."""
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    of = of_task(request_id)
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
