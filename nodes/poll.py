"""WaveSpeed Poll Result: wait for a task, download every output, return ComfyUI IMAGE tensors.

The wait and the fetch are the task layer's (wavespeed/tasks/results.py: one shared poller per
account, the journal following the task), run in one worker call; the node adds its NSFW policy,
the previews and the outputs."""

from __future__ import annotations

import time
from typing import Any

from ..wavespeed import Prediction, TaskContext, TaskHandle, errors as E, fetch_images, wait_for_task
from .shared import comfy_bridge as bridge
from .shared.runtime import Watch, run_blocking

NSFW_PASS, NSFW_FAIL = "pass through", "fail"


class WaveSpeedPollResult:
    """The Poll Result node's work (declared to ComfyUI in nodes/v3/task_nodes.py)."""

    async def poll(
        self,
        timeout_s: int,
        nsfw_policy: str,
        task: TaskHandle | None = None,
        request_id: str = "",
        unique_id: str | None = None,
    ) -> tuple[Any, str, str, int, bool]:
        typed = (request_id or "").strip()
        if task is None and not typed:
            raise E.InvalidRequestError(
                "No task to wait for: connect a 'task' from a Kontext node, or paste a request id."
            )
        node_deadline = time.monotonic() + timeout_s  # the wait, the downloads and the decode end by then
        progress = bridge.NodeProgress(unique_id)

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
        urls = "\n".join(o for o in prediction.outputs if o.startswith(("http://", "https://")))
        return (images, urls, rid, int(prediction.inference_ms or 0), prediction.any_nsfw)
