"""Deterministic stand-in images for the emulator: text-to-image, edit and multi-reference outputs.

Everything here is pure numpy + Pillow and vectorised, so a 1568x672 image renders in a few ms and
tests can recompute the exact expected pixels.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

RGB = NDArray[np.uint8]

# FLUX.1 Kontext's native ("preferred") resolutions, one per aspect ratio: these are the sizes the
# model itself is trained on. What the WaveSpeed API returns for each ratio is not documented, so the
# exact sizes here are inferred from the model, not confirmed against the live API.
KONTEXT_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "4:3": (1184, 880),
    "3:4": (880, 1184),
    "3:2": (1248, 832),
    "2:3": (832, 1248),
    "16:9": (1392, 752),
    "9:16": (752, 1392),
    "21:9": (1568, 672),
    "9:21": (672, 1568),
}

#: FLUX.1 Kontext's preferred resolutions (width, height), about 1 MP from 3:7 to 7:3: without an
#: aspect_ratio an edit comes back at the one nearest the input's aspect ratio, not at the input's
#: own size (WAVESPEED_API.md section 12.5; diffusers' PREFERRED_KONTEXT_RESOLUTIONS) [inferred].
PREFERRED_KONTEXT_RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184),
    (944, 1104), (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752),
    (1456, 720), (1504, 688), (1568, 672),
)  # fmt: skip

#: Output formats the emulator can encode, mapped to (Pillow format name, MIME type).
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}

#: Upload formats the API accepts (Pillow format name -> (file extension, MIME type)).
UPLOAD_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
}

# render_text_to_image draws at 1/_DOWNSCALE of the size, then upscales.
_DOWNSCALE = 4

#: Refuse to decode inputs above this many pixels (decompression-bomb guard).
MAX_INPUT_PIXELS = 64_000_000


def size_for_aspect_ratio(ratio: str) -> tuple[int, int]:
    """Return (width, height) for an API aspect ratio such as "16:9"; KeyError if unknown."""
    return KONTEXT_SIZES[ratio]


def nearest_kontext_size(width: int, height: int) -> tuple[int, int]:
    """The preferred Kontext resolution whose aspect ratio is nearest width/height (first on a tie,
    as diffusers' ``min`` picks it)."""
    aspect = width / max(1, height)
    return min(PREFERRED_KONTEXT_RESOLUTIONS, key=lambda wh: abs(aspect - wh[0] / wh[1]))


def _unit(digest: bytes, i: int) -> float:
    """Byte i of the digest as a float in [0, 1]."""
    return digest[i % len(digest)] / 255.0


def render_text_to_image(prompt: str, seed: int, width: int, height: int) -> RGB:
    """Render a deterministic HxWx3 uint8 picture from sha256(prompt, seed).

    A two-colour linear gradient, soft stripes and three discs: any change of prompt or seed moves
    colours, angles and shapes enough to be obvious to the eye. The pattern is drawn at a quarter of
    the size and upscaled bilinearly by Pillow, so a Kontext-size image costs a few ms (the
    emulator must keep up with benchmarks submitting hundreds of tasks).
    """
    sw, sh = max(1, -(-width // _DOWNSCALE)), max(1, -(-height // _DOWNSCALE))
    small = _pattern(prompt, seed, sw, sh)
    if (sw, sh) == (width, height):
        return small
    im = Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BILINEAR)
    out: RGB = np.asarray(im, dtype=np.uint8)
    return out


def _pattern(prompt: str, seed: int, width: int, height: int) -> RGB:
    """The seeded pattern at exactly width x height (vectorised; separable where possible)."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    d = digest + hashlib.sha256(digest).digest()

    def colour(offset: int) -> NDArray[np.float32]:
        return np.array([d[offset], d[offset + 1], d[offset + 2]], dtype=np.float32)

    c0, c1, c2 = colour(0), colour(3), colour(6)
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)

    # Gradient along a seeded direction: t is an outer sum of two 1-D ramps, rescaled to [0, 1].
    angle = _unit(d, 9) * 2.0 * np.pi
    gx, gy = xs * np.float32(np.cos(angle)), ys * np.float32(np.sin(angle))
    lo = float(gx.min() + gy.min())
    span = max(float(gx.max() + gy.max()) - lo, 1e-6)
    t = np.add.outer((gy - np.float32(lo)) / np.float32(span), gx / np.float32(span))
    img = t[..., None] * (c1 - c0) + c0

    # Stripes: sin(a*x + b*y + p) = sin(a*x)cos(b*y + p) + cos(a*x)sin(b*y + p), two outer products.
    angle2 = _unit(d, 10) * np.pi
    k = (4.0 + 20.0 * _unit(d, 11)) * 2.0 * np.pi
    phase = _unit(d, 12) * 2.0 * np.pi
    ax = xs * np.float32(k * np.cos(angle2))
    by = ys * np.float32(k * np.sin(angle2)) + np.float32(phase)
    wave = np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax))
    wave -= np.float32(0.6)
    wave *= np.float32(4.0 * 0.45)
    stripe = np.clip(wave, 0.0, 0.45)[..., None]
    img += (c2 - img) * stripe

    # Discs in pixel space (round whatever the aspect ratio), computed only inside their boxes.
    short = float(min(width, height))
    for n in range(3):
        base = 13 + 6 * n
        cx, cy = _unit(d, base) * width, _unit(d, base + 1) * height
        r = (0.08 + 0.22 * _unit(d, base + 2)) * short
        x0, x1 = max(0, int(cx - r - 2)), min(width, int(cx + r + 3))
        y0, y1 = max(0, int(cy - r - 2)), min(height, int(cy + r + 3))
        if x0 >= x1 or y0 >= y1:
            continue
        dx2 = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx)) ** 2
        dy2 = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy)) ** 2
        dist = np.sqrt(np.add.outer(dy2, dx2))
        inside = np.clip((np.float32(r) - dist) * np.float32(0.5 * 0.85), 0.0, 0.85)[..., None]
        box = img[y0:y1, x0:x1]
        box += (colour(base + 3) - box) * inside

    img += np.float32(0.5)
    out: RGB = np.clip(img, 0, 255, out=img).astype(np.uint8)
    return out


def _resize(arr: RGB, width: int, height: int) -> RGB:
    """Bicubic resize with Pillow (no-op when the size already matches)."""
    if arr.shape[1] == width and arr.shape[0] == height:
        return arr
    im = Image.fromarray(arr, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    out: RGB = np.asarray(im, dtype=np.uint8)
    return out


def render_edit(images: list[RGB], aspect_ratio: str | None, *, keep_input_size: bool = False) -> RGB:
    """The emulator's "edit": colour-invert the reference(s), so a test can predict every pixel.

    One image: 255 - RGB. Several (multi-reference): each is resized to the first image's height,
    they are joined left to right in the given order, then inverted. The result is finally resized
    (bicubic) to aspect_ratio's Kontext size; without one, to the preferred Kontext resolution
    nearest the joined image's aspect ratio (``keep_input_size``: the older, kinder reading that
    keeps the input's own size).
    """
    if not images:
        raise ValueError("render_edit needs at least one image")
    h0 = images[0].shape[0]
    parts: list[RGB] = []
    for im in images:
        h, w = im.shape[0], im.shape[1]
        new_w = max(1, round(w * h0 / h))
        parts.append(_resize(np.ascontiguousarray(im[..., :3]), new_w, h0))
    joined = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    inverted: RGB = (255 - joined).astype(np.uint8)
    if aspect_ratio is None and keep_input_size:
        return inverted
    if aspect_ratio is None:
        w, h = nearest_kontext_size(inverted.shape[1], inverted.shape[0])
    else:
        w, h = size_for_aspect_ratio(aspect_ratio)
    return _resize(inverted, w, h)


def encode_image(arr: RGB, output_format: str) -> bytes:
    """Encode an RGB array as jpeg (quality 95), png or webp; deterministic for equal input."""
    pil_format, _ = OUTPUT_FORMATS[output_format]
    buf = io.BytesIO()
    im = Image.fromarray(arr, "RGB")
    if pil_format == "PNG":
        im.save(buf, format="PNG")
    else:
        im.save(buf, format=pil_format, quality=95)
    return buf.getvalue()


def decode_image(data: bytes) -> RGB:
    """Decode image bytes to RGB (EXIF orientation applied, alpha dropped); raises on bad input."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if w * h > MAX_INPUT_PIXELS:
            raise ValueError(f"image too large: {w}x{h}")
        im.load()
        upright = ImageOps.exif_transpose(im)
        rgb = upright.convert("RGB")
    out: RGB = np.asarray(rgb, dtype=np.uint8)
    return out


def sniff_image_format(data: bytes) -> str | None:
    """Return the Pillow format name if data is an image of an accepted upload type, else None."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            im.verify()
    except Exception:
        return None
    return fmt if fmt in UPLOAD_FORMATS else None


def is_decodable(data: bytes) -> bool:
    """True if Pillow can fully decode data (used to make "corrupt" faults really undecodable)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:
        return False
    return True
