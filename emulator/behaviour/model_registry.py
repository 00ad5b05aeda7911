"""Model registry and request validation: the API contract the emulator enforces.

Validation is synchronous (HTTP 400 naming the field), which WAVESPEED_API.md section 10 recommends;
whether the live API rejects at submit time or fails the task later is an open question there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .imagegen import KONTEXT_SIZES

ModelKind = Literal["t2i", "edit", "multi"]

ASPECT_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")
SEED_MAX = 2147483647
SCHEMA_COMMON = frozenset(
    {
        "prompt",
        "seed",
        "guidance_scale",
        "aspect_ratio",
        "enable_sync_mode",
        "enable_base64_output",
        "num_images",
        "safety_tolerance",
        "enable_safety_checker",
    }
)
MAX_NUM_IMAGES = 4

assert set(ASPECT_RATIOS) == set(KONTEXT_SIZES)


@dataclass(frozen=True)
class ModelSpec:
    """One submittable model: what image inputs it takes and what it costs per output image."""

    model_id: str
    kind: ModelKind
    price: float
    guidance_max: float = 20.0
    max_images: int = 5

    @property
    def schema(self) -> frozenset[str]:
        """The body keys the model knows; the server drops any other key silently (and echoes the
        rest re-encoded: routes/echo.py) [CLI src/lib/validate-inputs.ts, WAVESPEED_API.md 12.2]."""
        extra = {"edit": {"image"}, "multi": {"images"}, "t2i": set()}[self.kind]
        return SCHEMA_COMMON | frozenset(extra)


MODELS: dict[str, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        ModelSpec("wavespeed-ai/flux-kontext-max/text-to-image", "t2i", 0.08),
        ModelSpec("wavespeed-ai/flux-kontext-max", "edit", 0.08),
        ModelSpec("wavespeed-ai/flux-kontext-max/multi", "multi", 0.08),
        # The Pro text-to-image page gives no guidance range: the server's is assumed 1.0 ~ 20.0 here
        # (the pack itself refuses over 10 before sending; wavespeed/api/models.py says why).
        ModelSpec("wavespeed-ai/flux-kontext-pro/text-to-image", "t2i", 0.04),
        # The Pro edit docs table gives guidance_scale 1.0 ~ 10.0; its price is inferred.
        ModelSpec("wavespeed-ai/flux-kontext-pro", "edit", 0.04, guidance_max=10.0),
        ModelSpec("wavespeed-ai/flux-kontext-pro/multi", "multi", 0.04),
    )
}


class ValidationError(ValueError):
    """A request field is missing or out of range; the message names the field."""


@dataclass
class ParsedRequest:
    """The validated, normalised fields of a submit body (the raw body is kept separately)."""

    prompt: str
    seed: int | None
    guidance_scale: float
    aspect_ratio: str | None
    sync: bool
    num_images: int
    base64_output: bool
    safety_tolerance: str
    images: list[str] = field(default_factory=list)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _optional_bool(body: dict[str, object], name: str) -> bool:
    v = body.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ValidationError(f"{name} must be a boolean (true or false)")
    return v


def validate_request(spec: ModelSpec, body: object) -> ParsedRequest:
    """Check a submit body against the model's schema; keys outside it are ignored (never a 400)."""
    if not isinstance(body, dict):
        raise ValidationError("request body must be a JSON object")

    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValidationError("prompt is required and must be a non-empty string")

    seed_v = body.get("seed")
    seed: int | None = None
    if seed_v is not None:
        if not _is_int(seed_v) or not isinstance(seed_v, int) or not -1 <= seed_v <= SEED_MAX:
            raise ValidationError(f"seed must be an integer between -1 and {SEED_MAX}")
        seed = seed_v

    gs_v = body.get("guidance_scale")
    guidance = 3.5
    if gs_v is not None:
        if not _is_number(gs_v) or not isinstance(gs_v, (int, float)) or not 1.0 <= gs_v <= spec.guidance_max:
            raise ValidationError(f"guidance_scale must be a number between 1.0 and {spec.guidance_max:.1f}")
        guidance = float(gs_v)

    ar_v = body.get("aspect_ratio")
    aspect_ratio: str | None
    if ar_v is None:
        aspect_ratio = "1:1" if spec.kind == "t2i" else None
    elif isinstance(ar_v, str) and ar_v in ASPECT_RATIOS:
        aspect_ratio = ar_v
    else:
        raise ValidationError(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")

    sync = _optional_bool(body, "enable_sync_mode")
    base64_output = _optional_bool(body, "enable_base64_output")

    n_v = body.get("num_images")
    num_images = 1
    if n_v is not None:
        if not _is_int(n_v) or not isinstance(n_v, int) or not 1 <= n_v <= MAX_NUM_IMAGES:
            raise ValidationError(f"num_images must be an integer between 1 and {MAX_NUM_IMAGES}")
        num_images = n_v

    st_v = body.get("safety_tolerance", "2")
    if st_v is None:
        st_v = "2"
    if _is_int(st_v):
        st_v = str(st_v)
    if not isinstance(st_v, str) or st_v not in ("1", "2", "3", "4", "5"):
        raise ValidationError('safety_tolerance must be one of "1", "2", "3", "4", "5"')

    images: list[str] = []
    if spec.kind == "edit":
        img = body.get("image")
        if not isinstance(img, str) or not img.strip():
            raise ValidationError("image is required and must be a non-empty string (an image URL)")
        images = [img]
    elif spec.kind == "multi":
        imgs = body.get("images")
        if (
            not isinstance(imgs, list)
            or not 1 <= len(imgs) <= spec.max_images
            or not all(isinstance(i, str) and i.strip() for i in imgs)
        ):
            raise ValidationError(
                f"images is required and must be an array of 1 to {spec.max_images} non-empty URL strings"
            )
        images = [str(i) for i in imgs]

    return ParsedRequest(
        prompt=prompt,
        seed=seed,
        guidance_scale=guidance,
        aspect_ratio=aspect_ratio,
        sync=sync,
        num_images=num_images,
        base64_output=base64_output,
        safety_tolerance=st_v,
        images=images,
    )
