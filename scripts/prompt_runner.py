"""Run an API prompt on a ComfyServer and collect everything it produced (websocket events, /history).

Why its own module: queueing, waiting on the websocket for this prompt's end, and reading the saved
files back is the harness's third job, apart from the server lifecycle and the format conversion.
"""

from __future__ import annotations

import json
import os
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.comfy_server import ComfyServer, ComfyServerError, interrupt
from scripts.workflow_convert import load_workflow, ui_to_api


@dataclass
class PromptResult:
    """Everything one prompt produced: status, error, outputs, saved files, websocket events, timing."""

    prompt_id: str
    status: str  # "success" | "error" | "interrupted" | "rejected" (POST /prompt refused it)
    error: dict[str, Any] | None
    outputs: dict[str, Any]
    images: list[Path]
    events: list[dict[str, Any]]
    wall_s: float
    history: dict[str, Any] = field(default_factory=dict)
    temp_images: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def events_of(self, *types: str) -> list[dict[str, Any]]:
        """Events of the given websocket message types, in arrival order."""
        return [e for e in self.events if e.get("type") in types]

    def error_line(self) -> str:
        """One human line for the failure (empty on success)."""
        if self.ok:
            return ""
        err = self.error or {}
        if self.status == "rejected":
            msg = (err.get("error") or {}).get("message") if isinstance(err.get("error"), dict) else None
            parts = [msg or "prompt rejected"]
            for nid, ne in (err.get("node_errors") or {}).items():
                for e in ne.get("errors") or []:
                    parts.append(
                        f"node {nid} ({ne.get('class_type')}): {e.get('message')}: {e.get('details')}"
                    )
            return "; ".join(str(p) for p in parts)
        where = f"node {err.get('node_id')} ({err.get('node_type')})" if err.get("node_type") else "prompt"
        if self.status == "interrupted":
            return f"interrupted at {where}"
        text = str(err.get("exception_message") or err.get("exception_type") or "failed").strip()
        return f"{where}: {text.splitlines()[0] if text else 'failed'}"


def _decode_binary(data: bytes) -> dict[str, Any]:
    """A binary websocket frame: TEXT (3) becomes a progress_text event; previews keep only their size."""
    if len(data) < 4:
        return {"type": "binary", "data": {"bytes": len(data)}}
    (event,) = struct.unpack(">I", data[:4])
    if event == 3 and len(data) >= 8:
        (nlen,) = struct.unpack(">I", data[4:8])
        node = data[8 : 8 + nlen].decode("utf-8", "replace")
        text = data[8 + nlen :].decode("utf-8", "replace")
        return {"type": "progress_text", "binary": True, "data": {"node": node, "text": text}}
    return {"type": "binary", "data": {"event": event, "bytes": len(data)}}


def run_prompt(
    server: ComfyServer,
    api_prompt: dict[str, Any],
    timeout: float = 120.0,
    *,
    interrupt_on_timeout: bool = True,
) -> PromptResult:
    """Queue an API-format prompt and wait for it over the websocket, then read /history.

    Ends on execution_success / execution_error / execution_interrupted for this prompt id; raises
    TimeoutError after `timeout` s (interrupting the prompt first) and ComfyServerError if the server
    dies. A prompt refused by validation comes back as status "rejected" with the node_errors.
    """
    import websocket  # websocket-client; imported here so the converter works without it

    t0 = time.monotonic()
    deadline = t0 + timeout
    client_id = uuid.uuid4().hex
    events: list[dict[str, Any]] = []
    ws = websocket.create_connection(f"{server.ws_url}?clientId={client_id}", timeout=10)
    try:
        status_code, body = server.post_json("/prompt", {"prompt": api_prompt, "client_id": client_id})
        if status_code != 200 or not isinstance(body, dict) or "prompt_id" not in body:
            refused: dict[str, Any] = body if isinstance(body, dict) else {"error": {"message": str(body)}}
            return PromptResult("", "rejected", refused, {}, [], events, time.monotonic() - t0)
        prompt_id = str(body["prompt_id"])
        status: str = ""
        error: dict[str, Any] | None = None
        while not status:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if interrupt_on_timeout:
                    interrupt(server, prompt_id)
                raise TimeoutError(
                    f"prompt {prompt_id} did not finish within {timeout:.0f} s; last events: "
                    f"{[e.get('type') for e in events[-8:]]}"
                )
            ws.settimeout(min(remaining, 1.0))
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                if not server.is_running():
                    raise ComfyServerError(
                        f"ComfyUI died while running a prompt:\n{server.log_tail()}"
                    ) from None
                continue
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError) as exc:
                raise ComfyServerError(
                    f"websocket closed while waiting for prompt {prompt_id}: {exc}\n{server.log_tail()}"
                ) from exc
            if opcode == websocket.ABNF.OPCODE_BINARY:
                events.append(_decode_binary(bytes(data)))
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            msg = json.loads(data)
            events.append(msg)
            mdata = msg.get("data") or {}
            if mdata.get("prompt_id") != prompt_id:
                continue
            mtype = msg.get("type")
            if mtype == "execution_success":
                status = "success"
            elif mtype == "execution_error":
                status, error = "error", mdata
            elif mtype == "execution_interrupted":
                status, error = "interrupted", mdata
    finally:
        ws.close()

    # the terminal ws event is sent before the worker stores the history entry: wait for it
    history: dict[str, Any] = {}
    history_deadline = time.monotonic() + 15.0
    while True:
        hist = server.get_json(f"/history/{prompt_id}")
        if prompt_id in hist:
            history = hist[prompt_id]
            break
        if time.monotonic() > history_deadline:
            break
        time.sleep(0.05)
    outputs: dict[str, Any] = history.get("outputs") or {}
    images: list[Path] = []
    temp_images: list[Path] = []
    for node_out in outputs.values():
        for item in node_out.get("images") or []:
            if not isinstance(item, dict) or "filename" not in item:
                continue
            root = {"output": server.output_dir, "temp": server.temp_dir}.get(item.get("type", "output"))
            if root is None:
                continue
            path = root / (item.get("subfolder") or "") / item["filename"]
            (images if item.get("type", "output") == "output" else temp_images).append(path)
    return PromptResult(
        prompt_id, status, error, outputs, images, events, time.monotonic() - t0, history, temp_images
    )


def run_workflow_file(
    server: ComfyServer, path: str | os.PathLike[str], timeout: float = 120.0
) -> PromptResult:
    """Load a UI-format workflow file, convert it with the server's /object_info, and run it."""
    api = ui_to_api(load_workflow(path), server.object_info())
    return run_prompt(server, api, timeout=timeout)
