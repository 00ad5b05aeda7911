"""A submitted task's result: wait for it, then download every output and decode them into one IMAGE.

Poll Result and each task of a Batch make these two calls, blocking, in a worker thread. The
decisions, and why:

* The wait goes through the account's shared poller (accounts.py), so many waits in flight share
  one request budget and poll where completion is likely; a result a sync-mode submit already
  holds (the handle's prediction) returns at once.
* The journal follows the task as it moves on (each new status while waiting; completed, failed or
  expired at the end; a note when the wait gave up while the task may still finish), best effort:
  a journal problem never fails a wait (journals.py).
* The API reports no percentage, so the status line's bar advances on a time curve that
  approaches, but never reaches, 95 % while the task runs; completion and download fill the rest.
* Outputs: their number is checked before anything is downloaded; a corrupt file is fetched once
  more; a memory refusal is final. The error then names the task and where its outputs are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from ..api.reply_types import Prediction
from ..core import errors as E
from ..core.vocabulary import QUEUED_STATUSES, CancelCheck, check_request_id
from ..journal.task_journal import STATUS_EXPIRED, STATUS_FAILED, Journal
from . import accounts
from .context import TaskContext
from .handle import TaskHandle, short_id
from .journals import journal_note, journal_outcome, open_journal

if TYPE_CHECKING:
    from ..net.client import WaveSpeedClient

DOWNLOAD_BUDGET_S = 180.0
_TYPICAL_INFERENCE_S = 12.0


def wait_for_task(task: TaskHandle | str, context: TaskContext, *, timeout_s: float) -> Prediction:
    """Wait until ``task`` (a submit's handle, or a request id pasted by hand) completes; blocks.

    Returns the completed prediction; raises TaskFailedError, NotFoundError, WaitTimeoutError or
    CancelledError (the task keeps running; its id fetches it later), each noted in the journal.
    A pasted id is checked before it is shown anywhere (a pasted key is no id)."""
    handle = task if isinstance(task, TaskHandle) else None
    rid = handle.request_id if handle is not None else check_request_id(str(task))
    context.status.request_id = rid  # a Cancel now names the task: it is paid, and may still finish
    context.status.set(0.02, f"waiting for task {rid[:8]}…")
    journal = open_journal(context.user_dir)
    poller = accounts.poller(accounts.account_client(context), _history_of(journal))
    seen: list[str] = []

    def on_progress(prediction: Prediction, elapsed_s: float) -> None:
        context.status.set(fraction_for(prediction, elapsed_s), status_line(prediction, elapsed_s))
        if not prediction.is_terminal and seen[-1:] != [prediction.status]:
            seen.append(prediction.status)
            journal_outcome(journal, prediction)  # the record follows the task as it moves on

    try:
        prediction = poller.wait(
            rid,
            model=handle.model if handle is not None else "",
            timeout_s=timeout_s,
            cancel=context.cancel,
            progress=on_progress,
            first=handle.prediction if handle is not None else None,
            age_s=max(0.0, time.time() - handle.submitted_at) if handle is not None else None,
        )
    except E.TaskFailedError as exc:
        journal_note(journal, rid, status=STATUS_FAILED, error=exc.message)
        raise
    except E.NotFoundError as exc:
        journal_note(journal, rid, status=STATUS_EXPIRED, error=exc.message)
        raise
    except E.WaitTimeoutError:
        journal_note(journal, rid, note="wait timed out; the task may still finish (Poll Result again)")
        raise
    except E.CancelledError:
        journal_note(journal, rid, note="wait cancelled; the task may still finish (Poll Result again)")
        raise
    journal_outcome(journal, prediction)  # completed: reusable by id for 7 days
    return prediction


def _history_of(journal: Journal | None) -> Callable[[str], Sequence[float]] | None:
    """Past inference times per model from the journal (the poller's plan), if there is one."""
    return journal.inference_times if journal is not None else None


def fraction_for(prediction: Prediction, elapsed_s: float) -> float:
    if prediction.is_completed:
        return 0.95
    if prediction.status in QUEUED_STATUSES:
        return 0.05
    return 0.1 + 0.85 * (1.0 - math.exp(-elapsed_s / _TYPICAL_INFERENCE_S))


def status_line(prediction: Prediction, elapsed_s: float) -> str:
    """``processing · 12s · task 1a2b3c4d…``; a task WaveSpeed holds back (over the account's
    concurrency limit, status ``created``) reads "queued at WaveSpeed", not "processing"."""
    status = "queued at WaveSpeed" if prediction.status in QUEUED_STATUSES else prediction.status
    return f"{status} · {elapsed_s:.0f}s · task {short_id(prediction.id)}"


def fetch_images(prediction: Prediction, context: TaskContext, *, deadline: float | None = None) -> Any:
    """Download and decode all outputs of a completed task into one IMAGE tensor; blocks. A corrupt
    file is fetched once more before giving up.

    The number of outputs is checked before anything is downloaded; a memory refusal
    (OutputsTooLargeError) is final: downloading again would give the same sizes. A file that is
    not an image WaveSpeed serves (UnsupportedFormatError: never decoded) is fetched once more like
    a broken one (a CDN's error page passes), then refused. Downloads and decoding end by ``deadline`` (the
    caller's, ``time.monotonic()``; at most DOWNLOAD_BUDGET_S from now) and on Cancel, even while a
    decode runs in C (decode_before)."""
    from ..images.batch_plan import OutputsTooLargeError, check_output_count, images_to_tensor
    from ..images.decode_guard import decode_before

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
    count = len(prediction.outputs)
    context.status.set(
        0.96, f"downloading {count} image{'s' if count != 1 else ''} · task {prediction.id[:8]}…"
    )
    client = accounts.account_client(context)
    for attempt in (1, 2):
        blobs = _download_all(client, prediction.outputs, context.cancel, prediction.id, end)
        try:
            decode = partial(images_to_tensor, blobs)
            return decode_before(decode, deadline=end, cancel=context.cancel, request_id=prediction.id)
        except OutputsTooLargeError as exc:
            raise _unusable(prediction, exc) from None
        except E.ImageDecodeError as exc:  # a file not whole, or not an image WaveSpeed serves
            if attempt == 2:
                raise _unusable(prediction, exc) from None
    raise AssertionError("unreachable")


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
    """The error the fetch stops with: the task, what was wrong, and where its outputs are.
    Poll Result's image_urls output is never produced then, so the error carries the URLs (the line
    lists them when they fit whole, else names the places that keep them); polling again would only
    fail the same way."""
    from ..images.batch_plan import OutputsTooLargeError
    from ..images.codec import UnsupportedFormatError

    urls = prediction.output_urls
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
