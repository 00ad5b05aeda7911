"""Several outputs of one task -> one ComfyUI ``IMAGE`` batch, planned before anything is decoded.

Decoding one image is codec.py's job; this module decides the batch's shape and memory.

Decisions, and why:

* **Mixed sizes** are padded: each image is centred on a black canvas of the largest height and
  width (nothing cropped or resampled).
* **Batch memory.** The batch is planned from the headers alone and refused before any pixel is
  decoded or any buffer allocated when it lists more than ``MAX_OUTPUTS`` images, when its canvas
  is over ``max_pixels`` (a 40000x1000 and a 1000x40000 output would pad to 40000x40000), or when
  it would take more than ``MAX_BATCH_BYTES`` of float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..core.errors import ImageDecodeError
from .codec import (
    _SWAPS_AXES,
    MAX_PIXELS,
    _decode_opened,
    _fill,
    _header_orientation,
    _load,
    _normalise,
    _open,
)

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_OUTPUTS",
    "OutputsTooLargeError",
    "check_output_count",
    "images_to_tensor",
    "plan_batch",
]

MAX_OUTPUTS: int = 8
"""Outputs decoded from one task. The API returns 1 to 4 (``num_images`` 1..4); twice that leaves
room for a bigger future batch while a hostile reply listing thousands of URLs is refused."""

MAX_BATCH_BYTES: int = 1 << 30
"""Memory budget of one ``[B, H, W, 3]`` float32 batch: 1 GiB. Four ~1 MP Kontext outputs take
about 50 MB, and one image at MAX_PIXELS 480 MB, so only a pathological mix of sizes is refused."""


class OutputsTooLargeError(ImageDecodeError):
    """The outputs, batched as one IMAGE, would not fit the memory budget: refused before allocating."""


def _header_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after orientation, from an opened image's header."""
    width, height = img.size
    return (height, width) if _header_orientation(img) in _SWAPS_AXES else (width, height)


def _fmt(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def check_output_count(count: int) -> None:
    """Refuse more than MAX_OUTPUTS outputs for one task (call it before downloading them)."""
    if count > MAX_OUTPUTS:
        raise OutputsTooLargeError(
            f"the task lists {count} outputs, more than the {MAX_OUTPUTS} this pack decodes (the API "
            "returns 1 to 4): the reply is not trustworthy",
            hint="open its image_urls instead",
        )


def images_to_tensor(
    blobs: Sequence[bytes],
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> torch.Tensor:
    """Several encoded outputs of one task -> one ``[B, H, W, 3]`` float32 batch, mixed sizes padded.

    Every header is checked before anything is decoded, and so is the batch they make (count,
    canvas pixels, bytes): a bad or oversized output fails fast; the result is allocated once and
    each image is decoded straight into its slice.
    """
    if isinstance(blobs, (bytes, bytearray, memoryview)):
        raise TypeError("images_to_tensor takes a sequence of encoded images; wrap a single one in a list")
    if len(blobs) == 0:
        raise ImageDecodeError("no images to decode (the task returned no outputs)")
    check_output_count(len(blobs))
    limits = (max_pixels, max_bytes)
    opened = [_open(b, max_pixels) for b in blobs]  # every header checked before any decode
    try:
        return _assemble(blobs, opened, [_header_size(img) for img in opened], limits)
    except _SizeChanged:
        # A PNG whose eXIf (orientation) chunk sits after IDAT: header sizes were wrong.
        decoded = [_load(b, max_pixels) for b in blobs]
        return _assemble(blobs, decoded, [img.size for img in decoded], limits)


class _SizeChanged(Exception):
    """Decoded size differs from the header's (orientation only visible after decoding)."""


def batch_nbytes(count: int, size: tuple[int, int]) -> int:
    """Bytes of a ``[count, H, W, 3]`` float32 batch of images of ``size`` (width, height)."""
    width, height = size
    return count * height * width * 3 * 4


def plan_batch(count: int, size: tuple[int, int], *, max_bytes: int = MAX_BATCH_BYTES) -> int:
    """The bytes a batch of ``count`` images of ``size`` needs, planned before it is allocated.

    Raises:
        OutputsTooLargeError: over ``max_bytes`` (nothing was allocated).
    """
    nbytes = batch_nbytes(count, size)
    if nbytes > max_bytes:
        raise OutputsTooLargeError(
            f"{count} images of {_fmt(size)} would need {nbytes / 2**30:.2f} GiB as one IMAGE batch, over "
            f"its {max_bytes / 2**30:.2f} GiB budget"
        )
    return nbytes


def _check_batch(sizes: list[tuple[int, int]], canvas: tuple[int, int], limits: tuple[int, int]) -> None:
    """Refuse a batch whose canvas or total float32 size is over the limits, before allocating it."""
    max_pixels, max_bytes = limits
    width, height = canvas
    nbytes = batch_nbytes(len(sizes), canvas)
    if width * height <= max_pixels and nbytes <= max_bytes:
        return
    listed = ", ".join(_fmt(s) for s in sizes[:MAX_OUTPUTS])
    raise OutputsTooLargeError(
        f"{len(sizes)} outputs ({listed}) would need a {len(sizes)} x {width}x{height} batch "
        f"({nbytes / 2**30:.1f} GiB), refused before decoding",
        hint=f"open the image_urls output to use them one by one (limits: {max_pixels} px per image, "
        f"{max_bytes / 2**30:.1f} GiB per batch)",
    )


def _assemble(
    blobs: Sequence[bytes], opened: list[Image.Image], sizes: list[tuple[int, int]], limits: tuple[int, int]
) -> torch.Tensor:
    """Allocate the planned batch once, then decode each opened image straight into its slice."""
    pad = not all(s == sizes[0] for s in sizes)
    width, height = (max(s[0] for s in sizes), max(s[1] for s in sizes)) if pad else sizes[0]
    _check_batch(sizes, (width, height), limits)
    shape = (len(blobs), height, width, 3)
    result = np.zeros(shape, dtype=np.float32) if pad else np.empty(shape, dtype=np.float32)
    for i, (blob, planned) in enumerate(zip(blobs, sizes, strict=True)):
        img = _decode_opened(opened[i], blob)  # (loading one already decoded changes nothing)
        if img.size != planned:
            raise _SizeChanged
        img = _normalise(img)
        if img.size == (width, height):
            dest = result[i]
        else:
            w, h = img.size
            top, left = (height - h) // 2, (width - w) // 2
            dest = result[i, top : top + h, left : left + w]
        _fill(dest, img)
        img.close()  # its pixels go now: one decoded image at a time beside the batch
        opened[i].close()
    # numpy owns the buffer (it asks the kernel for huge pages on large arrays, which makes the
    # first touch of a fresh 48 MB result several times cheaper than torch.empty here); the
    # tensor shares it without a copy.
    return torch.from_numpy(result)
