"""The typed v3 replies: the envelope, and the ``data`` it carries (a task, a history item, an
upload, the balance), each read totally from a value :func:`.replies.load_json` returned.

Garbage in an optional field is dropped, never raised; a reader raises ValueError (only) when
the reply is not the thing asked for, so the caller's retry rule (replies.interpret) decides.
This module imports nothing heavy: the node classes import Prediction at ComfyUI start-up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..core import errors as E
from ..core.vocabulary import FAILED_STATUSES, TaskStatus, is_request_id

SYNC_TIMEOUT_CODE = 5004
MODERATION_CODE = 1200  # a Kontext moderation refusal: "potentially sensitive" (WAVESPEED_API.md 12.4)


def clean_text(value: str, limit: int) -> str:
    """A server string made safe to print and log: lone surrogates replaced, length capped."""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def server_message(envelope: Envelope | None, status: int, content_type: str) -> str:
    """The human part of an error reply: its message/error/detail string, else a short summary."""
    if envelope is not None:
        return error_text(envelope) or f"HTTP {status}"
    return f"HTTP {status} with a non-JSON reply ({content_type.split(';')[0] or 'unknown type'})"


@dataclass(frozen=True)
class Envelope:
    """The v3 reply envelope (``{"code", "message", "data"}``), read once; every field total."""

    code: int  # 200 when absent or not a whole number
    message: str  # the message/error/detail string, cleaned and capped; "" when there is none
    data: Any  # handed to the caller's reader, which parses it into its typed reply
    task_id: str | None  # ``data.id`` when it is a valid task id (a submit was accepted)
    error_code: str = ""  # a non-2xx body's ``error_code`` (WAVESPEED_API.md 12.4), as text

    @classmethod
    def parse(cls, body: object) -> Envelope | None:
        """None unless ``body`` (already through :func:`.replies.load_json`) is a JSON object."""
        if not isinstance(body, dict):
            return None
        code = body.get("code", 200)
        message = next(
            (v for k in ("message", "error", "detail") if isinstance(v := body.get(k), str) and v), ""
        )
        data = body.get("data")
        task_id = data.get("id") if isinstance(data, dict) else None
        error_code = body.get("error_code")
        return cls(
            code=code if isinstance(code, int) and not isinstance(code, bool) else 200,
            message=clean_text(message, 300),
            data=data,
            task_id=task_id if is_request_id(task_id) else None,
            error_code=clean_text(str(error_code), 40)
            if isinstance(error_code, (str, int)) and not isinstance(error_code, bool) and error_code != ""
            else "",
        )


def error_text(envelope: Envelope) -> str:
    """An error reply's text: its message, then ``data.error`` where it says more (the Java
    spec's ``{code, message, data: {error}}``), then ``error_code`` where it is not the status."""
    text = envelope.message
    data = envelope.data
    detail = data.get("error") if isinstance(data, dict) and "id" not in data else None
    if isinstance(detail, str) and detail.strip():
        detail = clean_text(detail, 300)
        text = (
            detail
            if not text or text.lower() in detail.lower()
            else (text if detail.lower() in text.lower() else f"{text}: {detail}")
        )
    if envelope.error_code and envelope.error_code != str(envelope.code) and envelope.error_code not in text:
        text = f"{text} (error_code {envelope.error_code})" if text else f"error_code {envelope.error_code}"
    return text


_STATUS_RE = re.compile(r"[A-Za-z_ -]{1,32}")


def _status(value: str) -> str:
    """A documented status as its TaskStatus member; any other spelling kept as the server sent it."""
    try:
        return TaskStatus(value)
    except ValueError:
        return value


def _text(value: object, limit: int) -> str:
    """A reply string made printable (lone surrogates replaced, capped); anything else is absent."""
    return clean_text(value, limit) if isinstance(value, str) else ""


def _milliseconds(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not (math.isfinite(value) and 0 <= value < 1e12):
        return None
    return int(value)


@dataclass(frozen=True)
class Prediction:
    """A task as the server reports it (the ``data`` object of the v3 envelope)."""

    id: str
    status: str
    model: str = ""
    outputs: tuple[str, ...] = ()
    has_nsfw_contents: tuple[bool, ...] = ()
    error: str = ""
    code: int | None = None
    inference_ms: int | None = None
    created_at: str = ""

    @classmethod
    def from_data(cls, data: object, *, lenient: bool = False) -> Prediction:
        """Parse the envelope's ``data`` (already through :func:`.replies.load_json`), totally.

        Garbage in optional fields is dropped; a documented status becomes its TaskStatus member.

        Args:
            data: the ``data`` object of a v3 reply, or one history item.
            lenient: a submit reply: only a valid task id is required, because once the server
                named a task it is paid for and that id must reach the caller. Strict (a result
                poll): a missing status, or a completed task without a list of output strings, is
                malformed (the poll is retried).
        Returns:
            The task as the server reports it.
        Raises:
            ValueError: (only) the reply is not a task.
        """
        if not isinstance(data, dict):
            raise ValueError("reply has no 'data' object")
        pid = data.get("id")
        if not is_request_id(pid):
            raise ValueError("reply has no valid task id")
        assert isinstance(pid, str)
        status = data.get("status")
        if isinstance(status, str) and _STATUS_RE.fullmatch(status):
            status = _status(status.lower())
        elif lenient:
            status = TaskStatus.CREATED  # the task exists; polling will tell how it is doing
        else:
            raise ValueError("reply has no task status")
        outputs = data.get("outputs")
        if isinstance(outputs, list) and all(isinstance(o, str) for o in outputs):
            kept: tuple[str, ...] = tuple(outputs)
        elif outputs in (None, []) or lenient or status != TaskStatus.COMPLETED:
            kept = ()
        else:
            raise ValueError("reply 'outputs' is not a list of strings")
        nsfw = data.get("has_nsfw_contents")
        flags = tuple(bool(x) for x in nsfw if isinstance(x, (bool, int))) if isinstance(nsfw, list) else ()
        timings = data.get("timings")
        inference = timings.get("inference") if isinstance(timings, dict) else None
        code = data.get("code")
        return cls(
            id=pid,
            status=status,
            model=_text(data.get("model"), 200),
            outputs=kept,
            has_nsfw_contents=flags,
            error=_text(data.get("error"), 2000),
            code=code if isinstance(code, int) and not isinstance(code, bool) and abs(code) < 2**31 else None,
            inference_ms=_milliseconds(inference),
            created_at=_text(data.get("created_at"), 64),
        )

    @property
    def is_completed(self) -> bool:
        return self.status == TaskStatus.COMPLETED

    @property
    def is_failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.is_completed or self.is_failed

    @property
    def sync_timed_out(self) -> bool:
        """Sync mode gave up server-side (code 5004); the task goes on and must be polled."""
        return not self.is_terminal and (
            self.code == SYNC_TIMEOUT_CODE or "sync mode timed out" in self.error.lower()
        )

    @property
    def any_nsfw(self) -> bool:
        return any(self.has_nsfw_contents)

    @property
    def output_urls(self) -> tuple[str, ...]:
        """The outputs that are URLs (a sync-mode base64 output is none): what can be opened again."""
        return tuple(o for o in self.outputs if o.startswith(("http://", "https://")))

    @property
    def refused_by_moderation(self) -> bool:
        """Code 1200, or a failure whose text says "potentially sensitive" (the code may be absent)."""
        return self.is_failed and (
            self.code == MODERATION_CODE or "potentially sensitive" in self.error.lower()
        )

    def failure(self) -> E.TaskFailedError:
        """The one line a task that ended without outputs raises: a moderation refusal, a task
        cancelled, timed out or deleted on the server, or failed with the server's reason."""
        why = (self.error or "no reason given").strip()
        reason = why if why.endswith((".", "!", "?")) else f"{why}."
        code = f" (code {self.code})" if self.code else ""
        if self.refused_by_moderation:
            return E.ModerationRefusedError(
                "WaveSpeed's safety check refused this prompt or image: change it and run again "
                "(WaveSpeed refunds a failed task within 3 hours).",
                request_id=self.id,
                code=self.code or MODERATION_CODE,
            )
        cancelled = (
            f"WaveSpeed cancelled this task on its side{code}: {reason} Run it again to make a new one."
        )
        lines = {
            TaskStatus.CANCELLED: cancelled,
            "canceled": cancelled,
            TaskStatus.TIMEOUT: f"WaveSpeed timed out on this task on its side{code}: {reason} Run it again, "
            "perhaps later.",
            TaskStatus.DELETED: "WaveSpeed deleted this task and its result: run it again to make a new one.",
        }
        text = lines.get(
            self.status,
            f"WaveSpeed could not make this image{code}: {reason} Run it again, or change what the reason "
            "names (WaveSpeed refunds a failed task within 3 hours).",
        )
        return E.TaskFailedError(text, request_id=self.id, code=self.code)


@dataclass(frozen=True)
class UploadReply:
    """The media store's answer to an upload: the URL WaveSpeed fetches the file from."""

    download_url: str

    @classmethod
    def from_data(cls, data: object) -> UploadReply:
        """Parse the envelope's ``data``; ValueError (only) unless it holds an http(s) URL."""
        url = data.get("download_url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 4096:
            raise ValueError("no download_url")
        return cls(url)


@dataclass(frozen=True)
class Balance:
    """The account balance (``GET /api/v3/balance``)."""

    usd: float

    @classmethod
    def from_data(cls, data: object) -> Balance:
        """Parse the envelope's ``data``; ValueError (only) unless it holds a number."""
        value = data.get("balance") if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("no balance number")
        return cls(float(value))


@dataclass(frozen=True)
class HistoryItem:
    """One task of a history page (or a task's ``/result``): what find_submitted matches on (the
    ``inputs`` or ``input`` echo, None when the server sends neither), and the task itself."""

    model: str
    created_at: str
    status: str
    input: dict[str, Any] | None
    prediction: Prediction | None  # None: the item is not a readable task

    @classmethod
    def from_item(cls, item: object) -> HistoryItem | None:
        """Parse one item; None for anything that is not a JSON object (never raises)."""
        if not isinstance(item, dict):
            return None
        try:
            prediction: Prediction | None = Prediction.from_data(item)
        except ValueError:
            prediction = None
        model, created, status = (item.get(k) for k in ("model", "created_at", "status"))
        # The official CLI reads ``inputs`` first, then ``input`` (WAVESPEED_API.md 12.1).
        echo = next((e for e in (item.get("inputs"), item.get("input")) if isinstance(e, dict)), None)
        return cls(
            model=model if isinstance(model, str) else "",
            created_at=created if isinstance(created, str) else "",
            status=status if isinstance(status, str) else "",
            input=echo if isinstance(echo, dict) else None,
            prediction=prediction,
        )

    @classmethod
    def task_from_data(cls, data: object) -> HistoryItem:
        """A task's ``/result`` read as a history item (its echo, if any, and the task itself);
        ValueError (only) unless it is a readable task."""
        item = cls.from_item(data)
        if item is None or item.prediction is None:
            raise ValueError("reply is not a task")
        return item

    @staticmethod
    def page_from_data(data: object) -> list[HistoryItem]:
        """The ``items`` of a history page; an odd page reads as empty (nothing to match)."""
        items = data.get("items") if isinstance(data, dict) else None
        parsed = (HistoryItem.from_item(i) for i in items) if isinstance(items, list) else ()
        return [i for i in parsed if i is not None]
