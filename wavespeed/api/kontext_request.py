"""The FLUX.1 Kontext [max] request: model ids, field limits, prices, and the validation of a task.

Validation mirrors the model page exactly (prompt required; seed -1..2147483647; guidance_scale
1.0..20.0; nine aspect ratios) and runs before any HTTP request, so a typo never costs money.
This module imports nothing heavy: the node classes read its constants at ComfyUI start-up.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ValidationError
from .prompt_text import LINE_BREAK_CHARS

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


# WaveSpeed's published polling pace for image tasks (docs, "Get Result" -> "Task Result Polling
# Frequency"; WAVESPEED_API.md 13.1): at least this long between two checks of one task id.
CHECK_GAP_S = 2.0


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
    the line breaks every node reads as such (prompt_text.LINE_BREAK: LF, CR, CRLF, VT, FF, ...),
    DEL, a C1 control other than NEL (ANSI escapes start with ESC or CSI), or a bidirectional
    control."""
    for index, char in enumerate(prompt):
        code = ord(char)
        if char == "\t" or char in LINE_BREAK_CHARS:
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
