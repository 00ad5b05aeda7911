"""Prediction tasks: their clock-driven lifecycle and the JSON object the API returns for them.

No background worker advances a task: its status is a pure function of the monotonic clock
(created for queue_s, processing for inference_s, then terminal), so tests are deterministic
and a stopped emulator leaves nothing running.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_to_bytes

from .imagegen import (
    OUTPUT_FORMATS,
    RGB,
    decode_image,
    encode_image,
    render_edit,
    render_text_to_image,
    size_for_aspect_ratio,
)
from .model_registry import ModelKind, ParsedRequest

MEDIA_FAILED_CODE = 1402
MEDIA_FAILED_MESSAGE = "Failed to download image from the provided URL."
# A Kontext [max] moderation refusal: the task fails with code 1200 and a message that says
# "potentially sensitive" (WAVESPEED_API.md 12.4, from a third-party live pipeline; exact text inferred).
MODERATION_CODE = 1200
MODERATION_MESSAGE = (
    "Your request was flagged as potentially sensitive content and was not processed; "
    "change the prompt or image and try again."
)
# Terminal statuses besides completed/failed (WAVESPEED_API.md 12.3): what a task says then.
END_STATUSES: dict[str, tuple[int | None, str]] = {
    "cancelled": (None, "The prediction was cancelled."),
    "timeout": (5004, "The prediction timed out."),
    "deleted": (None, "The prediction was deleted."),
}


def rfc3339_ns(ns: int) -> str:
    """Format a time.time_ns() value with all nine digits: 2025-05-19T06:09:15.948268264Z (the
    docs' example; the ``created_at_digits`` switch keeps it, echo.go_time is the default)."""
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


@dataclass
class Task:
    """One accepted submission, with everything needed to answer polls about it."""

    id: str
    model: str
    kind: ModelKind
    input: dict[str, Any]
    request: ParsedRequest
    seed: int
    created_at: str
    submitted_mono: float
    queue_s: float
    inference_s: float
    output_format: str
    base_url: str
    fail: str | None = None
    fail_code: int = 1403
    never_finish: bool = False
    nsfw: bool = False
    end_status: str | None = None  # "cancelled" / "timeout" / "deleted": the task ends so (END_STATUSES)
    deleted_at: float | None = None  # monotonic time it was deleted (POST predictions/delete)
    keep_input_size: bool = False  # an edit without aspect_ratio keeps the input's size (kinder)
    created_ns: int = 0  # time.time_ns() at submit: what created_after / created_before compare
    # Filled in once by render(): output URLs or bare base64 strings, or the reason it failed.
    outputs: list[str] = field(default_factory=list)
    failure: tuple[int, str] | None = None
    rendered: bool = False
    render_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def urls_get(self) -> str:
        return f"{self.base_url}/api/v3/predictions/{self.id}/result"

    @property
    def terminal_at(self) -> float | None:
        """Monotonic time at which the task becomes completed/failed (None: never)."""
        if self.never_finish:
            return None
        return self.submitted_mono + self.queue_s + self.inference_s

    def is_due(self, now: float) -> bool:
        t = self.terminal_at
        return t is not None and now >= t

    def phase(self, now: float) -> str:
        """created / processing / terminal, from the clock alone."""
        if now < self.submitted_mono + self.queue_s:
            return "created"
        if not self.is_due(now):
            return "processing"
        return "terminal"

    def output_path(self, i: int) -> str:
        return f"/cdn/output/{self.id}-{i}.{self.output_format}"


def decode_data_uri(uri: str) -> bytes | None:
    """Bytes of a data:image/...;base64, URI (None if it is not one or is not valid base64)."""
    if not uri.startswith("data:"):
        return None
    header, sep, payload = uri.partition(",")
    if not sep or not header[5:].lower().startswith("image/"):
        return None
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except ValueError:
            return None
    return unquote_to_bytes(payload)


def render_images(task: Task, fetch: Callable[[str], bytes | None]) -> list[RGB]:
    """Produce the task's output pixels; raises LookupError if an input image cannot be used."""
    req = task.request
    if task.kind == "t2i":
        w, h = size_for_aspect_ratio(req.aspect_ratio or "1:1")
        return [render_text_to_image(req.prompt, task.seed + i, w, h) for i in range(req.num_images)]
    refs: list[RGB] = []
    for url in req.images:
        data = fetch(url)
        if data is None:
            raise LookupError(url)
        try:
            refs.append(decode_image(data))
        except Exception as exc:  # undecodable bytes count as a failed download, as on the API
            raise LookupError(url) from exc
    edited = render_edit(refs, req.aspect_ratio, keep_input_size=task.keep_input_size)
    return [edited] * req.num_images


def render(
    task: Task, fetch: Callable[[str], bytes | None], store: Callable[[str, bytes, str], None]
) -> None:
    """Render outputs once (idempotent, thread-safe); encoded files go to store(path, data, mime)."""
    with task.render_lock:
        if task.rendered:
            return
        try:
            if task.fail is not None:
                task.failure = (task.fail_code, task.fail)
                return
            if task.end_status is not None:
                return
            try:
                images = render_images(task, fetch)
            except LookupError:
                task.failure = (MEDIA_FAILED_CODE, MEDIA_FAILED_MESSAGE)
                return
            mime = OUTPUT_FORMATS[task.output_format][1]
            outputs: list[str] = []
            for i, arr in enumerate(images):
                data = encode_image(arr, task.output_format)
                if task.request.base64_output:
                    outputs.append(base64.b64encode(data).decode("ascii"))
                else:
                    path = task.output_path(i)
                    store(path, data, mime)
                    outputs.append(f"{task.base_url}{path}")
            task.outputs = outputs
        finally:
            task.rendered = True


def prediction_object(task: Task, now: float, *, force_status: str | None = None) -> dict[str, Any]:
    """The `data` object for a task as seen at monotonic time `now` (render first if it is due)."""
    deleted = task.deleted_at is not None and now >= task.deleted_at
    phase = force_status or ("deleted" if deleted else task.phase(now))
    obj: dict[str, Any] = {
        "id": task.id,
        "model": task.model,
        "outputs": [],
        "urls": {"get": task.urls_get},
        "has_nsfw_contents": [],
        "status": phase,
        "created_at": task.created_at,
        "error": "",
        "timings": {"inference": 0},
    }
    if phase == "deleted":
        obj.update(error=END_STATUSES["deleted"][1])
        return obj
    if phase != "terminal":
        return obj
    ms = int(round(task.inference_s * 1000))
    if task.end_status is not None:
        end_code, text = END_STATUSES[task.end_status]
        obj.update(status=task.end_status, error=text, executionTime=ms)
        if end_code is not None:
            obj["code"] = end_code
        return obj
    if task.failure is not None:
        code, message = task.failure
        obj.update(status="failed", code=code, error=message, executionTime=ms)
        return obj
    obj.update(
        status="completed",
        outputs=list(task.outputs),
        has_nsfw_contents=[task.nsfw] * len(task.outputs),
        timings={"inference": ms},
        executionTime=ms,
    )
    return obj


def sync_timeout_object(task: Task, timeout_s: float) -> dict[str, Any]:
    """The data object the API sends when sync mode gives up waiting (task keeps running)."""
    obj = prediction_object(task, time.monotonic(), force_status="processing")
    obj["code"] = 5004
    obj["error"] = (
        f"Sync mode timed out after {timeout_s:g} seconds. The prediction is still processing asynchronously."
    )
    return obj
