"""FLUX.1 Kontext image editing: one image (Edit) or up to five references (Multi-Reference).

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

from comfy_api.latest import io

from ..wavespeed import (
    InvalidRequestError,
    KontextRequest,
    TaskContext,
    TaskHandle,
    models,
    parse_urls,
    submit_task,
)
from .shared import comfy_bridge as bridge
from .shared.image_inputs import Reference, check_sizes, image_references, upload, url_references
from .shared.runtime import Watch, run_blocking
from .shared.widgets import (
    DEFAULT_MODEL,
    PaidNode,
    family_of,
    kontext_inputs,
    last_inputs,
    price_text,
    schema,
    task_outputs,
)

log = logging.getLogger("wavespeed")

MAX_IMAGE_INPUTS = 5
_PLACEHOLDER_URL = "https://placeholder.invalid/reference.png"  # lets validate() run before uploads


async def submit_with_references(
    request: KontextRequest, references: list[Reference], force_rerun: bool, node_id: str | None
) -> io.NodeOutput:
    """Check the request with stand-ins for the references (before any upload or spend), then upload
    them and submit in one worker call; the task and its request id as the node's outputs."""
    placeholders = [ref.url or _PLACEHOLDER_URL for ref in references]
    request = request.with_references(placeholders).validate()

    def work(context: TaskContext) -> TaskHandle:
        urls = upload(references, context)
        return submit_task(request.with_references(urls), context, force_rerun=force_rerun)

    handle = await run_blocking(work, watch=Watch(bridge.NodeProgress(node_id)))
    return io.NodeOutput(handle, handle.request_id)


class FluxKontextMaxEdit(PaidNode):
    """Edit one image."""

    KIND: Final = "edit"  # its rows of the table, and its model's price per image for the badge

    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "FluxKontextMaxEdit",
            "FLUX.1 Kontext [max] Edit (WaveSpeed)",
            f"Edit one image with FLUX.1 Kontext [max] on WaveSpeedAI ({price_text('edit')}). Connect an "
            "IMAGE (uploaded as exact PNG, once per distinct image) or wire an image URL, e.g. the "
            "image_urls output of WaveSpeed Poll Result, to chain edits without re-uploading. Connect "
            "'task' to WaveSpeed Poll Result.",
            [
                *kontext_inputs(cls.KIND),
                io.Image.Input(
                    "image",
                    optional=True,
                    tooltip="The image to edit. Wins over image_url when connected. Of a batch only the "
                    "FIRST image is edited (one task, one charge). Alpha is dropped.",
                ),
                io.String.Input(
                    "image_url",
                    display_name="image URL",
                    optional=True,
                    default="",
                    tooltip="Or an http(s) URL of the image, e.g. the image_urls output of WaveSpeed Poll "
                    "Result (first line used): chains edits with no re-upload. Ignored when 'image' is "
                    "connected.",
                ),
                *last_inputs(cls.KIND),
            ],
            task_outputs(),
            kind=cls.KIND,
        )

    @classmethod
    async def execute(
        cls,
        prompt: str,
        seed: int,
        guidance_scale: float,
        aspect_ratio: str,
        sync_mode: bool,
        force_rerun: bool = False,
        image: Any = None,
        image_url: str = "",
        model: str = DEFAULT_MODEL,
        **appended: Any,
    ) -> Any:
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
            cls.KIND,
            family_of(model),
            prompt=prompt,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=aspect_ratio,
            sync_mode=sync_mode,
            **appended,
        )
        return await submit_with_references(request, [reference], force_rerun, cls.hidden.unique_id)


class FluxKontextMaxMultiReference(PaidNode):
    """Combine 1 to 5 references."""

    KIND: Final = "multi"

    @classmethod
    def define_schema(cls) -> Any:
        most = models.model_for("multi").max_images
        images = [
            io.Image.Input(
                f"image_{n}",
                optional=True,
                tooltip=f"Reference image(s) #{n}. A batch adds every one of its images, in order, after "
                f"those of the inputs above. At most {most} references in all. Alpha is "
                "dropped.",
            )
            for n in range(1, MAX_IMAGE_INPUTS + 1)
        ]
        return schema(
            "FluxKontextMaxMultiReference",
            "FLUX.1 Kontext [max] Multi-Reference (WaveSpeed)",
            f"Combine 1 to 5 reference images with FLUX.1 Kontext [max] multi on WaveSpeedAI "
            f"({price_text('multi')}). Every image of every connected input is a reference, in order "
            "(image_1's batch first), then the image_urls lines. Images are uploaded as exact PNG, once "
            "per distinct image. Connect 'task' to WaveSpeed Poll Result.",
            [
                *kontext_inputs(cls.KIND),
                *images,
                io.String.Input(
                    "image_urls",
                    display_name="image URLs",
                    optional=True,
                    default="",
                    multiline=True,
                    tooltip="More references as http(s) URLs, one per line, sent after the connected "
                    "images (no upload), e.g. the image_urls output of WaveSpeed Poll Result.",
                ),
                *last_inputs(cls.KIND),
            ],
            task_outputs(),
            kind=cls.KIND,
        )

    @classmethod
    async def execute(
        cls,
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
        model: str = DEFAULT_MODEL,
        **appended: Any,
    ) -> Any:
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
        family = family_of(model)
        most = models.model_for(cls.KIND, family).max_images
        if len(references) > most:
            raise InvalidRequestError(
                f"{len(references)} reference images given (counting every image of each batch and "
                f"every URL line); the API takes at most {most}."
            )
        check_sizes(references)
        request = KontextRequest.from_widgets(
            cls.KIND,
            family,
            prompt=prompt,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=aspect_ratio,
            sync_mode=sync_mode,
            **appended,
        )
        return await submit_with_references(request, references, force_rerun, cls.hidden.unique_id)
