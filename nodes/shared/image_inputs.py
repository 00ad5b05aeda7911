"""Reference images for the edit nodes: IMAGE batches and URL strings -> the URLs the API takes.

The checks and the content-hash cache live in ``wavespeed/net/reference_uploads.py`` (pure); this module adds
the node-side glue: it collects references in order, encodes and uploads them in the submit's worker
call (cancellable, with status text), and uploads several distinct images in parallel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ...wavespeed import CACHE, PreparedImage, TaskContext, account_client, batch_size, check_size, prepare

log = logging.getLogger("wavespeed")

_MAX_PARALLEL_UPLOADS = 5


@dataclass(frozen=True)
class Reference:
    """One reference image, in the order the API will see it: image ``index`` of an IMAGE batch,
    or a URL that is passed through untouched (already on a server: nothing to upload)."""

    label: str
    image: Any = None
    index: int = 0
    url: str | None = None


def image_references(image: Any, label: str, *, first_only: bool = False) -> list[Reference]:
    """Every image of an IMAGE batch (or only the first); checks the shape, not the size."""
    batch = batch_size(image, label)
    if first_only and batch > 1:
        log.info("%s is a batch of %d; only the first image is used.", label, batch)
    count = 1 if first_only else batch
    return [
        Reference(label if batch == 1 or first_only else f"{label} (batch item {i + 1})", image, i)
        for i in range(count)
    ]


def check_sizes(references: Sequence[Reference]) -> None:
    """Pixel-size limits of every image reference (cheap: no encoding)."""
    for ref in references:
        if ref.image is not None:
            check_size(ref.image, ref.label)


UPLOAD_BUDGET_S = 180.0  # Cancel or this deadline stops an upload's retries


def url_references(urls: Sequence[str], label: str) -> list[Reference]:
    return [Reference(f"{label} line {n}", url=url) for n, url in enumerate(urls, 1)]


def upload(references: Sequence[Reference], context: TaskContext) -> list[str]:
    """The URL of every reference, in order. Encodes (and checks the PNG size of) every image
    before the first upload, so a bad input never leaves half the references uploaded. Blocks."""
    if all(ref.url is not None for ref in references):
        return [str(ref.url) for ref in references]
    client = account_client(context)
    to_upload = [ref for ref in references if ref.url is None]
    count = len(to_upload)
    context.status.set(0.01, f"preparing {count} reference image{'s' if count != 1 else ''}…")
    deadline = time.monotonic() + UPLOAD_BUDGET_S

    def put(png: bytes) -> str:
        return client.upload(
            png,
            filename="kontext_reference.png",
            content_type="image/png",
            cancel=context.cancel,
            deadline=deadline,
        )

    prepared = [prepare(ref.image, ref.index, ref.label) for ref in to_upload]
    cached = sum(CACHE.lookup(client.base_url, p.sha256) is not None for p in prepared)
    new = len({p.sha256 for p in prepared}) - cached
    context.status.set(
        0.02, f"uploading {new} image{'s' if new != 1 else ''}…" if new > 0 else "images already uploaded"
    )

    def one(p: PreparedImage) -> str:
        return CACHE.get_or_upload(client.base_url, p, put, context.cancel, still_there=client.url_is_live)

    if len(prepared) == 1:
        urls = [one(prepared[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL_UPLOADS, len(prepared))) as pool:
            urls = list(pool.map(one, prepared))
    it = iter(urls)
    return [ref.url if ref.url is not None else next(it) for ref in references]
