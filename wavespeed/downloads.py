"""Reading one task output: the size cap, base64 / data-URI outputs, and download failures' text.

Outputs are fetched from a CDN without the Authorization header (the client's loop does the
request, retries and window); this module checks what comes back: a declared or streamed size
over the cap is refused before it fills memory, a body shorter than its Content-Length (or empty)
counts as a broken exchange (so it is retried), and every error names the task the output
belongs to, so a failed download still says which paid task to fetch again.
"""

from __future__ import annotations

import base64
import binascii

import requests

from . import errors as E
from . import replies as R
from . import transport
from .request_loop import Broken, check_cancel, timeout_error
from .vocabulary import CancelCheck

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
MAX_DOWNLOAD_REDIRECTS = 5


def of_task(request_id: str | None) -> str:
    return f" of task {request_id}" if request_id else ""


def short_url(url: str) -> str:
    return url.split("?", 1)[0][:120]


def read_capped(
    resp: requests.Response, max_bytes: int, cancel: CancelCheck | None, request_id: str | None
) -> bytes:
    """The body of a 200 reply, refused over ``max_bytes``; Cancel is checked between chunks."""
    declared = resp.headers.get("Content-Length")
    of = of_task(request_id)
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise E.DownloadError(
            f"Output{of} is {int(declared)} bytes, over the {max_bytes}-byte cap; refusing to download.",
            request_id=request_id,
        )
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(chunk_size=256 * 1024):
        check_cancel(cancel, request_id)
        total += len(chunk)
        if total > max_bytes:
            raise E.DownloadError(
                f"Output{of} exceeds the {max_bytes}-byte cap; refusing it.",
                request_id=request_id,
            )
        chunks.append(chunk)
    data = b"".join(chunks)
    if declared and declared.isdigit() and len(data) != int(declared):
        raise requests.exceptions.ChunkedEncodingError(f"truncated: {len(data)} of {declared} bytes")
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


def is_retryable(status: int) -> bool:
    return status in R.RETRYABLE_STATUS


def broken_download(
    exc: Broken, url: str, request_id: str | None, *, by_caller: bool, cap_s: float
) -> E.WaveSpeedError:
    """The typed error for a download that broke mid-way; raises it when it must not be retried."""
    of = of_task(request_id)
    if exc.fired == transport.FIRED_CANCEL:
        raise E.CancelledError(
            R.later_hint(f"Cancelled during a download{of}", request_id), request_id=request_id
        )
    if exc.fired == transport.FIRED_DEADLINE and by_caller:
        raise timeout_error(request_id, during=" downloading its outputs")
    if exc.fired == transport.FIRED_DEADLINE:
        return E.DownloadError(
            f"Downloading an output{of} did not finish within {cap_s:.0f} s ({short_url(url)}).",
            request_id=request_id,
        )
    return E.DownloadError(
        f"Downloading an output{of} failed ({exc.reason}) from {short_url(url)}.", request_id=request_id
    )


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
