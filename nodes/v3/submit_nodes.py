"""The three Kontext [max] submit nodes as ComfyUI sees them: Generate, Edit and Multi-Reference.

Each declares its schema and hands its inputs to the plain class that does the work (nodes/generate.py,
nodes/edit.py), with the node's id (progress text, journal); they return a task for Poll Result.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ...wavespeed import (
    MAX_REFERENCE_IMAGES,
    MODEL_EDIT,
    MODEL_MULTI,
    MODEL_TEXT_TO_IMAGE,
    PRICE_PER_IMAGE_USD,
)
from .. import edit, generate
from .common import aspect_ratio_input, kontext_inputs, run_work, schema, task_outputs


def _price(model: str) -> str:
    return f"${PRICE_PER_IMAGE_USD[model]:.2f} per image"


def _match_input(tooltip: str) -> Any:
    return aspect_ratio_input(tooltip, first=(edit.MATCH_INPUT,))


class FluxKontextMaxGenerate(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "FluxKontextMaxGenerate",
            "FLUX.1 Kontext [max] Generate (WaveSpeed)",
            f"Submit a FLUX.1 Kontext [max] text-to-image task to WaveSpeedAI ({_price(MODEL_TEXT_TO_IMAGE)}). "
            "Connect 'task' to WaveSpeed Poll Result to get the image. The API key comes from "
            "WAVESPEED_API_KEY, never from the workflow.",
            kontext_inputs(
                "What to generate. Kontext [max] follows long, specific prompts well.",
                aspect_ratio_input("Shape of the output; 1:1 is 1024x1024, others keep about one megapixel."),
            ),
            task_outputs(),
            model=generate.FluxKontextMaxGenerate.MODEL,
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return generate.FluxKontextMaxGenerate.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(generate.FluxKontextMaxGenerate().generate, cls, inputs)


class FluxKontextMaxEdit(io.ComfyNode):  # type: ignore[misc]
    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "FluxKontextMaxEdit",
            "FLUX.1 Kontext [max] Edit (WaveSpeed)",
            f"Edit one image with FLUX.1 Kontext [max] on WaveSpeedAI ({_price(MODEL_EDIT)}). Connect an "
            "IMAGE (uploaded as exact PNG, once per distinct image) or wire an image URL, e.g. the "
            "image_urls output of WaveSpeed Poll Result, to chain edits without re-uploading. Connect "
            "'task' to WaveSpeed Poll Result.",
            [
                *kontext_inputs(
                    "What to change, e.g. 'make it night, keep the house unchanged'. Say what must stay "
                    "the same as well as what to change.",
                    _match_input(
                        "Shape of the output. 'match input' (default) leaves it to the API, which keeps "
                        "the input image's shape; the others force a ratio at about one megapixel."
                    ),
                ),
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
            ],
            task_outputs(),
            model=edit.FluxKontextMaxEdit.MODEL,
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return edit.FluxKontextMaxEdit.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(edit.FluxKontextMaxEdit().edit, cls, inputs)


class FluxKontextMaxMultiReference(io.ComfyNode):  # type: ignore[misc]
    @classmethod
    def define_schema(cls) -> Any:
        images = [
            io.Image.Input(
                f"image_{n}",
                optional=True,
                tooltip=f"Reference image(s) #{n}. A batch adds every one of its images, in order, after "
                f"those of the inputs above. At most {MAX_REFERENCE_IMAGES} references in all. Alpha is "
                "dropped.",
            )
            for n in range(1, edit.MAX_IMAGE_INPUTS + 1)
        ]
        return schema(
            "FluxKontextMaxMultiReference",
            "FLUX.1 Kontext [max] Multi-Reference (WaveSpeed)",
            f"Combine 1 to 5 reference images with FLUX.1 Kontext [max] multi on WaveSpeedAI "
            f"({_price(MODEL_MULTI)}). Every image of every connected input is a reference, in order "
            "(image_1's batch first), then the image_urls lines. Images are uploaded as exact PNG, once "
            "per distinct image. Connect 'task' to WaveSpeed Poll Result.",
            [
                *kontext_inputs(
                    "How to combine the references, e.g. 'the person from image 1 wearing the jacket from "
                    "image 2'. References are numbered in the order they are sent.",
                    _match_input(
                        "Shape of the output. 'match input' (default) leaves it out of the request so the "
                        "API decides from the references; the others force a ratio at about one megapixel."
                    ),
                ),
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
            ],
            task_outputs(),
            model=edit.FluxKontextMaxMultiReference.MODEL,
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return edit.FluxKontextMaxMultiReference.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(edit.FluxKontextMaxMultiReference().edit, cls, inputs)
