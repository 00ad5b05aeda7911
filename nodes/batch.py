"""FLUX.1 Kontext [max] Batch: several prompts (one per line) x a count of variations -> one IMAGE batch.

Every task goes the way a Generate -> Poll chain goes (validated, priced, journaled, reused for a fixed
seed, submitted through the account's scheduler, waited for by the account's poller), so a batch on a
Bronze account simply takes its minutes and never errors on a 429. The decisions:

* Seeds: variation v of a prompt uses seed + v ("increment"), or -1 for each ("random": the API picks).
* The whole batch's price is shown before anything is spent, and if WAVESPEED_SESSION_BUDGET_USD
  cannot cover all of it, nothing is submitted (BudgetExceededError naming the total).
* Partial failure never throws away paid results. ``on_failure`` = "return what succeeded" (default):
  the batch holds every image that arrived and ``failures`` names each failed task with its id and
  reason (re-queue, or paste an id into Poll Result); only when nothing succeeded does it raise.
  "fail": raise one error naming the failures and the ids of the paid images (journaled, so Poll
  Result or a re-queue fetches them without a new charge).
* Memory: the output tensor is allocated once and each task's image is copied into its slot as it
  arrives, and at most DECODING tasks download and decode at once, so the decoded images are never
  held twice (peak: the batch plus two tasks' images); the
  number of tasks is bounded by the IMAGE batch budget of image_batch.py (MAX_BATCH_BYTES).
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..wavespeed import errors as E
from ..wavespeed.budget import session_budget_usd
from ..wavespeed.models import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    GUIDANCE_DEFAULT,
    GUIDANCE_MAX,
    GUIDANCE_MIN,
    MODEL_TEXT_TO_IMAGE,
    PRICE_PER_IMAGE_USD,
    SEED_MAX,
    SEED_MIN,
    KontextRequest,
)
from ..wavespeed.vocabulary import CancelCheck
from . import comfy_bridge as bridge
from . import limits
from .generate import CATEGORY
from .poll import fetch_images
from .pricing import prompt_lines
from .runtime import get_client, run_blocking
from .submission import SESSION_SPEND, journal_outcome, open_journal, submit_task
from .task import TaskHandle

# One IMAGE batch may take MAX_BATCH_BYTES of float32 (wavespeed/image_batch.py); a Kontext output is
# about one megapixel, so that bounds the number of tasks (85 for the 1 GiB budget).
# (image_batch.py pulls numpy and torch, which the pack must not import at start-up: the value is
# repeated here and a test keeps the two equal.)
MAX_BATCH_BYTES = 1 << 30
MAX_TASKS = MAX_BATCH_BYTES // (1024 * 1024 * 3 * 4)
IN_FLIGHT = 24  # tasks of one batch holding a worker thread at once (the pool has 64)
DECODING = 2  # tasks of one batch downloading and decoding at once: their images exist twice briefly
RETURN_SUCCEEDED, FAIL = "return what succeeded", "fail"
SEED_INCREMENT, SEED_RANDOM = "increment", "random"


def batch_requests(
    prompts: str, variations: int, seed: int, seed_mode: str, guidance_scale: float, aspect_ratio: str
) -> list[KontextRequest]:
    """One validated request per (prompt line, variation), in output order."""
    lines = prompt_lines(prompts)
    if not lines:
        raise E.InvalidRequestError("prompts is empty: write one prompt per line.")
    if not 1 <= variations <= MAX_TASKS:
        raise E.InvalidRequestError(f"variations {variations} is out of range (1-{MAX_TASKS}).")
    if len(lines) * variations > MAX_TASKS:
        raise E.InvalidRequestError(
            f"{len(lines)} prompts x {variations} variations is {len(lines) * variations} tasks, over the "
            f"{MAX_TASKS} one IMAGE batch may hold (about 1 GiB of float32): split it."
        )
    out = []
    for line in lines:
        for v in range(variations):
            s = -1 if seed_mode == SEED_RANDOM or seed == -1 else (seed + v) % (SEED_MAX + 1)
            out.append(
                KontextRequest(
                    prompt=line,
                    model=MODEL_TEXT_TO_IMAGE,
                    seed=s,
                    guidance_scale=guidance_scale,
                    aspect_ratio=aspect_ratio,
                ).validate()
            )
    return out


class FluxKontextMaxBatch:
    DESCRIPTION = (
        "Several prompts (one per line) x a number of variations as one IMAGE batch: every task is "
        "submitted within the account's limits, journaled and paid once "
        f"(${PRICE_PER_IMAGE_USD[MODEL_TEXT_TO_IMAGE]:.2f} per image; the batch's total is shown first)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "STRING", "STRING", "STRING")
    RETURN_NAMES = ("images", "image_urls", "request_ids", "failures")
    OUTPUT_TOOLTIPS = (
        "Every image that arrived, prompt by prompt, variation by variation.",
        "Output URLs, one per line (they expire after 7 days).",
        "Request ids of the images, one per line (Poll Result fetches any of them again, no charge).",
        "Failed tasks, one per line with id and reason (empty when all succeeded).",
    )
    MODEL = MODEL_TEXT_TO_IMAGE  # its price per image x prompts x variations is the badge (nodes/v3.py)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "prompts": (
                    "STRING",
                    {
                        "multiline": True,
                        "default": "",
                        "tooltip": "One prompt per line; blank lines are skipped.",
                    },
                ),
                "variations": (
                    "INT",
                    {"default": 1, "min": 1, "max": MAX_TASKS, "tooltip": "Images per prompt."},
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": SEED_MIN,
                        "max": SEED_MAX,
                        "control_after_generate": True,
                        "tooltip": "Variation v uses seed + v (a fixed seed reuses earlier results, no "
                        "new charge); -1 lets the API pick.",
                    },
                ),
                "seed_mode": (
                    [SEED_INCREMENT, SEED_RANDOM],
                    {
                        "default": SEED_INCREMENT,
                        "tooltip": "increment: seed, seed+1, ... per prompt; random: the API picks each "
                        "(always new, paid images).",
                    },
                ),
                "guidance_scale": (
                    "FLOAT",
                    {
                        "default": GUIDANCE_DEFAULT,
                        "min": GUIDANCE_MIN,
                        "max": GUIDANCE_MAX,
                        "step": 0.1,
                        "tooltip": "How strictly the images follow the prompts (1.0-20.0, default 3.5).",
                    },
                ),
                "aspect_ratio": (
                    list(ASPECT_RATIOS),
                    {"default": DEFAULT_ASPECT_RATIO, "tooltip": "One shape for the whole batch."},
                ),
                "on_failure": (
                    [RETURN_SUCCEEDED, FAIL],
                    {
                        "default": RETURN_SUCCEEDED,
                        "tooltip": "If some tasks fail: return the images that arrived and name the "
                        "failures, or stop with an error (paid images stay fetchable by id).",
                    },
                ),
                "timeout_s": (
                    "INT",
                    {
                        "default": 1800,
                        "min": 10,
                        "max": 7200,
                        "step": 10,
                        "tooltip": "Give up waiting for a task after this many seconds (it keeps running; "
                        "its id fetches it later). A Bronze account makes 2 images a minute.",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, seed: int = 0, seed_mode: str = SEED_INCREMENT, **_: Any) -> Any:
        return float("nan") if seed == -1 or seed_mode == SEED_RANDOM else seed

    async def run(
        self,
        prompts: str,
        variations: int,
        seed: int,
        seed_mode: str,
        guidance_scale: float,
        aspect_ratio: str,
        on_failure: str = RETURN_SUCCEEDED,
        timeout_s: int = 1800,
        unique_id: str | None = None,
    ) -> tuple[Any, str, str, str]:
        import asyncio  # on first use: the pack's import stays light

        requests = batch_requests(prompts, variations, seed, seed_mode, guidance_scale, aspect_ratio)
        total = sum(r.price_usd for r in requests)
        budget = session_budget_usd()
        if budget is not None and SESSION_SPEND.spent_usd + total > budget + 1e-9:
            raise E.BudgetExceededError(
                f"This batch costs ${total:.2f} ({len(requests)} images); the session budget has "
                f"${max(0.0, budget - SESSION_SPEND.spent_usd):.2f} left of ${budget:.2f}: nothing was "
                "submitted. Raise WAVESPEED_SESSION_BUDGET_USD or make the batch smaller."
            )
        progress = bridge.NodeProgress(unique_id)
        progress.update(0.01, f"batch of {len(requests)} · ${total:.2f}")
        state = {"done": 0, "failed": 0}
        waiting: dict[str, str] = {}  # the latest rate-limit text, set from worker threads
        results: list[tuple[TaskHandle | None, Any, BaseException | None]] = [(None, None, None)] * len(
            requests
        )
        out: list[Any] = [None]

        gate = asyncio.Semaphore(IN_FLIGHT)
        decoding = asyncio.Semaphore(DECODING)  # few decoded images exist beside the batch at once

        async def one(i: int, request: KontextRequest) -> None:
            handle: TaskHandle | None = None
            try:
                async with gate:
                    handle = await submit_task(
                        request, None, on_rate_wait=lambda text: waiting.__setitem__("text", text)
                    )
                    prediction = await self._wait(handle, float(timeout_s))
                    async with decoding:
                        images = await run_blocking(
                            lambda cancel: fetch_images(get_client(), prediction, cancel)
                        )
                        _place(out, images, i, len(requests))
                        del images  # the batch tensor holds the pixels now
                results[i] = (handle, prediction, None)
                state["done"] += 1
            except E.WaveSpeedError as exc:
                results[i] = (handle, None, exc)
                state["failed"] += 1
            waiting.pop("text", None)
            publish()

        def publish() -> None:
            finished = state["done"] + state["failed"]
            text = f"batch {state['done']}/{len(requests)} done"
            text += f", {state['failed']} failed" if state["failed"] else ""
            if "text" in waiting and finished < len(requests):
                text += f" · {waiting['text']}"
            progress.update(0.05 + 0.9 * finished / len(requests), text + f" · ${total:.2f}")

        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.25)
                # A Cancel raised by the progress hook is seen by every task's own watch (epoch).
                with contextlib.suppress(Exception):
                    publish()

        tick = asyncio.ensure_future(ticker())
        try:
            await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        finally:
            tick.cancel()
        return _finish(results, out[0], on_failure, progress)

    async def _wait(self, handle: TaskHandle, timeout_s: float) -> Any:
        client = get_client()
        journal = open_journal()
        history = getattr(journal, "inference_times", None)
        poller = limits.poller(client, history=history if callable(history) else None)

        def work(cancel: CancelCheck) -> Any:
            prediction = poller.wait(
                handle.request_id,
                model=handle.model,
                timeout_s=timeout_s,
                cancel=cancel,
                first=handle.prediction,
                age_s=0.0,
            )
            journal_outcome(journal, prediction)
            return prediction

        return await run_blocking(work)


def _place(out: list[Any], images: Any, index: int, count: int) -> None:
    """Copy one task's images into the batch tensor (allocated on the first arrival)."""
    import torch

    if out[0] is None:
        out[0] = torch.zeros((count, *images.shape[1:]), dtype=images.dtype)
    batch = out[0]
    if tuple(images.shape[1:]) != tuple(batch.shape[1:]):
        raise E.ImageDecodeError(
            f"An output is {tuple(images.shape[1:])}, the batch is {tuple(batch.shape[1:])}: one aspect "
            "ratio per batch."
        )
    batch[index] = images[0]


def _finish(
    results: list[tuple[TaskHandle | None, Any, BaseException | None]],
    batch: Any,
    on_failure: str,
    progress: bridge.NodeProgress,
) -> tuple[Any, str, str, str]:
    ok = [i for i, (_, p, e) in enumerate(results) if e is None and p is not None]
    failed = [(h, e) for h, _, e in results if e is not None]
    lines = [
        f"{h.request_id if h is not None else 'not submitted'}: {getattr(e, 'message', str(e))}"
        for h, e in failed
    ]
    paid = [results[i][0].request_id for i in ok if results[i][0] is not None]  # type: ignore[union-attr]
    if failed and (on_failure == FAIL or not ok):
        first = failed[0][1]
        cls = (
            type(first)
            if isinstance(first, E.WaveSpeedError) and not isinstance(first, E.TaskFailedError)
            else E.TaskFailedError
        )
        kept = f"paid images kept, fetch by id: {', '.join(paid)}" if paid else "no image arrived"
        raise cls(f"{len(failed)} of {len(results)} batch tasks failed (first: {lines[0]}); {kept}")
    images = batch[ok] if len(ok) != len(results) else batch
    urls = "\n".join(u for i in ok for u in results[i][1].outputs if u.startswith(("http://", "https://")))
    progress.update(
        1.0, f"batch done · {len(ok)}/{len(results)} images" + (f", {len(failed)} failed" if failed else "")
    )
    return images, urls, "\n".join(paid), "\n".join(lines)
