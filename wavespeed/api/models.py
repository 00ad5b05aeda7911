"""The FLUX.1 Kontext [max] API contract in code: request validation and the prediction reply.

Validation mirrors the model page exactly (prompt required; seed -1..2147483647; guidance_scale
1.0..20.0; nine aspect ratios) and runs before any HTTP request, so a typo never costs money.
This module imports nothing heavy: the node classes read its constants at ComfyUI start-up.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..core import errors as E
from ..core.errors import ValidationError
from ..core.vocabulary import FAILED_STATUSES, TaskStatus, is_request_id
from .replies import clean_text

MODEL_TEXT_TO_IMAGE = "wavespeed-ai/flux-kontext-max/text-to-image"
MODEL_EDIT = "wavespeed-ai/flux-kontext-max"
MODEL_MULTI = "wavespeed-ai/flux-kontext-max/multi"

ASPECT_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
DEFAULT_ASPECT_RATIO = "1:1"
SEED_MIN, SEED_MAX = -1, 2_147_483_647
GUIDANCE_MIN, GUIDANCE_MAX, GUIDANCE_DEFAULT = 1.0, 20.0, 3.5
MAX_REFERENCE_IMAGES = 5
MAX_PROMPT_CHARS = 10_000

# One price table, in USD per output image, as listed on wavespeed.ai model pages.
PRICES_READ_ON = "2026-11-25 (from the model pages summarised in shared/docs/WAVESPEED_API.md)"
PRICE_PER_IMAGE_USD: dict[str, float] = {
    MODEL_TEXT_TO_IMAGE: 0.08,
    MODEL_EDIT: 0.08,
    MODEL_MULTI: 0.08,
}

SYNC_TIMEOUT_CODE = 5004
MODERATION_CODE = 1200  # a Kontext moderation refusal: "potentially sensitive" (WAVESPEED_API.md 12.4)


def price_of(model: str, images: int = 1) -> float:
    return round(PRICE_PER_IMAGE_USD.get(model, 0.0) * images, 4)


@dataclass(frozen=True)
class KontextRequest:
    """One Kontext [max] task: text-to-image, single-image edit or multi-reference."""

    prompt: str
    model: str = MODEL_TEXT_TO_IMAGE
    seed: int = -1
    guidance_scale: float = GUIDANCE_DEFAULT
    aspect_ratio: str | None = DEFAULT_ASPECT_RATIO
    enable_sync_mode: bool = False
    image: str | None = None
    images: tuple[str, ...] = field(default_factory=tuple)

    def validate(self, *, api_base: str | None = None) -> KontextRequest:
        """Check every field before any request, so a typo never costs money.

        Args:
            api_base: the API base URL the request goes to (default: the configured one); image
                URLs on its own origin pass even when it is local (the emulator serves its own files).
        Returns:
            self, so calls chain (``client.submit`` calls it for you).
        Raises:
            ValidationError: (an InvalidRequestError) naming the first bad field and its fix.
        """
        _check_prompt(self.prompt)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValidationError(
                f"seed must be a whole number, got {type(self.seed).__name__}: use -1 (random) or 0..{SEED_MAX}."
            )
        if not SEED_MIN <= self.seed <= SEED_MAX:
            raise ValidationError(f"seed {self.seed!r} is out of range: use -1 (random) or 0..{SEED_MAX}.")
        g = self.guidance_scale
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g):
            raise ValidationError(
                f"guidance_scale {g!r} is not a number: use {GUIDANCE_MIN}..{GUIDANCE_MAX}."
            )
        if not GUIDANCE_MIN <= g <= GUIDANCE_MAX:
            raise ValidationError(
                f"guidance_scale {g} is out of range: use {GUIDANCE_MIN}..{GUIDANCE_MAX} (default 3.5)."
            )
        if self.aspect_ratio is not None and self.aspect_ratio not in ASPECT_RATIOS:
            raise ValidationError(
                f"aspect_ratio {self.aspect_ratio!r} is not supported: use one of {', '.join(ASPECT_RATIOS)}."
            )
        if not isinstance(self.enable_sync_mode, bool):
            raise ValidationError("enable_sync_mode must be true or false.")
        self._validate_images(api_base)
        return self

    def _validate_images(self, api_base: str | None) -> None:
        if self.model == MODEL_EDIT:
            if not self.image or not isinstance(self.image, str):
                raise ValidationError("image is missing: connect an IMAGE or give an image URL to edit.")
            _check_image_ref(self.image, "image", api_base)
        elif self.model == MODEL_MULTI:
            if isinstance(self.images, str) or not isinstance(self.images, (tuple, list)):
                raise ValidationError(
                    f"images must be a list of URLs, got {type(self.images).__name__}: pass a tuple of strings."
                )
            if not self.images:
                raise ValidationError("images is empty: connect 1 to 5 reference images.")
            if len(self.images) > MAX_REFERENCE_IMAGES:
                raise ValidationError(
                    f"{len(self.images)} reference images given; the API takes at most {MAX_REFERENCE_IMAGES}."
                )
            for i, ref in enumerate(self.images, 1):
                _check_image_ref(ref, f"reference image {i}", api_base)
        elif self.model != MODEL_TEXT_TO_IMAGE:
            raise ValidationError(f"unknown model {self.model!r}.")

    def payload(self) -> dict[str, Any]:
        """The JSON body the API expects. seed -1 is omitted so the server picks a random seed."""
        body: dict[str, Any] = {"prompt": self.prompt, "guidance_scale": float(self.guidance_scale)}
        if self.seed != -1:
            body["seed"] = self.seed
        if self.aspect_ratio is not None:
            body["aspect_ratio"] = self.aspect_ratio
        if self.model == MODEL_EDIT:
            body["image"] = self.image
        if self.model == MODEL_MULTI:
            body["images"] = list(self.images)
        body["enable_sync_mode"] = self.enable_sync_mode
        return body

    @property
    def price_usd(self) -> float:
        return price_of(self.model, 1)


def _check_image_ref(ref: str, what: str, api_base: str | None) -> None:
    """An http(s) URL WaveSpeed can fetch (see settings/reference_urls.py) or a ``data:image/`` URI."""
    from ..settings.reference_urls import FROM_ENV, check_image_url

    if not isinstance(ref, str):
        raise ValidationError(f"{what} must be a URL string, got {type(ref).__name__}.")
    if ref.startswith("data:image/"):
        return
    check_image_url(ref, what, api_base=FROM_ENV if api_base is None else api_base)


# Invisible, but not in the categories below: Hangul fillers (Lo) and the blank braille pattern (So).
_INVISIBLE_EXTRA = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Control, format, surrogate, unassigned, separators and combining marks: nothing a model can read.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp", "Mn", "Mc", "Me"})


# Bidirectional embeddings, overrides and isolates: they reorder how the text is SHOWN, so the
# prompt on screen is not the prompt sent ("Trojan Source", CVE-2021-42574). The marks LRM, RLM
# and ALM only nudge one character's direction and are normal in right-to-left writing: allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_CONTROL_NAMES = {
    0x00: "NUL",
    0x0B: "VT",
    0x0C: "FF",
    0x0D: "CR",
    0x1B: "ESC",
    0x7F: "DEL",
    0x85: "NEL",
    0x9B: "CSI",
}


def _refused_control(prompt: str) -> tuple[int, str] | None:
    """The first character a prompt may not hold, and its index: a C0 control other than tab and
    line feed (a CR is allowed just before a LF: a Windows line ending), DEL, a C1 control (ANSI
    escapes start with ESC or CSI), or a bidirectional control."""
    for index, char in enumerate(prompt):
        code = ord(char)
        if char in "\t\n" or (char == "\r" and prompt[index + 1 : index + 2] == "\n"):
            continue
        if code < 0x20 or 0x7F <= code <= 0x9F or char in _BIDI_CONTROLS:
            return index, char
    return None


def _visible(char: str) -> bool:
    return char not in _INVISIBLE_EXTRA and unicodedata.category(char) not in _INVISIBLE_CATEGORIES


def _check_prompt(prompt: object) -> None:
    """Refuse a prompt the API would bill for but could not use: not text, not valid Unicode
    (a lone surrogate cannot be sent as UTF-8), a control character (NUL, an ANSI escape, a
    bidirectional override: see ``_refused_control``), or nothing visible in it (zero-width
    spaces, word joiners, BOMs, bare combining marks: a blank prompt in disguise)."""
    if not isinstance(prompt, str):
        raise ValidationError(f"prompt must be text, got {type(prompt).__name__}: connect a STRING.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"prompt is {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}.")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(prompt[exc.start])
        raise ValidationError(
            f"prompt has a broken character (unpaired surrogate U+{bad:04X} at position {exc.start + 1}), "
            "usually from a bad copy-paste: retype that part of the prompt."
        ) from None
    if not any(_visible(c) for c in prompt):
        if not prompt.strip():
            raise ValidationError("prompt is empty: describe the image you want (the API requires a prompt).")
        first = next(c for c in prompt if not c.isspace())
        name = unicodedata.name(first, "unnamed")
        raise ValidationError(
            f"prompt is empty: it holds only invisible characters (such as U+{ord(first):04X} {name}); "
            "describe the image you want (the API requires a prompt)."
        )
    refused = _refused_control(prompt)
    if refused is not None:
        index, char = refused
        code = ord(char)
        label = _CONTROL_NAMES.get(code) or unicodedata.name(char, "a control character")
        if char in _BIDI_CONTROLS:
            why = "a bidirectional control: the text shown would not be the text sent"
        elif code in (0x1B, 0x9B):
            why = "the start of an ANSI escape sequence, as pasted from a terminal"
        else:
            why = "a control character; only line breaks and tabs are allowed"
        raise ValidationError(
            f"prompt has U+{code:04X} {label} at position {index + 1} ({why}): remove it and queue again."
        )


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
    def refused_by_moderation(self) -> bool:
        """Code 1200, or a failure whose text says "potentially sensitive" (the code may be absent)."""
        return self.is_failed and (
            self.code == MODERATION_CODE or "potentially sensitive" in self.error.lower()
        )

    def failure(self) -> E.TaskFailedError:
        """The one line a task that ended without outputs raises: a moderation refusal, a task
        cancelled, timed out or deleted on the server, or failed with the server's reason."""
        why = self.error or "no reason given"
        code = f" (code {self.code})" if self.code else ""
        if self.refused_by_moderation:
            return E.ModerationRefusedError(
                f"WaveSpeed's moderation refused task {self.id} as potentially sensitive ({why}, code "
                f"{self.code or MODERATION_CODE}): change the prompt or input image; queuing the same "
                "input again is refused again.",
                request_id=self.id,
                code=self.code or MODERATION_CODE,
            )
        lines = {
            TaskStatus.CANCELLED: f"WaveSpeed task {self.id} was cancelled on the server ({why}){code}: "
            "queue it again to make a new one.",
            "canceled": f"WaveSpeed task {self.id} was cancelled on the server ({why}){code}: "
            "queue it again to make a new one.",
            TaskStatus.TIMEOUT: f"WaveSpeed task {self.id} timed out on the server ({why}){code}: "
            "queue it again, perhaps later.",
            TaskStatus.DELETED: f"WaveSpeed task {self.id} was deleted on the server and its result is "
            "gone: queue it again to make a new one.",
        }
        text = lines.get(self.status, f"WaveSpeed task {self.id} {self.status}: {why}{code}")
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
