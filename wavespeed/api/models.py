"""The models as data: one row per FLUX.1 Kontext model the pack can call, the only place in the pack
where a model id or a price is written.

A row is a model's id (the path of its POST), its family ([max] or [pro]), its kind (text-to-image,
edit, multi-reference), its price per output image, the ranges it narrows (guidance) and how many
reference images it takes. The body keys it accepts are the rows of body_params.py its kind takes,
plus the keys WaveSpeed's schema knows that the pack never sends. The request, its check and its
payload, the journal's price, the session budget, Batch's total, the history match and the price
badge all read these rows: a new model is one row here (and its tests).

Decisions, and why (WAVESPEED_API.md sections 2, 3 and 12.8):

* [max]: $0.08 per image and guidance 1.0-20.0 on all three kinds. It stays the default family, so
  saved workflows and journaled tasks keep their model.
* [pro]: $0.04 per image. Guidance 1.0-10.0 on edit (its page's table), 1.0-20.0 on multi (its page).
  For [pro] text-to-image the page lists guidance_scale with no range; we take 1.0-10.0, the one range
  WaveSpeed documents for a single-prompt [pro] model: a value refused here costs a retype, one sent
  outside the server's range costs a failed (perhaps billed) task. The [pro] edit price is inferred
  ($0.04, like its siblings; its page gives none).
* A key the schema knows but the pack never sends (``SERVER_ONLY_KEYS``) still counts in the history
  match: an echo holding one is not the task we sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..core.errors import ValidationError
from .body_params import GUIDANCE_SCALE, Kind, Param, params_of

PRICES_READ_ON = "2026-11-25 (from the model pages summarised in shared/docs/WAVESPEED_API.md)"
#: The families a node can offer, by name; [max] is every node's default.
FAMILIES: Mapping[str, str] = MappingProxyType({"max": "FLUX.1 Kontext [max]", "pro": "FLUX.1 Kontext [pro]"})
DEFAULT_FAMILY = "max"
#: The widget that chooses a node's family, by its label (the price badge follows it).
FAMILY_INPUT = "model"
KIND_NAMES: Mapping[Kind, str] = MappingProxyType({"t2i": "text-to-image", "edit": "edit", "multi": "multi"})
#: Body keys a Kontext model's schema knows that the pack never sends (WAVESPEED_API.md 3.1, 3.5).
SERVER_ONLY_KEYS = frozenset(
    {"enable_base64_output", "num_images", "safety_tolerance", "enable_safety_checker"}
)


@dataclass(frozen=True)
class Model:
    """One submittable model: what it takes, what it costs per output image."""

    id: str
    family: str
    kind: Kind
    price_usd: float
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # by body key
    max_images: int = 0  # reference images it takes

    @property
    def label(self) -> str:
        """E.g. ``FLUX.1 Kontext [pro] edit``: how a refusal names the model."""
        return f"{FAMILIES[self.family]} {KIND_NAMES[self.kind]}"

    @property
    def params(self) -> tuple[Param, ...]:
        return params_of(self.kind)

    @property
    def references(self) -> Param | None:
        """The row carrying its reference image(s), None for text-to-image."""
        return next((p for p in self.params if p.references), None)

    @property
    def body_keys(self) -> frozenset[str]:
        """Every key its schema knows: the server drops any other key silently."""
        return frozenset(p.key for p in self.params) | SERVER_ONLY_KEYS

    def bounds(self, param: Param) -> tuple[float, float] | None:
        return self.ranges.get(param.key, param.bounds)


def _guidance(low: float, high: float) -> Mapping[str, tuple[float, float]]:
    return MappingProxyType({GUIDANCE_SCALE.key: (low, high)})


MODELS: tuple[Model, ...] = (
    Model("wavespeed-ai/flux-kontext-max/text-to-image", "max", "t2i", 0.08, _guidance(1.0, 20.0)),
    Model("wavespeed-ai/flux-kontext-max", "max", "edit", 0.08, _guidance(1.0, 20.0), max_images=1),
    Model("wavespeed-ai/flux-kontext-max/multi", "max", "multi", 0.08, _guidance(1.0, 20.0), max_images=5),
    Model("wavespeed-ai/flux-kontext-pro/text-to-image", "pro", "t2i", 0.04, _guidance(1.0, 10.0)),
    Model("wavespeed-ai/flux-kontext-pro", "pro", "edit", 0.04, _guidance(1.0, 10.0), max_images=1),
    Model("wavespeed-ai/flux-kontext-pro/multi", "pro", "multi", 0.04, _guidance(1.0, 20.0), max_images=5),
)


def find_model(model_id: str) -> Model | None:
    return next((m for m in MODELS if m.id == model_id), None)


def model_of(model_id: str) -> Model:
    """The row of a model id, or ValidationError naming it."""
    found = find_model(model_id)
    if found is None:
        raise ValidationError(f"unknown model {model_id!r}.")
    return found


def model_for(kind: Kind, family: str = DEFAULT_FAMILY) -> Model:
    """The model of a family doing ``kind``: what a node of that kind submits to."""
    return next(m for m in MODELS if m.kind == kind and m.family == family)


def family_prices(kind: Kind) -> dict[str, float]:
    """Each family's price per image for ``kind``, by the family's label (the badge's choices)."""
    return {FAMILIES[m.family]: m.price_usd for m in MODELS if m.kind == kind}
