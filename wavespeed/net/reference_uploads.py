"""Reference images for the edit models: checks before any spend, exact PNG, one upload per image.

Pure (torch, numpy, Pillow through the codec; no ComfyUI, no HTTP): the node layer hands in the
client's ``upload`` function. Decisions, and why:

* **Exact.** An IMAGE is sent as PNG (``tensor_to_png``: ``round(x * 255)``), never JPEG, so what
  the model sees is exactly the 8-bit picture in the graph.
* **Channels.** 3 channels as is; 4 channels: alpha is dropped (the colour under it is sent as is,
  like ComfyUI's own LoadImage, which splits alpha off into a MASK); 1 channel: grey, replicated
  to RGB. Anything else is refused, and so is an image holding NaN or infinite values, or values
  far outside 0..1 (``VALUE_RANGE``): a broken upstream node, whose picture would be uploaded and
  paid for as black or white.
* **Limits (our guards, checked before any upload or charge).** At least ``MIN_SIDE_PX`` (64) px on
  each side: the API states no minimum, but Kontext works on 16 px patches, so a smaller picture
  leaves it almost nothing to edit and is far more likely a wiring mistake (a mask, a preview).
  At most ``MAX_SIDE_PX`` (4096) px on each side: Kontext works at about one megapixel and scales
  larger inputs down anyway, so more only costs upload time. At most ``MAX_UPLOAD_BYTES`` of PNG:
  the docs give a 20 MB upload limit (read as 20,000,000 bytes, the stricter reading); a PNG over
  it is re-encoded once at a higher compression level before we give up.
* **One upload per distinct image.** :class:`UploadCache` keys the URL by (API base URL, sha256 of
  the PNG bytes). Concurrent callers with the same image wait for the first upload and reuse its
  URL. A failed upload is not cached (its waiters get the same error; the next run tries again).
  Uploaded files do not live forever (the docs say 7 days; WaveSpeed's own ComfyUI nodes say "the
  link will expire soon"), so a URL reused from an earlier run is first checked with a HEAD request
  (no Authorization header) and uploaded again if it has gone, and entries are dropped after
  ``CACHE_TTL_S`` (6 h) anyway. A fresh upload is free; a task on a dead URL fails (code 1402).
* **URLs** typed or wired in must be ``http(s)://host/...`` on a host WaveSpeed can reach
  (reference_urls.py: loopback, private, link-local names and addresses are refused before any spend);
  a public URL the server still cannot fetch makes the task fail with code 1402, which WaveSpeed
  Poll Result reports with the server's message.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from ..core.errors import CancelledError, InvalidRequestError
from ..core.vocabulary import CancelCheck
from ..settings.reference_urls import check_image_url

MIN_SIDE_PX = 64
MAX_SIDE_PX = 4096
MAX_UPLOAD_BYTES = 20_000_000
CACHE_TTL_S = 6 * 3600.0
CACHE_MAX_ENTRIES = 512
VALUE_RANGE = (-1.0, 2.0)
"""IMAGE values outside this are refused: far beyond any overshoot, clearly another scale."""
_FAST_PNG_LEVEL = 1
_SMALL_PNG_LEVEL = 6
_WAIT_SLICE_S = 0.1

Upload = Callable[[bytes], str]


@dataclass(frozen=True)
class PreparedImage:
    """One reference image, encoded and hashed, ready to upload."""

    label: str
    png: bytes
    sha256: str
    width: int
    height: int


def _shape(image: Any, label: str) -> tuple[int, int, int, int]:
    """(batch, height, width, channels) of an IMAGE, or a one-line InvalidRequestError."""
    import torch

    if not isinstance(image, torch.Tensor):
        raise InvalidRequestError(
            f"{label} is not an IMAGE (got {type(image).__name__}): connect an image output."
        )
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise InvalidRequestError(
            f"{label} has shape {list(image.shape)}; an IMAGE must be [batch, height, width, channels]."
        )
    batch, height, width, channels = shape
    if channels not in (1, 3, 4):
        raise InvalidRequestError(
            f"{label} has {channels} channels; only 1 (grey), 3 (RGB) or 4 (RGBA, alpha dropped) are accepted."
        )
    return batch, height, width, channels


def batch_size(image: Any, label: str) -> int:
    """Number of images in an IMAGE batch; an empty batch is refused (it would send nothing)."""
    batch = _shape(image, label)[0]
    if batch == 0:
        raise InvalidRequestError(
            f"{label} is an empty batch (0 images): connect a node that outputs an image."
        )
    return batch


def check_size(image: Any, label: str) -> tuple[int, int]:
    """(width, height) of the IMAGE; refuse sizes outside MIN_SIDE_PX..MAX_SIDE_PX on either side."""
    _, height, width, _ = _shape(image, label)
    if min(width, height) < MIN_SIDE_PX:
        raise InvalidRequestError(
            f"{label} is {width}x{height} px; each side must be at least {MIN_SIDE_PX} px "
            "(too small to edit): connect a larger image."
        )
    if max(width, height) > MAX_SIDE_PX:
        raise InvalidRequestError(
            f"{label} is {width}x{height} px; each side must be at most {MAX_SIDE_PX} px: scale it down "
            "first (e.g. 'Scale Image to Total Pixels' at 1 megapixel, which Kontext works at anyway)."
        )
    return width, height


def check_values(image: Any, index: int, label: str) -> None:
    """Refuse image ``index`` if it holds NaN or infinite values, or values far outside 0..1.

    Either would be sent (and paid for) as a black or white picture, and neither comes from a
    picture: NaN from a broken upstream node (a VAE decoding in too low a precision), 0..255
    values from a node that forgot to scale. A little overshoot (resampling, sharpening) is a
    picture and is sent clipped, so only values beyond ``VALUE_RANGE`` are refused.
    """
    import torch

    one = image if image.dim() == 3 else image[index]
    if one.numel() == 0:
        return
    if not one.is_floating_point():  # e.g. a uint8 tensor of 0..255 from a custom node
        one = one.to(torch.float32)
    # One pass: amin/amax propagate NaN and keep inf, so finite extremes mean finite values.
    low, high = (float(v) for v in torch.aminmax(one))
    if not (math.isfinite(low) and math.isfinite(high)):
        nan, inf = int(torch.isnan(one).sum()), int(torch.isinf(one).sum())
        what = " and ".join(p for p in (f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else "") if p)
        raise InvalidRequestError(
            f"{label} has {what} values out of {one.numel()} (not a picture: it would be sent as black); "
            "check the node that makes this image, e.g. a VAE Decode in too low a precision."
        )
    lowest, highest = VALUE_RANGE
    if high > highest:
        raise InvalidRequestError(
            f"{label} has values up to {high:.1f}, but an IMAGE holds 0..1 (it would be sent as a white "
            "picture): the node that makes it forgot to divide by 255; fix or replace that node."
        )
    if low < lowest:
        raise InvalidRequestError(
            f"{label} has values down to {low:.1f}, but an IMAGE holds 0..1 (it would be sent as a black "
            "picture): rescale it to 0..1 first (e.g. the node that makes it outputs -1..1 data)."
        )


def rgb_image(image: Any, index: int) -> Any:
    """Image ``index`` of the batch as a ``[1, H, W, 3]`` tensor: alpha dropped, grey replicated."""
    one = image.unsqueeze(0) if image.dim() == 3 else image[index : index + 1]
    channels = int(one.shape[-1])
    if channels == 4:
        return one[..., :3]
    if channels == 1:
        return one.expand(-1, -1, -1, 3)
    return one


def prepare(image: Any, index: int, label: str, *, max_bytes: int | None = None) -> PreparedImage:
    """Check, then PNG-encode (exactly) and hash image ``index`` of an IMAGE batch."""
    from ..images.codec import tensor_to_png

    limit = MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    batch = batch_size(image, label)
    if not 0 <= index < batch:
        raise InvalidRequestError(f"{label}: image {index} is out of range for a batch of {batch}.")
    width, height = check_size(image, label)
    check_values(image, index, label)
    rgb = rgb_image(image, index)
    png = tensor_to_png(rgb, 0, compress_level=_FAST_PNG_LEVEL)
    if len(png) > limit:
        png = tensor_to_png(rgb, 0, compress_level=_SMALL_PNG_LEVEL)
    if len(png) > limit:
        raise InvalidRequestError(
            f"{label} ({width}x{height} px) is {len(png) / 1e6:.1f} MB as PNG, over the "
            f"{limit / 1e6:.0f} MB upload limit: scale it down first (Kontext works at about 1 megapixel)."
        )
    return PreparedImage(label, png, hashlib.sha256(png).hexdigest(), width, height)


def check_url(url: str, label: str) -> str:
    """A stripped http(s) URL WaveSpeed can fetch, or a one-line InvalidRequestError naming the
    input (see reference_urls.py: local, private and ambiguous URLs are refused before any spend)."""
    return check_image_url(url, label)


def parse_urls(text: str | None, label: str) -> list[str]:
    """Every non-empty line of ``text`` as a checked URL, in order."""
    lines = [line.strip() for line in (text or "").splitlines()]
    return [check_url(line, f"{label} line {n}") for n, line in enumerate(lines, 1) if line]


class UploadCache:
    """{(base_url, sha256) -> URL} for this process, safe for concurrent nodes: the same image is
    uploaded once and every other caller (at the same time or later) reuses its URL."""

    def __init__(self, *, ttl_s: float = CACHE_TTL_S, max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._pending: dict[tuple[str, str], Future[str]] = {}
        self.uploads = 0  # uploads actually started (for tests and logs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._done)

    def clear(self) -> None:
        with self._lock:
            self._done.clear()

    def lookup(self, base_url: str, sha256: str) -> str | None:
        with self._lock:
            return self._fresh((base_url, sha256))

    def content_id(self, url: str) -> str | None:
        """``sha256:<hex>`` of the image this process uploaded to ``url``, else None. Lets the task
        journal recognise the same input image after a restart, when its upload URL is new."""
        with self._lock:
            for (_, sha256), (stored_url, _) in self._done.items():
                if stored_url == url:
                    return f"sha256:{sha256}"
        return None

    def _fresh(self, key: tuple[str, str]) -> str | None:
        hit = self._done.get(key)
        if hit is None:
            return None
        url, stored_at = hit
        if time.monotonic() - stored_at > self.ttl_s:
            del self._done[key]
            return None
        self._done.move_to_end(key)
        return url

    def get_or_upload(
        self,
        base_url: str,
        image: PreparedImage,
        upload: Upload,
        cancel: CancelCheck | None = None,
        still_there: Callable[[str], bool] | None = None,
    ) -> str:
        """The URL of ``image``: cached, or awaited from a concurrent upload, or uploaded now.

        A URL cached by an earlier run is first checked with ``still_there`` (if given); a file
        that has gone (expired, deleted) is uploaded again instead of failing the task later.
        """
        key = (base_url, image.sha256)
        while True:
            with self._lock:
                cached = self._fresh(key)
                waiting = self._pending.get(key) if cached is None else None
                if cached is None and waiting is None:
                    pending: Future[str] = Future()
                    self._pending[key] = pending
                    self.uploads += 1
                    break
            if cached is not None:
                if still_there is None or still_there(cached):
                    return cached
                with self._lock:
                    if self._done.get(key, ("",))[0] == cached:
                        del self._done[key]
                continue
            assert waiting is not None
            try:
                return self._await(waiting, cancel)
            except CancelledError:
                if cancel is not None and cancel():
                    raise
                # The uploader was cancelled, not us: go round and upload it ourselves.
        try:
            url = upload(image.png)
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._done[key] = (url, time.monotonic())
            while len(self._done) > self.max_entries:
                self._done.popitem(last=False)
        pending.set_result(url)
        return url

    @property
    def in_flight(self) -> int:
        """Uploads running right now."""
        with self._lock:
            return len(self._pending)

    @staticmethod
    def _await(pending: Future[str], cancel: CancelCheck | None) -> str:
        while True:
            if cancel is not None and cancel():
                raise CancelledError("Cancelled while another node was uploading the same image.")
            try:
                return pending.result(timeout=_WAIT_SLICE_S)
            except FutureTimeout:
                continue


#: The process-wide cache the nodes share.
CACHE = UploadCache()
