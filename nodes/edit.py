"""FLUX.1 Kontext [max] image editing: one image (Edit) or up to five references (Multi-Reference).

Both submit through ``submit_task`` and return the same (WAVESPEED_TASK, request_id) pair as
Generate, so WaveSpeed Poll Result finishes them unchanged. Everything a user can get wrong (no
image, too many references, a bad URL, an image too small or too large, an empty prompt) is
refused with one line before any upload or charge.

Rules (also in docs/editing.md):
* Edit: a connected ``image`` wins over ``image_url``; of an IMAGE batch only the first image is
  edited (one task, one charge); of ``image_url`` only the first non-empty line is used, so the
  ``image_urls`` output of WaveSpeed Poll Result can be wired straight in (no re-upload).
* Multi-Reference: every image of every connected input is a reference, in order (image_1's whole
  batch first, then image_2 ...), then the lines of ``image_urls``; 1 to 5 in total.
* ``aspect_ratio`` "match input" leaves the field out of the request, so the API keeps the input's
  shape (multi: the API decides from the references).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..wavespeed import (
    ASPECT_RATIOS,
    MAX_REFERENCE_IMAGES,
    MODEL_EDIT,
    MODEL_MULTI,
    PRICE_PER_IMAGE_USD,
    InvalidRequestError,
    KontextRequest,
    parse_urls,
)
from .generate import KontextSubmitNode, common_inputs
from .paid.submission import submit_task
from .shared.image_inputs import Reference, check_sizes, image_references, resolve, url_references
from .shared.task_value import TaskHandle

log = logging.getLogger("wavespeed")

MATCH_INPUT = "match input"
MAX_IMAGE_INPUTS = 5
_PLACEHOLDER_URL = "https://placeholder.invalid/reference.png"  # lets validate() run before uploads


def _edit_inputs(match_tooltip: str) -> dict[str, Any]:
    """common_inputs() with "match input" as the first (default) aspect ratio."""
    inputs = common_inputs()
    inputs["aspect_ratio"] = (
        [MATCH_INPUT, *ASPECT_RATIOS],
        {"default": MATCH_INPUT, "tooltip": match_tooltip},
    )
    return inputs


def _aspect_ratio(value: str) -> str | None:
    return None if value == MATCH_INPUT else value


_EDIT_PROMPT = (
    "STRING",
    {
        "multiline": True,
        "default": "",
        "tooltip": "What to change, e.g. 'make it night, keep the house unchanged'. Say what must stay "
        "the same as well as what to change.",
    },
)
_MULTI_PROMPT = (
    "STRING",
    {
        "multiline": True,
        "default": "",
        "tooltip": "How to combine the references, e.g. 'the person from image 1 wearing the jacket "
        "from image 2'. References are numbered in the order they are sent.",
    },
)


class FluxKontextMaxEdit(KontextSubmitNode):
    DESCRIPTION = (
        "Edit one image with FLUX.1 Kontext [max] on WaveSpeedAI "
        f"(${PRICE_PER_IMAGE_USD[MODEL_EDIT]:.2f} per image). Connect an IMAGE (uploaded as exact PNG, "
        "once per distinct image) or wire an image URL, e.g. the image_urls output of WaveSpeed Poll "
        "Result, to chain edits without re-uploading. Connect 'task' to WaveSpeed Poll Result."
    )
    FUNCTION = "edit"
    MODEL = MODEL_EDIT

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "prompt": _EDIT_PROMPT,
                **_edit_inputs(
                    "Shape of the output. 'match input' (default) leaves it to the API, which keeps "
                    "the input image's shape; the others force a ratio at about one megapixel."
                ),
            },
            "optional": {
                "image": (
                    "IMAGE",
                    {
                        "tooltip": "The image to edit. Wins over image_url when connected. Of a batch "
                        "only the FIRST image is edited (one task, one charge). Alpha is dropped."
                    },
                ),
                "image_url": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": False,
                        "tooltip": "Or an http(s) URL of the image, e.g. the image_urls output of "
                        "WaveSpeed Poll Result (first line used): chains edits with no re-upload. "
                        "Ignored when 'image' is connected.",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

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
    ) -> tuple[TaskHandle, str]:
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
        request = KontextRequest(
            prompt=prompt,
            model=MODEL_EDIT,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=_aspect_ratio(aspect_ratio),
            enable_sync_mode=sync_mode,
            image=reference.url or _PLACEHOLDER_URL,
        ).validate()  # before any upload or spend
        (url,) = await resolve([reference], unique_id)
        handle = await submit_task(
            dataclasses.replace(request, image=url), unique_id, force_rerun=force_rerun
        )
        return (handle, handle.request_id)


class FluxKontextMaxMultiReference(KontextSubmitNode):
    DESCRIPTION = (
        "Combine 1 to 5 reference images with FLUX.1 Kontext [max] multi on WaveSpeedAI "
        f"(${PRICE_PER_IMAGE_USD[MODEL_MULTI]:.2f} per image). Every image of every connected input is "
        "a reference, in order (image_1's batch first), then the image_urls lines. Images are uploaded "
        "as exact PNG, once per distinct image. Connect 'task' to WaveSpeed Poll Result."
    )
    FUNCTION = "edit"
    MODEL = MODEL_MULTI

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        images = {
            f"image_{n}": (
                "IMAGE",
                {
                    "tooltip": f"Reference image(s) #{n}. A batch adds every one of its images, in "
                    "order, after those of the inputs above. At most "
                    f"{MAX_REFERENCE_IMAGES} references in all. Alpha is dropped."
                },
            )
            for n in range(1, MAX_IMAGE_INPUTS + 1)
        }
        return {
            "required": {
                "prompt": _MULTI_PROMPT,
                **_edit_inputs(
                    "Shape of the output. 'match input' (default) leaves it out of the request so "
                    "the API decides from the references; the others force a ratio at about one megapixel."
                ),
            },
            "optional": {
                **images,
                "image_urls": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": True,
                        "tooltip": "More references as http(s) URLs, one per line, sent after the "
                        "connected images (no upload), e.g. the image_urls output of WaveSpeed Poll Result.",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

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
    ) -> tuple[TaskHandle, str]:
        references: list[Reference] = []
        for n, image in enumerate((image_1, image_2, image_3, image_4, image_5), 1):
            if image is not None:
                references.extend(image_references(image, f"image_{n}"))
        references.extend(url_references(parse_urls(image_urls, "image_urls"), "image_urls"))
        if not references:
            raise InvalidRequestError(
                "No reference images: connect at least one IMAGE (image_1..image_5) or give URLs in image_urls."
            )
        if len(references) > MAX_REFERENCE_IMAGES:
            raise InvalidRequestError(
                f"{len(references)} reference images given (counting every image of each batch and "
                f"every URL line); the API takes at most {MAX_REFERENCE_IMAGES}."
            )
        check_sizes(references)
        request = KontextRequest(
            prompt=prompt,
            model=MODEL_MULTI,
            seed=seed,
            guidance_scale=guidance_scale,
            aspect_ratio=_aspect_ratio(aspect_ratio),
            enable_sync_mode=sync_mode,
            images=tuple(ref.url or _PLACEHOLDER_URL for ref in references),
        ).validate()  # before any upload or spend
        urls = await resolve(references, unique_id)
        handle = await submit_task(
            dataclasses.replace(request, images=tuple(urls)), unique_id, force_rerun=force_rerun
        )
        return (handle, handle.request_id)
