"""The FLUX.1 Kontext [max] request: model ids, field limits, prices, and the validation of a task.

Validation mirrors the model page exactly (prompt required; seed -1..2147483647; guidance_scale
1.0..20.0; nine aspect ratios) and runs before any HTTP request, so a typo never costs money.
This module imports nothing heavy: the node classes read its constants at ComfyUI start-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ValidationError
from .prompt_text import check_prompt

MODEL_TEXT_TO_IMAGE = "wavespeed-ai/flux-kontext-max/text-to-image"
MODEL_EDIT = "wavespeed-ai/flux-kontext-max"
MODEL_MULTI = "wavespeed-ai/flux-kontext-max/multi"

ASPECT_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
DEFAULT_ASPECT_RATIO = "1:1"
SEED_MIN, SEED_MAX = -1, 2_147_483_647
GUIDANCE_MIN, GUIDANCE_MAX, GUIDANCE_DEFAULT = 1.0, 20.0, 3.5
MAX_REFERENCE_IMAGES = 5

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
        check_prompt(self.prompt)
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
