"""The Kontext request: a model of the table and its body values, checked and turned into the body
from the rows (models.py, body_params.py) rather than from fields of its own.

The check runs before any HTTP request, so a typo never costs money: the model must be a row of the
table, every value a row its kind takes, each value within its row's range or options (the model's
own range where it narrows one: [pro] guidance), and the reference images within the model's count,
as URLs the API may fetch. This module imports nothing heavy: the node classes read the table at
ComfyUI start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..core.errors import ConfigError, ValidationError
from .body_params import MODEL_KIND, PROMPT, SEED, SYNC_MODE, NodeKind, Param, body_of, node_params
from .models import DEFAULT_FAMILY, Model, find_model, model_for, model_of

# WaveSpeed's published polling pace for image tasks (docs, "Get Result" -> "Task Result Polling
# Frequency"; WAVESPEED_API.md 13.1): at least this long between two checks of one task id.
CHECK_GAP_S = 2.0


@dataclass(frozen=True, init=False)
class KontextRequest:
    """One Kontext task: ``model`` (a model id of the table) and its body values by body key.

    ``KontextRequest(prompt="a fox", seed=5)`` is a [max] text-to-image task; another model is
    ``KontextRequest(model_for("edit", "pro").id, prompt=..., image=url)``. A value left unset is its
    row's default; a key the model's kind does not take is refused by ``validate``.
    """

    model: str
    values: Mapping[str, Any]
    # What the paid path reads of every request, worked out once when it is made (plain fields, so
    # reading one is no call back into this module): its rows' values and its model's price.
    prompt: Any = field(init=False, compare=False, repr=False)
    seed: Any = field(init=False, compare=False, repr=False)
    enable_sync_mode: Any = field(init=False, compare=False, repr=False)
    price_usd: float = field(init=False, compare=False, repr=False)  # per output image (one per task)
    # Set by ``validate``: the body it checked (read-only), and the API base URL its image URLs were
    # checked for (the configured one when none was given). The client sends that body as it is
    # when its own base URL is that one, so a request is checked, and its body made, once.
    body: Mapping[str, Any] | None = field(init=False, compare=False, repr=False)
    checked_for: str | None = field(init=False, compare=False, repr=False)

    def __init__(self, model: str = model_for("t2i").id, **values: Any) -> None:
        found = find_model(model)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "values", MappingProxyType(dict(values)))
        object.__setattr__(self, "price_usd", found.price_usd if found is not None else 0.0)
        for row in (PROMPT, SEED, SYNC_MODE):  # each field is named as its row's body key
            object.__setattr__(self, row.key, values.get(row.key, row.default))
        object.__setattr__(self, "body", None)
        object.__setattr__(self, "checked_for", None)

    @classmethod
    def from_widgets(cls, kind: NodeKind, family: str = DEFAULT_FAMILY, **widgets: Any) -> KontextRequest:
        """The request a node of ``kind`` makes from its widget values (by input id)."""
        return cls(model_for(MODEL_KIND[kind], family).id, **request_values(kind, widgets))

    def value(self, param: Param) -> Any:
        """Its value for a row: the one it was given, else the row's default."""
        return self.values.get(param.key, param.default)

    @property
    def references(self) -> tuple[str, ...]:
        """The reference image URLs it sends, in order (none for text-to-image)."""
        row = model_of(self.model).references
        if row is None:
            return ()
        value = self.value(row)
        return (value,) if isinstance(value, str) else tuple(value or ())

    def with_references(self, urls: Sequence[str]) -> KontextRequest:
        """The same request with these reference image URLs (e.g. once uploaded, or named by content)."""
        spec = model_of(self.model)
        row = spec.references
        if row is None:
            return self
        value: Any = urls[0] if spec.max_images == 1 and urls else tuple(urls)
        return KontextRequest(self.model, **{**self.values, row.key: value})

    def validate(self, *, api_base: str | None = None) -> KontextRequest:
        """Check every value before any request, so a typo never costs money, and keep the body
        (``body``) made in the same pass: the paid path and the client send it as it is.

        Args:
            api_base: the API base URL the request goes to (default: the configured one); image
                URLs on its own origin pass even when it is local (the emulator serves its own files).
        Returns:
            self, so calls chain (``client.submit`` calls it for you).
        Raises:
            ValidationError: (an InvalidRequestError) naming the first bad value and its fix.
        """
        spec = model_of(self.model)
        taken = {p.key for p in spec.params}
        for key in self.values:
            if key not in taken:
                raise ValidationError(f"{key} is not a parameter of {spec.label}.")
        body = body_of(spec.params, self.values)  # total: made first, kept only once all is checked
        for param in spec.params:
            if not param.references:
                bounds = spec.bounds(param)
                where = "" if bounds == param.bounds else f" for {spec.label}"
                param.check_value(self.values.get(param.key, param.default), bounds, where)
        base = _configured_base() if api_base is None else api_base
        row = spec.references
        if row is not None:
            _check_references(spec, row.key, self.values.get(row.key, row.default), base)
        object.__setattr__(self, "body", MappingProxyType(body))
        object.__setattr__(self, "checked_for", base)
        return self

    def payload(self) -> dict[str, Any]:
        """The JSON body, in the rows' order; a left-out value (seed -1: the server picks) is not sent."""
        if self.body is not None:
            return dict(self.body)
        return body_of(model_of(self.model).params, self.values)


def request_values(kind: NodeKind, widgets: Mapping[str, Any]) -> dict[str, Any]:
    """A node's widget values (by input id) as request values (by body key): ``sync_mode`` ->
    ``enable_sync_mode``, the left-out choice ("match input") -> None. A name no row shows on the
    node kind is refused (a misspelt widget must not be dropped silently)."""
    shown = {p.widgets[kind].name: p for p in node_params(kind)}
    values: dict[str, Any] = {}
    for name, value in widgets.items():
        row = shown.get(name)
        if row is None:
            raise ValidationError(f"{name} is not a parameter widget of a {kind} node.")
        choice = row.widgets[kind].left_out_choice
        values[row.key] = None if choice is not None and value == choice else value
    return values


def _configured_base() -> str:
    """The configured API base URL, as the client reads it ("" when it cannot be read: then no local
    image URL passes, and the client's own check says what is wrong with it)."""
    from ..settings.config import resolve_base_url  # urllib3: not at ComfyUI start-up

    try:
        return resolve_base_url()
    except ConfigError:
        return ""


def _check_references(spec: Model, key: str, value: Any, api_base: str) -> None:
    """One image for an edit, 1 to ``max_images`` for a multi-reference, each a URL the API may fetch."""
    if spec.max_images == 1:
        if not value or not isinstance(value, str):
            raise ValidationError(f"{key} is missing: connect an IMAGE or give an image URL to edit.")
        _check_image_ref(value, key, api_base)
        return
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise ValidationError(
            f"{key} must be a list of URLs, got {type(value).__name__}: pass a tuple of strings."
        )
    if not value:
        raise ValidationError(f"{key} is empty: connect 1 to {spec.max_images} reference images.")
    if len(value) > spec.max_images:
        raise ValidationError(
            f"{len(value)} reference images given; the API takes at most {spec.max_images}."
        )
    for i, ref in enumerate(value, 1):
        _check_image_ref(ref, f"reference image {i}", api_base)


def _check_image_ref(ref: str, what: str, api_base: str) -> None:
    """An http(s) URL WaveSpeed can fetch (see settings/reference_urls.py) or a ``data:image/`` URI."""
    from ..settings.reference_urls import check_image_url

    if not isinstance(ref, str):
        raise ValidationError(f"{what} must be a URL string, got {type(ref).__name__}.")
    if ref.startswith("data:image/"):
        return
    check_image_url(ref, what, api_base=api_base)
