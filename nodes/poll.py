"""WaveSpeed Poll Result: wait for a task, download every output, return ComfyUI IMAGE tensors.

The wait and the fetch are the task layer's (wavespeed/tasks/results.py: one shared poller per
account, the journal following the task), run in one worker call; the node adds its NSFW policy,
the previews and the outputs. Free: no price badge."""

from __future__ import annotations

import time
from typing import Any

from comfy_api.latest import io

from ..wavespeed import Prediction, TaskContext, TaskHandle, errors as E, fetch_images, wait_for_task
from .shared import comfy_bridge as bridge
from .shared.runtime import Watch, run_blocking
from .shared.widgets import Task, schema

NSFW_PASS, NSFW_FAIL = "pass through", "fail"


class WaveSpeedPollResult(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    """No fingerprint: ComfyUI's own caching (same task, same inputs: the same images)."""

    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "WaveSpeedPollResult",
            "WaveSpeed Poll Result",
            "Wait for a WaveSpeed task, download its outputs and return them as IMAGE. Shows progress, "
            "stops on Cancel, and can fetch an earlier task again by request id without paying twice.",
            [
                io.Int.Input(
                    "timeout_s",
                    display_name="give up after (s)",
                    default=600,
                    min=10,
                    max=7200,
                    step=10,
                    tooltip="Give up waiting after this many seconds. The task keeps running and can be "
                    "fetched later by its request id.",
                ),
                io.Combo.Input(
                    "nsfw_policy",
                    display_name="if flagged NSFW",
                    options=[NSFW_PASS, NSFW_FAIL],
                    default=NSFW_PASS,
                    tooltip="What to do when the API flags an output as NSFW: pass it through (see the "
                    "nsfw_flagged output) or stop with an error.",
                ),
                Task.Input(
                    "task",
                    optional=True,
                    tooltip="From a FLUX Kontext node. Takes precedence over request_id.",
                ),
                io.String.Input(
                    "request_id",
                    display_name="request id",
                    optional=True,
                    default="",
                    tooltip="Or paste the request id of an earlier task, or connect WaveSpeed Recent Tasks, "
                    "to fetch it again (no new charge).",
                ),
            ],
            [
                io.Image.Output(
                    display_name="images",
                    tooltip="All outputs as one batch [B,H,W,3]; different sizes are centred on a black canvas.",
                ),
                io.String.Output(
                    display_name="image_urls",
                    tooltip="Output URLs, one per line (they expire after 7 days). Feed one into an edit "
                    "node to reuse it.",
                ),
                io.String.Output(display_name="request_id", tooltip="The task's request id."),
                io.Int.Output(
                    display_name="inference_ms", tooltip="Inference time the API reports, in milliseconds."
                ),
                io.Boolean.Output(
                    display_name="nsfw_flagged", tooltip="True if the API flagged any output as NSFW."
                ),
            ],
        )

    @classmethod
    async def execute(
        cls, timeout_s: int, nsfw_policy: str, task: TaskHandle | None = None, request_id: str = ""
    ) -> Any:
        typed = (request_id or "").strip()
        if task is None and not typed:
            raise E.InvalidRequestError(
                "No task to wait for: connect a 'task' from a Kontext node, or paste a request id."
            )
        node_deadline = time.monotonic() + timeout_s  # the wait, the downloads and the decode end by then
        progress = bridge.NodeProgress(cls.hidden.unique_id)

        def work(context: TaskContext) -> tuple[Prediction, Any]:
            # a connected task wins over a typed id
            prediction = wait_for_task(task or typed, context, timeout_s=float(timeout_s))
            if nsfw_policy == NSFW_FAIL and prediction.any_nsfw:
                raise E.ContentFlaggedError(
                    f"WaveSpeed flagged the output of task {prediction.id} as NSFW and nsfw_policy is "
                    "'fail': change the prompt, or set nsfw_policy to 'pass through'.",
                    request_id=prediction.id,
                )
            return prediction, fetch_images(prediction, context, deadline=node_deadline)

        prediction, images = await run_blocking(work, watch=Watch(progress))
        rid = prediction.id
        for image in images:  # on the node as soon as it is in hand (images as they arrive)
            progress.preview(image)
        height, width = int(images.shape[1]), int(images.shape[2])
        progress.update(1.0, f"done · {images.shape[0]}× {width}x{height} · task {rid[:8]}…")
        urls = "\n".join(prediction.output_urls)
        return io.NodeOutput(images, urls, rid, int(prediction.inference_ms or 0), prediction.any_nsfw)
