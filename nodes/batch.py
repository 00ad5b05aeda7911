"""FLUX.1 Kontext Batch: several prompts (one per line) x a count of variations -> one IMAGE batch.

A loop over the paid path (``submit_task``): every task is submitted by the same call as Generate's,
so it is validated, priced, journaled, reused for a fixed seed and submitted through the account's
scheduler exactly as a Generate -> Poll chain is, and a batch on a Bronze account simply takes its
minutes. The decisions:

* Seeds: variation v of a prompt uses seed + v; seed -1 sends -1 for each (the API picks). One seed
  control: the seed widget and its "control after generate" (an older "seed_mode" widget is gone; the web
  extension drops its saved value when an older workflow loads, web/saved_batch.js).
* The whole batch's price is shown before anything is spent, and if WAVESPEED_SESSION_BUDGET_USD
  cannot cover all of it, nothing is submitted (``afford``: BudgetExceededError naming the total).
* Cancel: one CancelLatch for the whole batch. Once Cancel is seen it stays seen, every task is
  stopped, and no task that has not started its POST ever starts it (not even one waiting for the
  batch's in-flight gate, which a Cancel frees).
* Partial failure never throws away paid results. ``on_failure`` = "return what succeeded" (default):
  the batch holds every image that arrived and ``failures`` names each failed task with its id and
  reason (re-queue, or paste an id into Poll Result); only when nothing succeeded does it raise.
  "fail": raise one error naming the failures and the ids of the paid images (journaled, so Poll
  Result or a re-queue fetches them without a new charge).
* Memory: the batch tensor is planned from the first output's size x the number of tasks before it is
  allocated (MAX_BATCH_BYTES, the budget of one IMAGE batch in images/batch_plan.py); over the budget the
  batch stops with a typed OutputsOverBudget naming the paid tasks, nothing allocated. Each task's image is copied into its
  slot as it arrives and at most DECODING tasks download and decode at once (peak: the batch plus
  two tasks' images). The number of tasks is bounded by the same budget for ~1 MP outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Final

from comfy_api.latest import io

from ..wavespeed import (
    CancelLatch,
    KontextRequest,
    TaskContext,
    TaskHandle,
    afford,
    body_params,
    errors as E,
    fetch_images,
    models,
    submit_task,
    wait_for_task,
)
from .shared import comfy_bridge as bridge
from .shared.pricing import prompt_lines
from .shared.runtime import run_blocking
from .shared.widgets import DEFAULT_MODEL, PaidNode, family_of, last_inputs, price_text, row_inputs, schema

# One IMAGE batch may take MAX_BATCH_BYTES of float32 (wavespeed/images/batch_plan.py); a Kontext output is
# about one megapixel, so that bounds the number of tasks (85 for the 1 GiB budget).
# (images/batch_plan.py pulls numpy and torch, which the pack must not import at start-up: the value is
# repeated here and a test keeps the two equal.)
MAX_BATCH_BYTES = 1 << 30
MAX_TASKS = MAX_BATCH_BYTES // (1024 * 1024 * 3 * 4)
IN_FLIGHT = 24  # tasks of one batch holding a worker thread at once (the pool has 64)
DECODING = 2  # tasks of one batch downloading and decoding at once: their images exist twice briefly
RETURN_SUCCEEDED, FAIL = "return what succeeded", "fail"


def batch_requests(
    prompts: str,
    variations: int,
    seed: int,
    guidance_scale: float,
    aspect_ratio: str,
    family: str = models.DEFAULT_FAMILY,
    **appended: Any,
) -> list[KontextRequest]:
    """One validated request per (prompt line, variation), in output order, to the ``family``'s
    model; each line is the value of the ``prompts`` widget for its requests (``appended``: widgets
    of rows added to the table since)."""
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
            s = -1 if seed == -1 else (seed + v) % (body_params.SEED_MAX + 1)
            out.append(
                KontextRequest.from_widgets(
                    FluxKontextMaxBatch.KIND,
                    family,
                    prompts=line,
                    seed=s,
                    guidance_scale=guidance_scale,
                    aspect_ratio=aspect_ratio,
                    **appended,
                ).validate()
            )
    return out


class FluxKontextMaxBatch(PaidNode):
    KIND: Final = "batch"  # its rows of the table; its model's price x prompts x variations is the badge

    @classmethod
    def define_schema(cls) -> Any:
        prompts, *rows = row_inputs(cls.KIND)  # the prompts, then seed, guidance and aspect ratio
        return schema(
            "FluxKontextMaxBatch",
            "FLUX.1 Kontext [max] Batch (WaveSpeed)",
            "Several prompts (one per line) x a number of variations as one IMAGE batch: every task is "
            "submitted within the account's limits, journaled and paid once "
            f"({price_text('t2i')}; the batch's total is shown first).",
            [
                prompts,
                io.Int.Input(
                    "variations",
                    display_name="images per prompt",
                    default=1,
                    min=1,
                    max=MAX_TASKS,
                    tooltip="Images per prompt.",
                ),
                *rows,
                io.Combo.Input(
                    "on_failure",
                    display_name="if some fail",
                    options=[RETURN_SUCCEEDED, FAIL],
                    default=RETURN_SUCCEEDED,
                    tooltip="If some tasks fail: return the images that arrived and name the failures, or "
                    "stop with an error (paid images stay fetchable by id).",
                ),
                io.Int.Input(
                    "timeout_s",
                    display_name="give up after (s)",
                    default=1800,
                    min=10,
                    max=7200,
                    step=10,
                    tooltip="Give up waiting for a task after this many seconds (it keeps running; its id "
                    "fetches it later). A Bronze account makes 2 images a minute.",
                ),
                *last_inputs(cls.KIND),
            ],
            [
                io.Image.Output(
                    display_name="images",
                    tooltip="Every image that arrived, prompt by prompt, variation by variation.",
                ),
                io.String.Output(
                    display_name="image_urls", tooltip="Output URLs, one per line (they expire after 7 days)."
                ),
                io.String.Output(
                    display_name="request_ids",
                    tooltip="Request ids of the images, one per line (Poll Result fetches any of them again, "
                    "no charge).",
                ),
                io.String.Output(
                    display_name="failures",
                    tooltip="Failed tasks, one per line with id and reason (empty when all succeeded).",
                ),
            ],
            kind=cls.KIND,  # its price x prompts x variations is the badge
        )

    @classmethod
    async def execute(
        cls,
        prompts: str,
        variations: int,
        seed: int,
        guidance_scale: float,
        aspect_ratio: str,
        on_failure: str = RETURN_SUCCEEDED,
        timeout_s: int = 1800,
        model: str = DEFAULT_MODEL,
        **appended: Any,
    ) -> Any:
        """``appended``: the widgets of body parameters added to the table since (shown last)."""
        family = family_of(model)
        requests = batch_requests(prompts, variations, seed, guidance_scale, aspect_ratio, family, **appended)
        total = afford(requests)  # the whole price, refused before anything is spent
        progress = bridge.NodeProgress(cls.hidden.unique_id)
        progress.update(0.01, f"batch of {len(requests)} · ${total:.2f}")
        epoch = bridge.current_epoch()  # a Cancel from now on stops every task of the batch
        cancel = CancelLatch(lambda: bridge.interrupted(epoch))
        run = _BatchRun(len(requests), total, progress, cancel, float(timeout_s))
        await run.all(requests)
        return io.NodeOutput(*_finish(run.results, run.canvas.tensor, on_failure, progress))


class _BatchRun:
    """One run of the Batch node: a loop over the paid path (one submit_task per task, one Cancel
    latch for all), a wait per task, and the batch tensor planned before it is allocated."""

    def __init__(
        self, count: int, total: float, progress: bridge.NodeProgress, cancel: CancelLatch, timeout_s: float
    ) -> None:
        import asyncio  # on first use: the pack's import stays light

        self.count, self.total, self.progress, self.cancel = count, total, progress, cancel
        self.timeout_s = timeout_s
        self.results: list[tuple[TaskHandle | None, Any, BaseException | None]] = [(None, None, None)] * count
        self.paid: list[str] = []  # ids of accepted tasks, in the order they were accepted
        self.canvas = BatchCanvas(count, self.paid)
        self.done = self.failed = 0
        self.waiting: dict[str, str] = {}  # the latest rate-limit text, set from worker threads
        self.gate = asyncio.Semaphore(IN_FLIGHT)
        self.decoding = asyncio.Semaphore(DECODING)  # few decoded images exist beside the batch at once

    async def all(self, requests: list[KontextRequest]) -> None:
        """Every task; a Cancel (or a batch that cannot be held) stops them all: no POST after it."""
        import asyncio

        tasks = [asyncio.ensure_future(self.one(i, r)) for i, r in enumerate(requests)]
        tick = asyncio.ensure_future(self.ticker())
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            self.cancel.latch()  # decided once: nothing that has not POSTed yet will
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            tick.cancel()

    async def one(self, i: int, request: KontextRequest) -> None:
        """One task: the paid path, its wait, its image into its slot. A task's own failure is kept
        in ``results``; a Cancel or an over-budget batch ends the whole batch."""
        handle: TaskHandle | None = None
        try:
            async with self.gate:
                handle = await run_blocking(lambda context: submit_task(request, self.within(context)))
                self.paid.append(handle.request_id)
                deadline = time.monotonic() + self.timeout_s  # this task's wait, downloads and decode
                prediction = await run_blocking(
                    lambda context: wait_for_task(handle, context, timeout_s=self.timeout_s)
                )
                async with self.decoding:
                    images = await run_blocking(
                        lambda context: fetch_images(prediction, context, deadline=deadline)
                    )
                    self.canvas.place(i, images)
                    del images  # the batch tensor holds the pixels now
                    self.progress.preview(self.canvas.tensor[i])  # on the node as it arrives, from its slot
            self.results[i] = (handle, prediction, None)
            self.done += 1
        except (E.CancelledError, OutputsOverBudget):
            raise
        except E.WaveSpeedError as exc:
            self.results[i] = (handle, None, exc)
            self.failed += 1
        self.waiting.pop("text", None)
        self.publish()

    def within(self, context: TaskContext) -> TaskContext:
        """A task's context: its worker's Cancel or the batch's, and its rate waits shown on the batch's line."""
        return dataclasses.replace(
            context, cancel=lambda: context.cancel() or self.cancel(), rate_wait=self.rate_wait
        )

    def rate_wait(self, text: str) -> None:
        self.waiting["text"] = text

    def publish(self) -> None:
        finished = self.done + self.failed
        text = batch_status(self.done, self.failed, self.count, _spent_usd(self.results))
        if "text" in self.waiting and finished < self.count:
            text += f" · {self.waiting['text']}"
        self.progress.update(0.05 + 0.9 * finished / self.count, text)

    async def ticker(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(0.25)
            # A Cancel raised by the progress hook is seen by every task's own watch (epoch).
            with contextlib.suppress(Exception):
                self.publish()


def batch_status(done: int, failed: int, count: int, spent_usd: float) -> str:
    """The status line while a batch runs: ``7/24 done, $0.56 so far`` (the price of the images in
    hand; a reused task costs nothing), then how many failed."""
    return f"{done}/{count} done, ${spent_usd:.2f} so far" + (f", {failed} failed" if failed else "")


def _spent_usd(results: list[tuple[TaskHandle | None, Any, BaseException | None]]) -> float:
    return sum(h.price_usd for h, p, e in results if h is not None and p is not None and e is None)


class OutputsOverBudget(E.ImageDecodeError):
    """The batch's outputs, as one IMAGE batch, would pass its memory budget: refused before allocating."""


class BatchCanvas:
    """The batch tensor: planned from the first output's size x the task count before it is allocated
    (``MAX_BATCH_BYTES``); each task's image is then copied into its slot."""

    def __init__(self, count: int, paid: list[str], max_bytes: int | None = None) -> None:
        self.count, self.paid = count, paid
        self.max_bytes = MAX_BATCH_BYTES if max_bytes is None else max_bytes
        self.tensor: Any = None

    def _over_budget(self, width: int, height: int, need: int) -> OutputsOverBudget:
        """One line naming the paid tasks (as many ids as the line holds; Recent Tasks lists all)."""
        text = (
            f"Batch of {self.count} at {width}x{height} needs {need / 2**30:.2f} GiB (budget "
            f"{self.max_bytes / 2**30:.2f} GiB), not allocated; paid tasks kept, fetch by id in Poll Result:"
        )
        shown = 0
        while shown < len(self.paid) and len(text) + 34 * (shown + 1) + 30 <= 300:
            shown += 1
        text += " " + ", ".join(self.paid[:shown]) if shown else " none yet"
        if shown < len(self.paid):
            text += f" +{len(self.paid) - shown} more (Recent Tasks)"
        return OutputsOverBudget(text, request_id=self.paid[0] if self.paid else None)

    def place(self, index: int, images: Any) -> None:
        import torch

        height, width = int(images.shape[1]), int(images.shape[2])
        if self.tensor is None:
            need = self.count * height * width * 3 * 4  # [count, H, W, 3] float32
            if need > self.max_bytes:
                raise self._over_budget(width, height, need)
            self.tensor = torch.zeros((self.count, height, width, 3), dtype=images.dtype)
        batch = self.tensor
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
    urls = "\n".join(u for i in ok for u in results[i][1].output_urls)
    progress.update(
        1.0, f"batch done · {len(ok)}/{len(results)} images" + (f", {len(failed)} failed" if failed else "")
    )
    return images, urls, "\n".join(paid), "\n".join(lines)
