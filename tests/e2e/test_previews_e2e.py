"""Images as they arrive, through a real ComfyUI: the preview frames on the websocket (issue 19).

A Batch of 4 whose first task finishes while the other three are held at the emulator: the first
preview frame (naming the Batch node, as frontend 1.49.6 asks for them) must arrive while those three
are still running, decode to a JPEG of at most 512 px that is not blank, and come with the status
line "1/4 done, $0.08 so far"; then the three are released and each sends its own preview. A Poll
Result for a client that does not ask for node metadata gets the plain preview frame (1) instead.

Marked ``smoke``: scripts/test.sh runs it on ComfyUI 0.3.75 too (COMFYUI_DIR=.cache/comfyui/ComfyUI-0.3.75).
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from PIL import Image

from emulator import Emulator
from scripts.comfy_harness import ComfyServer
from tests.support.graphs import batch_graph, generate_chain

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(150)]

PREVIEW_IMAGE, TEXT, PREVIEW_WITH_METADATA = 1, 3, 4  # ComfyUI's protocol.BinaryEventTypes


@dataclass
class Frame:
    """One preview frame: the picture, the node it names (metadata frames only), when it came."""

    image: Image.Image
    node: str | None
    index: int  # position among all websocket messages of the run


@dataclass
class Run:
    status: str = ""
    previews: list[Frame] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (node, text)
    events: list[dict[str, Any]] = field(default_factory=list)


def _run(
    server: ComfyServer,
    prompt: dict[str, Any],
    *,
    metadata: bool,
    on_preview: Callable[[Frame, Run], None] | None = None,
    timeout_s: float = 120.0,
) -> Run:
    """Queue ``prompt`` and collect its websocket messages, decoding preview frames, until it ends."""
    import websocket

    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(f"{server.ws_url}?clientId={client_id}", timeout=10)
    run = Run()
    try:
        if metadata:  # what the frontend sends first: then previews come as PREVIEW_WITH_METADATA
            ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        code, body = server.post_json("/prompt", {"prompt": prompt, "client_id": client_id})
        assert code == 200, body
        prompt_id = body["prompt_id"]
        deadline = time.monotonic() + timeout_s
        while not run.status:
            assert time.monotonic() < deadline, f"no end of prompt; last: {run.events[-5:]}"
            ws.settimeout(1.0)
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                assert server.is_running(), server.log_tail()
                continue
            if opcode == websocket.ABNF.OPCODE_BINARY:
                _binary(bytes(data), run, on_preview)
                continue
            msg = json.loads(data)
            run.events.append(msg)
            if (msg.get("data") or {}).get("prompt_id") == prompt_id and msg["type"] in (
                "execution_success",
                "execution_error",
                "execution_interrupted",
            ):
                run.status = msg["type"]
                if msg["type"] != "execution_success":
                    pytest.fail(f"{msg['type']}: {msg['data'].get('exception_message')}")
    finally:
        ws.close()
    return run


def _binary(data: bytes, run: Run, on_preview: Callable[[Frame, Run], None] | None) -> None:
    (event,) = struct.unpack(">I", data[:4])
    run.events.append({"type": f"binary {event}"})
    if event == TEXT:
        (n,) = struct.unpack(">I", data[4:8])
        run.texts.append((data[8 : 8 + n].decode(), data[8 + n :].decode()))
        return
    if event == PREVIEW_IMAGE:
        (kind,) = struct.unpack(">I", data[4:8])
        assert kind == 1  # JPEG
        frame = Frame(Image.open(io.BytesIO(data[8:])), None, len(run.events))
    elif event == PREVIEW_WITH_METADATA:
        (n,) = struct.unpack(">I", data[4:8])
        meta = json.loads(data[8 : 8 + n])
        assert meta["image_type"] == "image/jpeg"
        frame = Frame(Image.open(io.BytesIO(data[8 + n :])), str(meta["node_id"]), len(run.events))
    else:
        return
    assert frame.image.format == "JPEG"
    frame.image.load()
    run.previews.append(frame)
    if on_preview is not None:
        on_preview(frame, run)


def _not_blank(image: Image.Image) -> bool:
    return float(np.asarray(image.convert("RGB"), dtype=np.float32).std()) > 2.0


def test_batch_previews_arrive_while_later_tasks_still_run(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    emu = wavespeed_emulator
    emu.next_tasks(1, inference_s=0.2)
    emu.next_tasks(3, never_finish=True)  # held until the first preview is seen
    seed = random.randrange(1, 2**30)  # the session's journal must not reuse an earlier run
    prompts = "a red fox in snow\na blue jay on a branch"
    prompt = batch_graph(prompts, 2, seed, aspect_ratio="16:9", timeout_s=60, output="PreviewImage")
    seen_first: dict[str, Any] = {}

    def first_preview_releases_the_rest(frame: Frame, run: Run) -> None:
        if seen_first:
            return
        held = [t for t in emu.history() if t.never_finish]
        seen_first["held"] = len(held)
        for task in held:
            task.inference_s, task.never_finish = 0.0, False

    run = _run(comfy_server, prompt, metadata=True, on_preview=first_preview_releases_the_rest)

    assert emu.submissions == 4
    assert seen_first["held"] == 3  # the first image was on the node while three tasks still ran
    ours = [f for f in run.previews if f.node == "1"]
    assert len(ours) == 4, [(f.node, f.image.size) for f in run.previews]
    for frame in ours:
        width, height = frame.image.size
        assert (width, height) == (464, 250)  # 1392x752 box-filtered by 3, sent as made (not enlarged)
        assert _not_blank(frame.image)
    # the status line counted the image in hand by the time its preview was out, then all four
    batch_texts = [text for node, text in run.texts if node == "1"]
    assert "1/4 done, $0.08 so far" in batch_texts, batch_texts
    assert "4/4 done, $0.32 so far" in batch_texts, batch_texts


def test_poll_result_preview_reaches_a_client_without_metadata(
    comfy_server: ComfyServer, wavespeed_emulator: Emulator
) -> None:
    seed = random.randrange(1, 2**30)
    prompt = generate_chain("", "a lighthouse in fog", seed=seed, timeout_s=60, output="PreviewImage")
    run = _run(comfy_server, prompt, metadata=False)
    assert len(run.previews) == 1 and run.previews[0].node is None  # the plain frame: no metadata
    picture = run.previews[0].image
    assert picture.size[0] == picture.size[1] <= 512 and _not_blank(picture)
    # sent as made (512 is the emulator's 1024 px halved), not enlarged by ComfyUI
    assert picture.size == (512, 512)
    # it arrived before the Poll node reported its result
    executed = [
        i
        for i, e in enumerate(run.events)
        if e.get("type") == "executed" and (e.get("data") or {}).get("node") == "s"
    ]
    assert executed and run.previews[0].index <= executed[0]
