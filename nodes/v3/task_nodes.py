"""WaveSpeed Poll Result and WaveSpeed Recent Tasks as ComfyUI sees them (free: no price badge);
the work is nodes/poll.py's and nodes/recent.py's."""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from .. import poll, recent
from .common import Task, run_work, schema


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
                    options=[poll.NSFW_PASS, poll.NSFW_FAIL],
                    default=poll.NSFW_PASS,
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
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(poll.WaveSpeedPollResult().poll, cls, inputs)


class WaveSpeedRecentTasks(io.ComfyNode):  # type: ignore[misc]
    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "WaveSpeedRecentTasks",
            "WaveSpeed Recent Tasks",
            "List the WaveSpeed tasks this machine submitted (the task journal, kept 7 days like the API's "
            "results) and pick one by position. Connect request_id to WaveSpeed Poll Result to fetch a paid "
            "result again, e.g. after a crash, a restart, a timeout or Cancel: no new charge.",
            [
                io.Int.Input(
                    "index",
                    display_name="pick (0 = newest)",
                    default=0,
                    min=0,
                    max=recent.MAX_LISTED - 1,
                    tooltip="Which task: 0 = the newest matching status_filter, 1 = the one before, and so "
                    "on (see the tasks output).",
                ),
                io.Combo.Input(
                    "status_filter",
                    display_name="show",
                    options=list(recent.STATUS_FILTERS),
                    default=recent.FILTER_ALL,
                    tooltip="'in flight' lists paid tasks whose result was never fetched (interrupted, "
                    "timed out, crashed): the ones to recover.",
                ),
            ],
            [
                io.String.Output(
                    display_name="request_id",
                    tooltip="The chosen task's request id: connect it to WaveSpeed Poll Result's request_id input.",
                ),
                io.String.Output(
                    display_name="tasks",
                    tooltip="The recent tasks, one per line (id · status · age · price · prompt); ▶ marks "
                    "the chosen one.",
                ),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> Any:
        return recent.WaveSpeedRecentTasks.fingerprint_inputs(**inputs)

    @classmethod
    async def execute(cls, **inputs: Any) -> Any:
        return await run_work(recent.WaveSpeedRecentTasks().pick, cls, inputs)
