"""WaveSpeed Poll Result: wait for a task, download every output, return ComfyUI IMAGE tensors.

The wait goes through the account's shared poller (limits.py), so many Poll nodes in flight share
one request budget and poll where completion is likely."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from ..wavespeed import (
    STATUS_EXPIRED,
    STATUS_FAILED,
    CancelCheck,
    Prediction,
    TaskContext,
    TaskHandle,
    account_client,
    account_poller,
    check_request_id,
    errors as E,
    journal_note,
    journal_outcome,
    open_journal,
)
from .shared import comfy_bridge as bridge
from .shared.progress import fraction_for, status_line
from .shared.runtime import Watch, run_blocking

if TYPE_CHECKING:
    from ..wavespeed import WaveSpeedClient

NSFW_PASS, NSFW_FAIL = "pass through", "fail"
DOWNLOAD_BUDGET_S = 180.0


def _history_of(journal: Any) -> Callable[[str], Sequence[float]] | None:
    """Past inference times per model from the journal, if it keeps them (the poller's plan)."""
    times = getattr(journal, "inference_times", None)
    return times if callable(times) else None


def _resolve_request_id(task: TaskHandle | None, request_id: str) -> str:
    if task is not None:
        return task.request_id  # a connected task wins over a typed id
    rid = (request_id or "").strip()
    if not rid:
        raise E.InvalidRequestError(
            "No task to wait for: connect a 'task' from a Kontext node, or paste a request id."
        )
    return check_request_id(rid)  # refused before it is shown anywhere (a pasted key is no id)


def _download_all(
    client: WaveSpeedClient, outputs: tuple[str, ...], cancel: CancelCheck, request_id: str, deadline: float
) -> list[bytes]:
    def one(output: str) -> bytes:
        return client.download(output, cancel=cancel, deadline=deadline, request_id=request_id)

    if len(outputs) == 1:
        return [one(outputs[0])]
    with ThreadPoolExecutor(max_workers=min(4, len(outputs))) as pool:
        return list(pool.map(one, outputs))


def _unusable(prediction: Prediction, exc: E.ImageDecodeError) -> E.ImageDecodeError:
    """The error Poll Result stops with: the task, what was wrong, and where its outputs are.
    Its image_urls output is never produced then, so the error carries the URLs (the line lists
    them when they fit whole, else names the places that keep them); polling again would only
    fail the same way."""
    from ..wavespeed import OutputsTooLargeError, UnsupportedFormatError

    urls = tuple(o for o in prediction.outputs if o.startswith(("http://", "https://")))
    plural = "s" if len(urls) > 1 else ""
    hint = (
        f"open the output{plural} directly"
        if urls
        else "open its outputs from your task history on wavespeed.ai"
    )
    if isinstance(exc, OutputsTooLargeError):
        return OutputsTooLargeError(
            f"Task {prediction.id} (paid, kept): {exc.what}",
            request_id=prediction.id,
            hint=hint,
            urls=urls,
        )
    if isinstance(exc, UnsupportedFormatError):
        return UnsupportedFormatError(
            f"An output of task {prediction.id} is {exc.what}: not decoded; the task stays in Recent Tasks",
            request_id=prediction.id,
            hint=hint,
            urls=urls,
        )
    return E.ImageDecodeError(
        f"Output of task {prediction.id} is not a usable image (twice: {exc.what})",
        request_id=prediction.id,
        hint=hint,
        urls=urls,
    )


def fetch_images(
    client: WaveSpeedClient, prediction: Prediction, cancel: CancelCheck, deadline: float | None = None
) -> Any:
    """Download and decode all outputs; a corrupt file is fetched once more before giving up.

    The number of outputs is checked before anything is downloaded; a memory refusal
    (OutputsTooLargeError) is final: downloading again would give the same sizes. A file that is
    not an image WaveSpeed serves (UnsupportedFormatError: never decoded) is fetched once more like
    a broken one (a CDN's error page passes), then refused. Downloads and decoding end by ``deadline`` (the
    node's, ``time.monotonic()``; at most DOWNLOAD_BUDGET_S from now) and on Cancel, even while a
    decode runs in C (decode_before)."""
    from ..wavespeed import OutputsTooLargeError, check_output_count, decode_before, images_to_tensor

    end = time.monotonic() + DOWNLOAD_BUDGET_S
    end = end if deadline is None else min(end, deadline)
    if not prediction.outputs:
        raise E.ServerError(
            f"WaveSpeed task {prediction.id} completed without outputs; try Poll Result again later.",
            request_id=prediction.id,
        )
    try:
        check_output_count(len(prediction.outputs))
    except OutputsTooLargeError as exc:
        raise _unusable(prediction, exc) from None
    for attempt in (1, 2):
        blobs = _download_all(client, prediction.outputs, cancel, prediction.id, end)
        try:
            decode = partial(images_to_tensor, blobs)
            return decode_before(decode, deadline=end, cancel=cancel, request_id=prediction.id)
        except OutputsTooLargeError as exc:
            raise _unusable(prediction, exc) from None
        except E.ImageDecodeError as exc:  # a file not whole, or not an image WaveSpeed serves
            if attempt == 2:
                raise _unusable(prediction, exc) from None
    raise AssertionError("unreachable")


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
        rid = _resolve_request_id(task, request_id)
        node_deadline = time.monotonic() + timeout_s  # the wait, the downloads and the decode end by then
        progress = bridge.NodeProgress(unique_id)
        watch = Watch(progress)
        watch.request_id = rid
        watch.set(0.02, f"waiting for task {rid[:8]}…")
        first = task.prediction if task is not None else None
        journal = open_journal(bridge.user_directory())
        seen: list[str] = []

        def on_progress(prediction: Prediction, elapsed_s: float) -> None:
            watch.set(fraction_for(prediction, elapsed_s), status_line(prediction, elapsed_s))
            if not prediction.is_terminal and seen[-1:] != [prediction.status]:
                seen.append(prediction.status)
                journal_outcome(journal, prediction)  # the record follows the task as it moves on

        age_s = max(0.0, time.time() - task.submitted_at) if task is not None else None

        def work(context: TaskContext) -> tuple[Prediction, Any]:
            client = account_client(context)
            poller = account_poller(client, _history_of(journal))
            cancel = context.cancel
            try:
                prediction = poller.wait(
                    rid,
                    model=task.model if task is not None else "",
                    timeout_s=float(timeout_s),
                    cancel=cancel,
                    progress=on_progress,
                    first=first,
                    age_s=age_s,
                )
            except E.TaskFailedError as exc:
                journal_note(journal, rid, status=STATUS_FAILED, error=exc.message)
                raise
            except E.NotFoundError as exc:
                journal_note(journal, rid, status=STATUS_EXPIRED, error=exc.message)
                raise
            except E.WaitTimeoutError:
                journal_note(
                    journal, rid, note="wait timed out; the task may still finish (Poll Result again)"
                )
                raise
            except E.CancelledError:
                journal_note(
                    journal, rid, note="wait cancelled; the task may still finish (Poll Result again)"
                )
                raise
            journal_outcome(journal, prediction)  # completed: reusable by id for 7 days
            if nsfw_policy == NSFW_FAIL and prediction.any_nsfw:
                raise E.ContentFlaggedError(
                    f"WaveSpeed flagged the output of task {rid} as NSFW and nsfw_policy is 'fail': "
                    "change the prompt, or set nsfw_policy to 'pass through'.",
                    request_id=rid,
                )
            count = len(prediction.outputs)
            watch.set(0.96, f"downloading {count} image{'s' if count != 1 else ''} · task {rid[:8]}…")
            return prediction, fetch_images(client, prediction, cancel, node_deadline)

        prediction, images = await run_blocking(work, watch=watch)
        for image in images:  # on the node as soon as it is in hand (images as they arrive)
            progress.preview(image)
        height, width = int(images.shape[1]), int(images.shape[2])
        progress.update(1.0, f"done · {images.shape[0]}× {width}x{height} · task {rid[:8]}…")
        urls = "\n".join(o for o in prediction.outputs if o.startswith(("http://", "https://")))
        return (images, urls, rid, int(prediction.inference_ms or 0), prediction.any_nsfw)
