"""A decode cannot hang: only the formats WaveSpeed serves are opened, in this process, with no
outside program; the work is bounded before any pixel is decoded; and the caller's deadline and
Cancel hold while a decode runs in C (its result is dropped). Deadlines are proved by event order:
the caller had its error while the decode was still running."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image
from wavespeed_kontext_pack.wavespeed.core.errors import CancelledError, ImageDecodeError, WaitTimeoutError
from wavespeed_kontext_pack.wavespeed.images import decode_guard
from wavespeed_kontext_pack.wavespeed.images.batch_plan import images_to_tensor
from wavespeed_kontext_pack.wavespeed.images.codec import MAX_JPEG_SCANS, UnsupportedFormatError
from wavespeed_kontext_pack.wavespeed.images.decode_guard import decode_before

RID = "0123456789abcdef0123456789abcdef"
# An EPS whose PostScript never ends: Ghostscript would spin on it for ever (issue 26, case 2).
ENDLESS_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ 1 pop } loop\nshowpage\n%%EOF\n"


@pytest.fixture
def fake_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gs`` first on PATH that notes every start in a file; Pillow forgets the one it found."""
    marker = tmp_path / "gs-started"
    gs = tmp_path / "bin" / "gs"
    gs.parent.mkdir()
    gs.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nsleep 30\n', encoding="ascii")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{gs.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return marker


def test_an_eps_output_never_starts_an_outside_program(fake_ghostscript: Path) -> None:
    """Main handed the EPS to Ghostscript (with an endless loop it outlived the node and Cancel)."""
    started = time.monotonic()
    with pytest.raises(UnsupportedFormatError, match="PostScript/EPS file, not a PNG, JPEG or WebP image"):
        images_to_tensor([ENDLESS_EPS])
    assert time.monotonic() - started < 10  # (generous) refused, not run
    assert not fake_ghostscript.exists(), fake_ghostscript.read_text()


def _png(side: int) -> bytes:
    noise = np.random.default_rng(3).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _watched(data: bytes) -> tuple[threading.Event, threading.Event, Callable[[], Any]]:
    """A real decode of ``data`` that says when it starts and when it has finished."""
    began, ended = threading.Event(), threading.Event()

    def decode() -> Any:
        began.set()
        try:
            return images_to_tensor([data])
        finally:
            ended.set()

    return began, ended, decode


def test_the_deadline_holds_while_a_decode_runs_in_c() -> None:
    began, ended, decode = _watched(_png(1600))
    with pytest.raises(WaitTimeoutError) as caught:
        decode_before(decode, deadline=time.monotonic() + 0.001, cancel=lambda: False, request_id=RID)
    assert not ended.is_set()  # the caller had its answer; the decode was still running
    assert caught.value.request_id == RID and RID in str(caught.value) and "Poll Result" in str(caught.value)
    assert ended.wait(60)  # and it ends by itself (its result dropped)
    assert began.is_set()


def test_cancel_holds_while_a_decode_runs_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_guard, "SLICE_S", 0.001)  # Cancel asked every millisecond
    began, ended, decode = _watched(_png(2000))
    with pytest.raises(CancelledError) as caught:
        decode_before(decode, deadline=time.monotonic() + 600, cancel=began.is_set, request_id=RID)
    assert not ended.is_set() and caught.value.request_id == RID
    assert ended.wait(60)


def test_a_decode_within_its_deadline_is_returned_and_its_errors_pass_through() -> None:
    out = decode_before(
        lambda: images_to_tensor([_png(64)]),
        deadline=time.monotonic() + 60,
        cancel=lambda: False,
        request_id=RID,
    )
    assert tuple(out.shape) == (1, 64, 64, 3)
    with pytest.raises(UnsupportedFormatError):
        decode_before(
            lambda: images_to_tensor([b"GIF89a..."]),
            deadline=time.monotonic() + 60,
            cancel=lambda: False,
            request_id=RID,
        )
    with pytest.raises(WaitTimeoutError):  # already past: nothing is started
        decode_before(
            lambda: pytest.fail("started"),
            deadline=time.monotonic() - 1,
            cancel=lambda: False,
            request_id=RID,
        )


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding() -> None:
    """Each scan of a progressive JPEG is a pass over the whole picture: the count is read from the
    markers before anything decodes."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buf, format="JPEG", progressive=True)
    jpeg = buf.getvalue()
    assert 1 < jpeg.count(b"\xff\xda") <= MAX_JPEG_SCANS  # a normal progressive file decodes
    assert tuple(images_to_tensor([jpeg]).shape) == (1, 32, 32, 3)
    extra = b"\xff\xda" * (MAX_JPEG_SCANS + 1)
    many = jpeg[:2] + b"\xff\xfe" + (len(extra) + 2).to_bytes(2, "big") + extra + jpeg[2:]
    with pytest.raises(ImageDecodeError, match=f"scans, over the {MAX_JPEG_SCANS} this pack decodes"):
        images_to_tensor([many])
