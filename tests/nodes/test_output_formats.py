"""Poll Result's download-and-decode step decodes only the formats WaveSpeed serves, with no outside
program: an EPS output (main started Ghostscript on it; with an endless loop it outlived the node's
timeout_s and Cancel) is refused in one line that names the task and says it stays in Recent Tasks.
A real loopback server serves the outputs; a ``gs`` on PATH records any start."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import EpsImagePlugin

from tests.support.clients import fast_client
from tests.support.hostile_server import RawServer, Script, http_reply

KEY = "output-formats-key-0123456"
TASK_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
ENDLESS_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ 1 pop } loop\nshowpage\n%%EOF\n"


def _mod(pack: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{pack.__name__}.{name}")


def _context(pack: ModuleType, client: Any) -> Any:
    """A task call's context that uses ``client`` (a fast_client on the test's server)."""
    return _mod(pack, "wavespeed.tasks.context").TaskContext(client=client)


def test_an_eps_output_is_refused_in_one_line_and_no_program_starts(
    pack: ModuleType,
    raw_server: Callable[[Script], RawServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "gs-started"
    gs = tmp_path / "bin" / "gs"
    gs.parent.mkdir()
    gs.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nsleep 30\n', encoding="ascii")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{gs.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # Pillow looks for gs again
    server = raw_server(
        lambda conn, req: conn.sendall(http_reply(200, ENDLESS_EPS, headers={"Content-Type": "image/jpeg"}))
    )
    prediction = _mod(pack, "wavespeed.api.reply_types").Prediction(
        id=TASK_ID, status="completed", outputs=(f"{server.url}/out.jpeg",)
    )
    with (
        fast_client(server.url, KEY, attempts=2) as client,
        pytest.raises(_mod(pack, "wavespeed.images.codec").UnsupportedFormatError) as caught,
    ):
        _mod(pack, "wavespeed.tasks.results").fetch_images(prediction, _context(pack, client))
    text = str(caught.value)
    assert not marker.exists(), marker.read_text()  # no outside program was started
    assert "\n" not in text and caught.value.request_id == TASK_ID
    assert text.startswith(
        f"An output of task {TASK_ID} is a PostScript/EPS file, not a PNG, JPEG or WebP image"
    )
    assert "not decoded; the task stays in Recent Tasks" in text and f"{server.url}/out.jpeg" in text
