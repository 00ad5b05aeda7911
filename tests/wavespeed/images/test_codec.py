"""Tests for wavespeed.images.codec: every file is generated here with Pillow/numpy (no binaries committed)."""

from __future__ import annotations

import ast
import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from wavespeed_kontext_pack.wavespeed.core.errors import ImageDecodeError
from wavespeed_kontext_pack.wavespeed.images.batch_plan import images_to_tensor
from wavespeed_kontext_pack.wavespeed.images.codec import (
    MAX_PIXELS,
    UnsupportedFormatError,
    decode_image,
    decode_to_uint8,
    image_size,
    tensor_to_png,
)

from scripts import layout
from scripts.pack_loader import REPO_ROOT

F32 = np.float32


# --------------------------------------------------------------------------- helpers


def rgb_array(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def smooth_array(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], -1).astype(
        np.uint8
    )


def encode(img: Image.Image | np.ndarray, fmt: str = "PNG", **kwargs: Any) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG."""
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def build_png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    parts = [b"\x89PNG\r\n\x1a\n"]
    for kind, payload in chunks:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        parts.append(struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc))
    return b"".join(parts)


def patch_ihdr(png: bytes, width: int, height: int) -> bytes:
    """Same tiny PNG, but the header claims ``width x height`` (valid CRC)."""
    chunks = png_chunks(png)
    kind, payload = chunks[0]
    assert kind == b"IHDR"
    chunks[0] = (kind, struct.pack(">II", width, height) + payload[8:])
    return build_png(chunks)


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def marked(width: int, height: int) -> np.ndarray:
    """Grey image with a red 8x8 block in the stored top-left corner."""
    arr = np.full((height, width, 3), 128, np.uint8)
    arr[:8, :8] = (255, 0, 0)
    return arr


def is_red(block: np.ndarray) -> bool:
    mean = block.reshape(-1, 3).mean(axis=0)
    return bool(mean[0] > 0.85 and mean[1] < 0.15 and mean[2] < 0.15)


def expect_decode_error(data: bytes, *words: str) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


# --------------------------------------------------------------------------- basic formats


def test_rgb_png_exact_shape_dtype_contiguity() -> None:
    arr = rgb_array(37, 23)
    out = decode_image(encode(arr))
    assert out.shape == (23, 37, 3)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    # bit-identical to ComfyUI's LoadImage conversion
    np.testing.assert_array_equal(out, arr.astype(np.float32) / 255.0)
    assert out.min() == 0.0 and out.max() == 1.0


def test_images_to_tensor_single_is_a_contiguous_float_batch() -> None:
    arr = rgb_array(16, 9, seed=3)
    t = images_to_tensor([encode(arr)])
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    assert tuple(t.shape) == (1, 9, 16, 3)
    assert t.is_contiguous()
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    np.testing.assert_array_equal(t[0].numpy(), arr.astype(np.float32) / 255.0)


def test_large_image_goes_through_strips_exactly() -> None:
    # 700 x 400 RGB is bigger than one 0.5 MB conversion strip, so several strips are stitched
    arr = rgb_array(700, 400, seed=5)
    np.testing.assert_array_equal(decode_image(encode(arr, compress_level=0)), arr.astype(np.float32) / 255)


def test_jpeg_matches_pillow_decode() -> None:
    data = encode(smooth_array(64, 48), "JPEG", quality=95)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode_to_uint8(data), ref)
    np.testing.assert_array_equal(decode_image(data), ref.astype(np.float32) / 255)


def test_webp_lossless_exact_and_lossy_close() -> None:
    arr = rgb_array(32, 32, seed=7)
    np.testing.assert_array_equal(decode_to_uint8(encode(arr, "WEBP", lossless=True)), arr)
    smooth = smooth_array(64, 64)
    lossy = decode_image(encode(smooth, "WEBP", quality=90))
    assert lossy.shape == (64, 64, 3)
    assert np.abs(lossy - smooth / 255.0).mean() < 0.02


def test_grey_l_replicated_to_three_channels() -> None:
    grey = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    out = decode_image(encode(Image.fromarray(grey)))
    assert out.shape == (6, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey.astype(np.float32) / 255)


# --------------------------------------------------------------------------- alpha


def test_rgba_composited_over_black_exactly() -> None:
    rgba = np.zeros((2, 5, 4), np.uint8)
    rgba[..., :3] = rgb_array(5, 2, seed=11)
    rgba[0, :, 3] = [0, 1, 128, 254, 255]
    rgba[1, :, 3] = [255, 0, 64, 200, 32]
    rgba[0, 0, :3] = (250, 17, 99)  # garbage colour hidden under alpha = 0
    out = decode_image(encode(Image.fromarray(rgba, "RGBA")))
    expected = rgba[..., :3].astype(F32) * rgba[..., 3:].astype(F32) / F32(65025)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[0, 0], [0.0, 0.0, 0.0])  # hidden colour never leaks
    np.testing.assert_array_equal(out[0, 4], rgba[0, 4, :3] / F32(255))  # opaque is plain c / 255
    # the uint8 variant rounds the same composite
    np.testing.assert_array_equal(decode_to_uint8(encode(Image.fromarray(rgba, "RGBA"))), np.rint(out * 255))


def test_la_composited_over_black() -> None:
    la = np.array([[[200, 255], [200, 128], [200, 0], [10, 77]]], np.uint8)
    out = decode_image(encode(Image.fromarray(la, "LA")))
    expected = la[..., :1].astype(F32) * la[..., 1:].astype(F32) / F32(65025)
    np.testing.assert_array_equal(out, np.repeat(expected, 3, axis=2))
    assert out[0, 0, 0] == F32(200) / F32(255)
    assert out[0, 2].tolist() == [0.0, 0.0, 0.0]


def palette_image() -> Image.Image:
    img = Image.fromarray(np.array([[0, 1, 2, 1]], np.uint8), "P")
    img.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 0] + [0] * (256 * 3 - 9))
    return img


def test_palette_without_transparency_is_rgb() -> None:
    out = decode_to_uint8(encode(palette_image()))
    assert out.tolist() == [[[10, 20, 30], [200, 100, 50], [0, 255, 0], [200, 100, 50]]]


def test_palette_with_transparency_index_and_partial_alpha() -> None:
    out = decode_image(encode(palette_image(), transparency=0))
    assert out[0, 0].tolist() == [0.0, 0.0, 0.0]  # fully transparent index -> black
    np.testing.assert_array_equal(out[0, 1], np.array([200, 100, 50], F32) / F32(255))
    # per-index alpha (PNG tRNS with several entries): index 1 is half transparent
    out = decode_image(encode(palette_image(), transparency=bytes([255, 128, 0])))
    np.testing.assert_array_equal(out[0, 1], np.array([200, 100, 50], F32) * F32(128) / F32(65025))
    assert out[0, 2].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(out[0, 0], np.array([10, 20, 30], F32) / F32(255))


def test_grey_with_transparency_key() -> None:
    grey = np.array([[5, 100, 5, 255]], np.uint8)
    out = decode_image(encode(Image.fromarray(grey), transparency=5))
    assert out[0, 0].tolist() == [0.0, 0.0, 0.0]
    assert out[0, 1, 0] == F32(100) / F32(255)
    assert out[0, 3].tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [
        (1, (20, 40), "top-left"),
        (6, (40, 20), "top-right"),  # rotate 90 clockwise for display
        (3, (20, 40), "bottom-right"),  # rotate 180
        (8, (40, 20), "bottom-left"),  # rotate 90 counter-clockwise
    ],
)
def test_exif_orientation_applied(orientation: int, shape: tuple[int, int], corner: str) -> None:
    data = encode(marked(40, 20), "JPEG", quality=95, exif=exif_bytes(orientation))
    out = decode_image(data)
    assert out.shape[:2] == shape
    h, w = shape
    corners = {
        "top-left": out[1:7, 1:7],
        "top-right": out[1:7, w - 7 : w - 1],
        "bottom-left": out[h - 7 : h - 1, 1:7],
        "bottom-right": out[h - 7 : h - 1, w - 7 : w - 1],
    }
    for name, block in corners.items():
        assert is_red(block) == (name == corner), (name, block.reshape(-1, 3).mean(axis=0))
    assert image_size(data) == (w, h)
    assert tuple(images_to_tensor([data]).shape) == (1, h, w, 3)


_DISPLAYED = {  # what each EXIF orientation shows, as numpy operations on the stored pixels
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(_DISPLAYED))
def test_every_exif_orientation_is_exact(orientation: int) -> None:
    """All eight orientations, mirrored ones included, pixel for pixel (lossless PNG)."""
    arr = rgb_array(7, 5, seed=orientation)
    data = encode(arr, exif=exif_bytes(orientation))
    want = _DISPLAYED[orientation](arr)
    np.testing.assert_array_equal(decode_to_uint8(data), want)
    assert image_size(data) == (want.shape[1], want.shape[0])
    np.testing.assert_array_equal(images_to_tensor([data])[0].numpy(), want / F32(255))


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_an_orientation_outside_1_to_8_is_ignored(orientation: int) -> None:
    arr = rgb_array(7, 5)
    data = encode(arr, exif=exif_bytes(orientation))
    np.testing.assert_array_equal(decode_to_uint8(data), arr)
    assert image_size(data) == (7, 5)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns "Corrupt EXIF data"
@pytest.mark.parametrize("exif", [b"garbage", b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff"])
def test_a_broken_exif_block_does_not_cost_the_picture(exif: bytes) -> None:
    arr = smooth_array(16, 8)
    data = encode(arr, "JPEG", quality=95, exif=exif)
    assert decode_image(data).shape == (8, 16, 3)
    assert image_size(data) == (16, 8)


def test_png_exif_after_idat_is_still_applied_in_batches() -> None:
    """eXIf after IDAT is invisible in the header: the batch must notice and re-plan its size."""
    png = encode(marked(40, 20), exif=exif_bytes(6))
    chunks = png_chunks(png)
    exif_chunk = next(c for c in chunks if c[0] == b"eXIf")
    rest = [c for c in chunks if c[0] != b"eXIf"]
    moved = build_png(rest[:-1] + [exif_chunk, rest[-1]])  # just before IEND
    assert moved.find(b"eXIf") > moved.find(b"IDAT")
    assert image_size(moved) == (40, 20)  # header only: cannot know
    assert decode_image(moved).shape == (40, 20, 3)
    batch = images_to_tensor([moved, png])
    assert tuple(batch.shape) == (2, 40, 20, 3)
    np.testing.assert_array_equal(batch[0].numpy(), batch[1].numpy())
    assert is_red(batch[0, 1:7, 13:19].numpy())


# --------------------------------------------------------------------------- other modes


def test_16bit_grey_png_keeps_precision() -> None:
    values = np.array([[0, 32768, 32769, 65535]], np.uint16)
    data = encode(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = decode_image(data)
    assert out.shape == (1, 4, 3)
    assert abs(float(out[0, 1, 0]) - 32768 / 65535) < 1e-7  # ~0.500008
    assert out[0, 2, 0] > out[0, 1, 0]  # one 16-bit step apart: finer than 1/255
    assert out[0, 0].tolist() == [0.0, 0.0, 0.0] and out[0, 3].tolist() == [1.0, 1.0, 1.0]
    assert out[0, 1, 0] == out[0, 1, 1] == out[0, 1, 2]
    assert decode_to_uint8(data)[0, :, 0].tolist() == [0, 128, 128, 255]  # rounded, not truncated


def test_cmyk_jpeg_converted_to_rgb() -> None:
    rgb = np.zeros((16, 48, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)
    rgb[:, 16:32] = (0, 0, 255)
    rgb[:, 32:] = (40, 200, 90)
    data = encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = decode_to_uint8(data)
    assert out.shape == (16, 48, 3)
    for x0, colour in ((0, (255, 0, 0)), (16, (0, 0, 255)), (32, (40, 200, 90))):
        mean = out[4:12, x0 + 4 : x0 + 12].reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - colour).max() < 6, (colour, mean)


def test_bilevel_gives_zero_and_one() -> None:
    bits = np.array([[1, 0, 1], [0, 0, 1]], bool)
    out = decode_image(encode(Image.fromarray(bits)))
    np.testing.assert_array_equal(out[..., 0], bits.astype(np.float32))
    np.testing.assert_array_equal(out[..., 1], out[..., 2])


@pytest.mark.parametrize(
    ("fmt", "mode", "named"),
    [("TIFF", "F", "a TIFF image"), ("TIFF", "RGB", "a TIFF image"), ("GIF", "P", "a GIF image"),
     ("BMP", "RGB", "a BMP image"), ("EPS", "RGB", "a PostScript/EPS file"), ("ICO", "RGB", "an ICO image"), ("PPM", "RGB", "an unknown format"), ("TGA", "RGB", "an unknown format")],
)  # fmt: skip
def test_formats_wavespeed_does_not_serve_are_refused_unread(fmt: str, mode: str, named: str) -> None:
    """Formats Pillow can read but WaveSpeed never serves (main decoded them all, EPS by starting
    Ghostscript): refused, named by their first bytes, before any decode."""
    img = Image.new(mode, (16, 16)) if mode != "F" else Image.fromarray(np.zeros((16, 16), np.float32), "F")
    data = encode(img, fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow would read it
    message = expect_decode_error(data, f"{named}, not a PNG, JPEG or WebP image")
    with pytest.raises(UnsupportedFormatError):
        images_to_tensor([encode(rgb_array(8, 8)), data])
    with pytest.raises(UnsupportedFormatError):
        image_size(data)
    assert len(message) < 120


# --------------------------------------------------------------------------- batching and sizes


SIZES = [(40, 30), (20, 50), (60, 10)]  # (width, height)


def mixed_outputs() -> tuple[list[np.ndarray], list[bytes]]:
    arrays = [rgb_array(w, h, seed=i + 20) for i, (w, h) in enumerate(SIZES)]
    return arrays, [encode(a) for a in arrays]


def test_same_size_outputs_batch_in_order() -> None:
    arrays = [rgb_array(12, 8, seed=s) for s in (1, 2, 3)]
    t = images_to_tensor([encode(a) for a in arrays])
    assert tuple(t.shape) == (3, 8, 12, 3)
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(t[i].numpy(), a.astype(np.float32) / 255)


def test_pad_centres_each_image_on_black() -> None:
    arrays, blobs = mixed_outputs()
    t = images_to_tensor(blobs)  # PAD is the default
    assert tuple(t.shape) == (3, 50, 60, 3)
    for i, ((w, h), arr) in enumerate(zip(SIZES, arrays, strict=True)):
        top, left = (50 - h) // 2, (60 - w) // 2
        np.testing.assert_array_equal(t[i, top : top + h, left : left + w].numpy(), arr / F32(255))
        canvas = t[i].numpy().copy()
        canvas[top : top + h, left : left + w] = 0
        assert not canvas.any(), f"image {i}: non-black pixels outside the pasted area"
    # image 0 (40x30) sits at rows 10..39, cols 10..49
    np.testing.assert_array_equal(t[0, 10, 10].numpy(), arrays[0][0, 0] / F32(255))


def test_empty_batch_and_bare_bytes_refused() -> None:
    with pytest.raises(ImageDecodeError, match="no images"):
        images_to_tensor([])
    with pytest.raises(TypeError):
        images_to_tensor(encode(rgb_array(2, 2)))  # type: ignore[arg-type]


def test_bad_output_in_batch_fails_before_decoding_the_rest() -> None:
    good = encode(rgb_array(8, 8))
    with pytest.raises(ImageDecodeError, match="an XML/SVG/HTML text, not a PNG, JPEG or WebP image"):
        images_to_tensor([good, b"<html>502 Bad Gateway</html>"])
    with pytest.raises(ImageDecodeError, match="over the 50 px limit"):
        images_to_tensor([good, encode(rgb_array(4, 4))], max_pixels=50)


# --------------------------------------------------------------------------- encoding back


def test_png_round_trip_is_byte_exact() -> None:
    arr = rgb_array(31, 17, seed=9)
    png = encode(arr, compress_level=1)
    t = images_to_tensor([png])
    assert tensor_to_png(t) == png
    assert tensor_to_png(t[0]) == png  # [H, W, C] accepted
    np.testing.assert_array_equal(decode_to_uint8(tensor_to_png(t, compress_level=9)), arr)


def test_png_rounds_clips_and_keeps_rgba() -> None:
    x = torch.tensor([[[[10.4 / 255, 10.6 / 255, 254.6 / 255], [-1.0, 2.0, float("nan")]]]])
    out = np.asarray(Image.open(io.BytesIO(tensor_to_png(x))))
    assert out.tolist() == [[[10, 11, 255], [0, 255, 0]]]  # truncation would give 10, 10, 254
    rgba = torch.rand(1, 3, 4, 4)
    img = Image.open(io.BytesIO(tensor_to_png(rgba)))
    assert img.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(img), torch.round(rgba[0] * 255).to(torch.uint8).numpy())


def test_png_picks_the_indexed_image() -> None:
    arrays = [rgb_array(6, 4, seed=s) for s in (1, 2)]
    t = images_to_tensor([encode(a) for a in arrays])
    np.testing.assert_array_equal(decode_to_uint8(tensor_to_png(t, 1)), arrays[1])


def test_encode_argument_errors() -> None:
    fn = tensor_to_png
    t = torch.zeros(2, 4, 4, 3)
    with pytest.raises(ValueError, match="index 2 is out of range for a batch of 2"):
        fn(t, 2)
    with pytest.raises(ValueError, match="out of range"):
        fn(t, -1)
    with pytest.raises(ValueError, match="channels"):
        fn(torch.zeros(1, 4, 4, 2))
    with pytest.raises(ValueError, match="shape"):
        fn(torch.zeros(4, 4))


# --------------------------------------------------------------------------- bad input


def test_empty_bytes() -> None:
    expect_decode_error(b"", "no data")


def test_text_and_random_bytes() -> None:
    text = expect_decode_error(b"Internal Server Error\n<html>...</html>", "not a PNG, JPEG or WebP image")
    assert text.startswith("an unknown format")
    junk = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    expect_decode_error(junk, "not a PNG, JPEG or WebP image")


def test_corrupt_png_data() -> None:
    png = bytearray(encode(rgb_array(64, 64)))
    idat = png.find(b"IDAT")
    png[idat + 20 : idat + 60] = bytes(40)  # zeroed compressed data, CRC now wrong
    expect_decode_error(bytes(png), "could not decode")


def test_truncated_png_fails_instead_of_loading_grey() -> None:
    png = encode(rgb_array(64, 64))
    message = expect_decode_error(png[: len(png) // 2], "PNG", "truncated")
    assert f"({len(png) // 2} bytes)" in message


def test_truncated_jpeg_fails() -> None:
    jpeg = encode(rgb_array(64, 64), "JPEG", quality=95)
    expect_decode_error(jpeg[: len(jpeg) // 2], "JPEG", "truncated")


# --------------------------------------------------------------------------- decompression bombs


def test_bomb_refused_from_header_before_decoding() -> None:
    # A 1x1 PNG claiming 7000 x 7000: decoding would be a "truncated" error, so the bomb
    # message proves the refusal came from the header, before any pixel buffer was allocated.
    bomb = patch_ihdr(encode(rgb_array(1, 1)), 7000, 7000)
    assert image_size(bomb) == (7000, 7000)
    message = expect_decode_error(bomb, "7000 x 7000 = 49000000 px", f"over the {MAX_PIXELS} px limit")
    assert "decompression bomb" in message
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        images_to_tensor([bomb])


def test_pillow_own_bomb_error_becomes_ours() -> None:
    bomb = patch_ihdr(encode(rgb_array(1, 1)), 20000, 20000)  # over Pillow's hard limit
    expect_decode_error(bomb, "400000000 px", "decompression bomb")


def test_pillow_bomb_warning_becomes_an_error_even_with_a_higher_limit() -> None:
    bomb = patch_ihdr(encode(rgb_array(1, 1)), 10000, 10000)  # between Pillow's warn and error levels
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < 10**8
    with pytest.raises(ImageDecodeError, match=rf"100000000 px, over the {Image.MAX_IMAGE_PIXELS} px limit"):
        decode_image(bomb, max_pixels=2 * 10**8)
    assert image_size(bomb) == (10000, 10000)  # size queries only report


def test_max_pixels_argument() -> None:
    data = encode(rgb_array(100, 100))
    expect = "100 x 100 = 10000 px, over the 5000 px limit"
    with pytest.raises(ImageDecodeError, match=expect):
        decode_image(data, max_pixels=5000)
    with pytest.raises(ImageDecodeError, match=expect):
        decode_to_uint8(data, max_pixels=5000)
    assert decode_image(data, max_pixels=10000).shape == (100, 100, 3)


# --------------------------------------------------------------------------- image_size


def test_image_size_reads_header_only() -> None:
    png = encode(rgb_array(123, 45))
    assert image_size(png) == (123, 45)
    cut = png[:200]  # header intact, pixel data gone: only a header read can succeed
    assert image_size(cut) == (123, 45)
    with pytest.raises(ImageDecodeError):
        decode_image(cut)
    assert image_size(encode(rgb_array(30, 10), "WEBP")) == (30, 10)
    with pytest.raises(ImageDecodeError, match="no data"):
        image_size(b"")


# --------------------------------------------------------------------------- purity


def test_module_imports_only_numpy_pillow_torch_and_errors() -> None:
    """The codec stays pure, and reaches errors.py relatively: ComfyUI loads the pack under a
    mangled package name, so an absolute ``wavespeed.`` import would fail there."""
    source = REPO_ROOT / "wavespeed" / "images" / "codec.py"
    allowed_third_party = {"numpy", "PIL", "torch"}
    stdlib = {"__future__", "contextlib", "io", "re", "warnings", "collections", "enum", "typing"}
    for node in ast.walk(layout.parse_source(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert (node.level, node.module) == (2, "core.errors"), f"relative import of {node.module}"
                continue
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in allowed_third_party | stdlib, name
