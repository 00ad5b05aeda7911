"""FLUX.1 Kontext [max] image editing: one image (Edit) or up to five references (Multi-Reference).

Both upload their references and submit (``submit_task``) in one worker call, and return the same
(WAVESPEED_TASK, request_id) pair as Generate, so WaveSpeed Poll Result finishes them unchanged. Everything a user can get wrong (no
image, too many references, a bad URL, an image too small or too large, an empty prompt) is
refused with one line before any upload or charge.

Rules (also in docs/editing.md):
* Edit: a connected ``image`` wins over ``image_url``; of an IMAGE batch only the first image is
  edited (one task, one charge); of ``image_url`` only the first non-empty line is used, so the
  ``image_urls`` output of WaveSpeed Poll Result can be wired straight in (no re-upload).
* Multi-Reference: every image of every connected input is a reference, in order (image_1's whole
  batch first, then image_2 ...), then the lines of ``image_urls``; 1 to 5 in total.
* ``aspect_ratio`` "match input" leaves the field out of the request, so the API keeps the input's
  shape (multi: the API decides from the references): the widget's left-out choice in the table
  (wavespeed/api/body_params.py).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from ..wavespeed import (
    InvalidRequestError,
    KontextRequest,
    TaskContext,
    TaskHandle,
    models,
    parse_urls,
    submit_task,
)
from .generate import KontextSubmitNode
from .shared import comfy_bridge as bridge
from .shared.image_inputs import Reference, check_sizes, image_references, upload, url_references
from .shared.runtime import Watch, run_blocking

log = logging.getLogger("wavespeed")

MAX_IMAGE_INPUTS = 5
_PLACEHOLDER_URL = "https://placeholder.invalid/reference.png"  # lets validate() run before uploads


class FluxKontextMaxEdit(KontextSubmitNode):
    """Edit one image (declared to ComfyUI in nodes/v3/submit_nodes.py)."""

    KIND: Final = "edit"

    async def edit(
        self,
        prompt: str,
        seed: int,
        guidance_scale: float,
        aspect_ratio: str,
        sync_mode: bool,
        force_rerun: bool = False,
        image: Any = None,
        image_url: str = "",
        unique_id: str | None = None,
        **appended: Any,
    ) -> tuple[TaskHandle, str]:
        """``appended``: the widgets of body parameters added to the table since (shown last)."""
        reference: Reference
        if image is not None:
            reference = image_references(image, "image", first_only=True)[0]
            check_sizes([reference])
            if (image_url or "").strip():
                log.info("FLUX Kontext Edit: 'image' is connected, so image_url is ignored.")
        else:
            urls = parse_urls(image_url, "image_url")
            if not urls:
                raise InvalidRequestError(
                    "No image to edit: connect an IMAGE to 'image', or give an http(s) URL in 'image_url'."
                )
            reference = url_references(urls[:1], "image_url")[0]
        request = KontextRequest.from_widgets(
            self.KIND,
            prompt=prompt,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=aspect_ratio,
            sync_mode=sync_mode,
            **appended,
        )
        request = request.with_references([reference.url or _PLACEHOLDER_URL]).validate()  # before any spend

        def work(context: TaskContext) -> TaskHandle:
            urls = upload([reference], context)
            return submit_task(request.with_references(urls), context, force_rerun=force_rerun)

        handle = await run_blocking(work, watch=Watch(bridge.NodeProgress(unique_id)))
        return (handle, handle.request_id)


class FluxKontextMaxMultiReference(KontextSubmitNode):
    """Combine 1 to 5 references (declared to ComfyUI in nodes/v3/submit_nodes.py)."""

    KIND: Final = "multi"

    async def edit(
        self,
        prompt: str,
        seed: int,
        guidance_scale: float,
        aspect_ratio: str,
        sync_mode: bool,
        force_rerun: bool = False,
        image_1: Any = None,
        image_2: Any = None,
        image_3: Any = None,
        image_4: Any = None,
        image_5: Any = None,
        image_urls: str = "",
        unique_id: str | None = None,
        **appended: Any,
    ) -> tuple[TaskHandle, str]:
        """``appended``: the widgets of body parameters added to the table since (shown last)."""
        references: list[Reference] = []
        for n, image in enumerate((image_1, image_2, image_3, image_4, image_5), 1):
            if image is not None:
                references.extend(image_references(image, f"image_{n}"))
        references.extend(url_references(parse_urls(image_urls, "image_urls"), "image_urls"))
        if not references:
            raise InvalidRequestError(
                "No reference images: connect at least one IMAGE (image_1..image_5) or give URLs in image_urls."
            )
        most = models.model_for(self.KIND).max_images
        if len(references) > most:
            raise InvalidRequestError(
                f"{len(references)} reference images given (counting every image of each batch and "
                f"every URL line); the API takes at most {most}."
            )
        check_sizes(references)
        request = KontextRequest.from_widgets(
            self.KIND,
            prompt=prompt,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=aspect_ratio,
            sync_mode=sync_mode,
            **appended,
        )
        placeholders = [ref.url or _PLACEHOLDER_URL for ref in references]
        request = request.with_references(placeholders).validate()  # before any upload or spend

        def work(context: TaskContext) -> TaskHandle:
            urls = upload(references, context)
            return submit_task(request.with_references(urls), context, force_rerun=force_rerun)

        handle = await run_blocking(work, watch=Watch(bridge.NodeProgress(unique_id)))
        return (handle, handle.request_id)
