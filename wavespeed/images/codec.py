"""Image codec: encoded bytes <-> ComfyUI ``IMAGE`` tensors (``float32``, ``[B, H, W, 3]``, 0..1).

Pure (numpy, Pillow, torch only) so it can be tested and benchmarked without ComfyUI.

Decisions, and why:

* **Only the formats WaveSpeed serves.** Outputs are JPEG unless ``output_format`` says PNG or WebP
  (WAVESPEED_API.md 3.5, 4.5; media hosts serve ``png|jpg|webp``), so ``Image.open`` tries those three
  plugins only (``formats=``), decoded in this process by libjpeg, libpng/zlib and libwebp. Any
  other file (an EPS Pillow would hand to Ghostscript, a TIFF, a GIF...) is refused, named by its
  first bytes, before anything decodes it: :class:`UnsupportedFormatError`.
* **Bounded work.** The header is read first and ``width * height`` is checked against
  ``max_pixels`` *before* any pixel is decoded (Pillow's own ``DecompressionBombError``/``Warning``
  become the same :class:`ImageDecodeError`, so the effective limit is also capped by
  ``PIL.Image.MAX_IMAGE_PIXELS``), and a JPEG may have at most ``MAX_JPEG_SCANS`` scans (a
  progressive file repeats its whole pass per scan: thousands of tiny scans would decode for
  minutes). So a decode ends by itself within a bound; decode_guard.py makes the caller's deadline
  and Cancel hold even while one runs in C.
* **Bad bytes fail loudly.** Empty, corrupt and truncated data raise :class:`ImageDecodeError` with a
  one-line reason; ``LOAD_TRUNCATED_IMAGES`` is never set, so a cut-off download cannot silently
  turn into a half-grey picture.
* **EXIF orientation** is applied by Pillow's ``ImageOps.exif_transpose``, in place (so the usual
  case, no tag or 1, copies nothing); a broken EXIF block leaves the picture as decoded. Multi-frame
  files (GIF, APNG, animated WebP) give their first frame.
* **Alpha is composited over black**, i.e. colour is premultiplied by alpha
  (``c * a / 65025`` in float32, no 8-bit rounding). Deterministic, and hidden colour under
  ``alpha = 0`` (often garbage left by encoders) can never leak into the picture. ComfyUI's
  ``LoadImage`` drops alpha instead; generated outputs are rarely transparent, so this only matters
  for odd inputs. ``P``/``L``/``RGB`` images with a transparency key are treated the same way.
* **Modes.** RGB is the fast path; L is replicated to 3 channels; P -> RGB; CMYK/YCbCr/LAB/HSV via
  Pillow's ``convert("RGB")``; 16-bit grey (``I;16*``, and ``I`` clipped to 0..65535) is divided by
  65535, keeping 16-bit precision; bilevel gives 0/1. (Float images come only from formats
  WaveSpeed does not serve, which are refused.)
  Pillow reads 16-bit *RGB* PNGs as 8-bit RGB, so those lose their extra precision here.
* **Speed and memory.** Fully vectorised. The result is allocated once (by numpy, shared with
  torch without a copy) and each image is written straight into its slice, a strip of rows at a
  time (uint8 read and ``/ 255`` written in float32 in one pass, which matches ComfyUI's
  ``np.float32 / 255`` bit for bit; each header is read and its file scanned once):
  extra memory is one ~0.5 MB strip, never an intermediate float copy or a ``torch.stack``.
  numpy rather than torch does the arithmetic: single-threaded and steady, where torch's
  intra-op thread pool stalled for milliseconds per op whenever the CPU was shared.
* **Batches** of several outputs are planned and assembled in batch_plan.py.
* **Encoding back** rounds (``round(x * 255)``) where ComfyUI's ``SaveImage`` truncates, so
  ``tensor_to_png(images_to_tensor([png]))`` reproduces 8-bit PNG pixels exactly.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..core.errors import ImageDecodeError

__all__ = [
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "SERVED_FORMATS",
    "UnsupportedFormatError",
    "decode_image",
    "decode_to_uint8",
    "image_size",
    "tensor_to_png",
]

MAX_PIXELS: int = 40_000_000
"""Per-image pixel limit: generous for any generated output, far below what exhausts RAM. A padded
canvas is an image too: its height x width is held to the same limit."""

SERVED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
"""The Pillow plugins an output is opened with: what WaveSpeed serves, and nothing that would start
an outside program (EPS: Ghostscript)."""

MAX_JPEG_SCANS = 64
"""A JPEG's start-of-scan markers: libjpeg's progressive default writes 10, optimisers a few more."""

# The first bytes of files we refuse, to name them in the refusal (a guess, for people only).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "a PostScript/EPS file"),
    (b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (b"%PDF", "a PDF file"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an ICO image"),
    (b"<", "an XML/SVG/HTML text"),
    (b"{", "a JSON text"),
)

_SWAPS_AXES = frozenset({5, 6, 7, 8})
"""EXIF orientations that exchange width and height (transpose, rotate 90 or 270, transverse)."""
_GREY16 = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Modes _fill understands directly; anything else is converted first by _normalise.
_NORMAL = frozenset({"RGB", "L", "RGBA", "LA"} | _GREY16)


# --------------------------------------------------------------------------- reading


class UnsupportedFormatError(ImageDecodeError):
    """An output that is not a PNG, JPEG or WebP file: never decoded (final: fetching it again would
    give the same file)."""


def _unsupported(data: bytes) -> UnsupportedFormatError:
    start = bytes(data[:8]).lstrip()
    what = next((name for magic, name in _SIGNATURES if start.startswith(magic)), "an unknown format")
    return UnsupportedFormatError(f"{what}, not a PNG, JPEG or WebP image (the formats WaveSpeed serves)")


def _bomb_error(width: int, height: int, limit: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"image is {width} x {height} = {width * height} px, over the {limit} px limit; "
        "refusing to decode (possible decompression bomb)"
    )


def _pillow_bomb_error(exc: BaseException, limit: int) -> ImageDecodeError:
    """Pillow refused at open, before we could see width and height: report its pixel count."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = match.group(1) if match else "too many"
    pillow_limit = Image.MAX_IMAGE_PIXELS or limit
    return ImageDecodeError(
        f"image is {pixels} px, over the {min(limit, pillow_limit)} px limit; "
        "refusing to decode (possible decompression bomb)"
    )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: {text}"


def _check_bytes(data: bytes) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected encoded image bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageDecodeError("could not decode image: no data (0 bytes)")


def _open(data: bytes, max_pixels: int, *, pillow_warning: str = "error") -> Image.Image:
    """Parse the header only and apply the pixel limit; nothing is decoded yet."""
    _check_bytes(data)
    try:
        # The filter is scoped to the header parse, the only place Pillow warns for the formats
        # we see; by default it turns the warning into the same refusal as our own limit.
        with warnings.catch_warnings():
            warnings.simplefilter(pillow_warning, Image.DecompressionBombWarning)  # type: ignore[arg-type]
            img = Image.open(io.BytesIO(data), formats=SERVED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _pillow_bomb_error(exc, max_pixels) from None
    except UnidentifiedImageError:
        raise _unsupported(data) from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ImageDecodeError(f"could not decode image ({len(data)} bytes): {_reason(exc)}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise _bomb_error(width, height, max_pixels)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"could not decode image ({len(data)} bytes): empty {width} x {height} image")
    if img.format in ("JPEG", "MPO"):
        scans = bytes(data).count(b"\xff\xda")  # markers: 0xFF in entropy-coded data is 0xFF00
        if scans > MAX_JPEG_SCANS:
            raise ImageDecodeError(
                f"JPEG with {scans} scans, over the {MAX_JPEG_SCANS} this pack decodes; refusing to decode "
                "(a progressive file of so many scans decodes for minutes)"
            )
    return img


def _header_orientation(img: Image.Image) -> int:
    """EXIF orientation 1..8 without decoding pixels (1 when absent or unreadable; a PNG eXIf chunk
    after IDAT is only seen by load)."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block must not cost the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _load(data: bytes, max_pixels: int) -> Image.Image:
    """Open, check, fully decode and EXIF-orient one image."""
    return _decode_opened(_open(data, max_pixels), data)


def _decode_opened(img: Image.Image, data: bytes) -> Image.Image:
    """Fully decode and EXIF-orient an image ``_open`` checked (``data``: its bytes, for the errors)."""
    try:
        img.load()
    except Exception as exc:
        kind = f"{img.format} image" if img.format else "image"
        raise ImageDecodeError(f"could not decode {kind} ({len(data)} bytes): {_reason(exc)}") from None
    with contextlib.suppress(Exception):  # a broken EXIF block must not cost the picture
        ImageOps.exif_transpose(img, in_place=True)
    return img


def _has_alpha(img: Image.Image) -> bool:
    if img.mode in ("RGBA", "LA", "PA"):
        return True
    if "transparency" in img.info:
        return True
    return img.mode == "P" and img.palette is not None and img.palette.mode == "RGBA"


def _normalise(img: Image.Image) -> Image.Image:
    """Bring any Pillow mode to one _fill handles (RGB, L, RGBA, LA, 16-bit grey)."""
    mode = img.mode
    try:
        if mode == "RGB":
            return img.convert("RGBA") if "transparency" in img.info else img
        if mode == "L":
            return img.convert("LA") if "transparency" in img.info else img
        if mode in ("P", "PA"):
            return img.convert("RGBA") if _has_alpha(img) else img.convert("RGB")
        if mode == "1":
            return img.convert("L")
        if mode == "La":  # premultiplied grey: the grey channel already is "over black"
            return img.getchannel(0)
        if mode in _NORMAL:
            return img
        # CMYK, YCbCr, LAB, HSV, RGBX, RGBa (premultiplied, so dropping alpha is "over black") ...
        return img.convert("RGB")
    except Exception as exc:
        raise ImageDecodeError(f"could not convert image mode {mode!r} to RGB: {_reason(exc)}") from None


# --------------------------------------------------------------------------- pixels -> tensor


_F255 = np.float32(255.0)
_F65025 = np.float32(255.0 * 255.0)
_F65535 = np.float32(65535.0)
_STRIP_BYTES = 1 << 19
"""Rows are converted in strips of about this many source bytes: the only extra memory per image,
and small enough that the float rows are still in cache for the in-place divide."""


def _fill(dest: np.ndarray, img: Image.Image) -> None:
    """Write a normalised image into ``dest`` (an ``[h, w, 3]`` float32 view, maybe strided).

    Strip by strip: ``crop`` copies a few rows inside Pillow, ``np.asarray`` packs them, and numpy
    scales them into the destination (RGB and grey in one pass; the other modes cast, then scale). numpy rather than torch for the arithmetic:
    single-threaded, so it never stalls on torch's intra-op thread pool when the CPU is busy, and
    ``float32 / 255`` matches ComfyUI's own loader bit for bit.
    """
    width, height = img.size
    pixel_bytes = {"RGB": 3, "RGBA": 4, "LA": 2, "L": 1, "I": 4}.get(img.mode, 2)
    rows = max(1, _STRIP_BYTES // (width * pixel_bytes))
    if rows >= height:
        _fill_rows(dest, img, np.asarray(img))
        return
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        strip = img.crop((0, top, width, bottom))
        _fill_rows(dest[top:bottom], strip, np.asarray(strip))


def _fill_rows(dest: np.ndarray, img: Image.Image, src: np.ndarray) -> None:
    mode = img.mode
    if mode == "RGB":
        np.divide(src, _F255, out=dest)  # one pass: uint8 read, float32 / 255 written (as ComfyUI's)
    elif mode == "L":
        np.divide(src[..., None], _F255, out=dest)
    elif mode in ("RGBA", "LA"):
        # colour * alpha / 65025: composited over black, exact in float32 (c * a <= 65025)
        np.copyto(dest, src[..., :-1], casting="unsafe")
        np.multiply(dest, src[..., -1:], out=dest, casting="unsafe")
        np.divide(dest, _F65025, out=dest)
    elif mode in _GREY16:
        np.copyto(dest, src[..., None], casting="unsafe")
        if mode == "I":
            np.clip(dest, 0.0, 65535.0, out=dest)
        key = img.info.get("transparency")
        if isinstance(key, int):
            dest[src == key] = 0.0
        np.divide(dest, _F65535, out=dest)
    else:  # pragma: no cover - _normalise guarantees one of the above
        raise ImageDecodeError(f"internal error: unexpected image mode {mode!r}")


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> ``H x W x 3`` float32 in 0..1 (C-contiguous)."""
    img = _normalise(_load(data, max_pixels))
    out = np.empty((img.height, img.width, 3), dtype=np.float32)
    _fill(out, img)
    return out


def decode_to_uint8(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> ``H x W x 3`` uint8, for hashing and exact pixel tests.

    Equal to ``round(decode_image(data) * 255)``: same compositing, 16-bit reduced with rounding.
    """
    img = _normalise(_load(data, max_pixels))
    if img.mode == "RGB":
        return np.array(img)
    if img.mode == "L":
        return np.repeat(np.asarray(img)[..., None], 3, axis=2)
    out = np.empty((img.height, img.width, 3), dtype=np.float32)
    _fill(out, img)
    np.multiply(out, _F255, out=out)
    return np.rint(out, out=out).astype(np.uint8)


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` as decode_image would return it, from the header only (no pixel decode).

    Applies EXIF orientation when the tag is in the header (JPEG, WebP, TIFF, PNG eXIf before IDAT).
    Not subject to ``max_pixels``: callers use this to decide; only Pillow's own hard limit applies.
    """
    img = _open(data, max_pixels=2**62, pillow_warning="ignore")
    width, height = img.size
    return (height, width) if _header_orientation(img) in _SWAPS_AXES else (width, height)


# --------------------------------------------------------------------------- tensor -> bytes


def _select_uint8(image: torch.Tensor, index: int) -> np.ndarray:
    """One ``[H, W, C]`` image of a batch as uint8 (round, clip; NaN -> 0)."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor IMAGE, got {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"expected an IMAGE of shape [B, H, W, C] or [H, W, C], got {list(image.shape)}")
    batch, height, width, channels = image.shape
    if channels not in (1, 3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels (last dimension), got shape {list(image.shape)}")
    if height == 0 or width == 0:
        raise ValueError(f"cannot encode an empty image of shape {list(image.shape)}")
    if not 0 <= index < batch:
        raise ValueError(
            f"image index {index} is out of range for a batch of {batch} (valid: 0..{batch - 1})"
        )
    one = image[index].detach().to(device="cpu", dtype=torch.float32)
    one = torch.nan_to_num(one, 0.0, 1.0, 0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    return one.to(torch.uint8).numpy()


def _to_pil(arr: np.ndarray) -> Image.Image:
    # uint8 [H, W] -> L, [H, W, 3] -> RGB, [H, W, 4] -> RGBA
    return Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 1 else arr))


def tensor_to_png(image: torch.Tensor, index: int = 0, *, compress_level: int = 1) -> bytes:
    """One image of an IMAGE batch -> PNG bytes (RGB, or RGBA when there are 4 channels).

    Exact for 8-bit data: ``round(x * 255)``. ``compress_level=1`` because uploads favour speed.
    """
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be 0..9, got {compress_level}")
    buf = io.BytesIO()
    _to_pil(_select_uint8(image, index)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
