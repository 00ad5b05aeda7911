"""The three Kontext [max] submit nodes as ComfyUI sees them: Generate, Edit and Multi-Reference.

Each declares its schema and hands its inputs to the plain class that does the work (nodes/generate.py,
nodes/edit.py), with the node's id (progress text, journal); they return a task for Poll Result.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ...wavespeed import models
from .. import edit, generate
from .common import kontext_inputs, price_text, row_inputs, run_work, schema, task_outputs


class FluxKontextMaxGenerate(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "FluxKontextMaxGenerate",
            "FLUX.1 Kontext [max] Generate (WaveSpeed)",
            f"Submit a FLUX.1 Kontext [max] text-to-image task to WaveSpeedAI ({price_text('t2i')}). "
            "Connect 'task' to WaveSpeed Poll Result to get the image. The API key comes from "
            "WAVESPEED_API_KEY, never from the workflow.",
            [*kontext_inputs("t2i"), *row_inputs("t2i", saved=False)],
            task_outputs(),
            kind=generate.FluxKontextMaxGenerate.KIND,
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
            f"Edit one image with FLUX.1 Kontext [max] on WaveSpeedAI ({price_text('edit')}). Connect an "
            "IMAGE (uploaded as exact PNG, once per distinct image) or wire an image URL, e.g. the "
            "image_urls output of WaveSpeed Poll Result, to chain edits without re-uploading. Connect "
            "'task' to WaveSpeed Poll Result.",
            [
                *kontext_inputs("edit"),
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
                *row_inputs("edit", saved=False),
            ],
            task_outputs(),
            kind=edit.FluxKontextMaxEdit.KIND,
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
        most = models.model_for("multi").max_images
        images = [
            io.Image.Input(
                f"image_{n}",
                optional=True,
                tooltip=f"Reference image(s) #{n}. A batch adds every one of its images, in order, after "
                f"those of the inputs above. At most {most} references in all. Alpha is "
                "dropped.",
            )
            for n in range(1, edit.MAX_IMAGE_INPUTS + 1)
        ]
        return schema(
            "FluxKontextMaxMultiReference",
            "FLUX.1 Kontext [max] Multi-Reference (WaveSpeed)",
            f"Combine 1 to 5 reference images with FLUX.1 Kontext [max] multi on WaveSpeedAI "
            f"({price_text('multi')}). Every image of every connected input is a reference, in order "
            "(image_1's batch first), then the image_urls lines. Images are uploaded as exact PNG, once "
            "per distinct image. Connect 'task' to WaveSpeed Poll Result.",
            [
                *kontext_inputs("multi"),
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
                *row_inputs("multi", saved=False),
            ],
            task_outputs(),
            kind=edit.FluxKontextMaxMultiReference.KIND,
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return edit.FluxKontextMaxMultiReference.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(edit.FluxKontextMaxMultiReference().edit, cls, inputs)
