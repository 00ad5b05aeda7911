"""Submitting a Kontext task from any node: validate, then POST once, then hand back a TaskHandle.

Shared by the text-to-image and edit nodes so that validation-before-spend, price display and
(sync mode) the already-finished result work the same way everywhere.
"""

from __future__ import annotations

from ..wavespeed.errors import InvalidRequestError
from ..wavespeed.models import KontextRequest, ValidationError
from . import comfy_bridge as bridge
from .runtime import CancelCheck, Watch, get_client, run_blocking
from .task import TaskHandle


def validated(request: KontextRequest) -> KontextRequest:
    """Local validation, as a typed one-line error, before any key lookup or HTTP request."""
    try:
        return request.validate()
    except ValidationError as exc:
        raise InvalidRequestError(str(exc)) from None


async def submit_task(request: KontextRequest, node_id: str | None) -> TaskHandle:
    validated(request)
    client = get_client()  # raises ConfigError (missing key) before anything is sent
    price = request.price_usd
    progress = bridge.NodeProgress(node_id)
    watch = Watch(progress)
    mode = "sync" if request.enable_sync_mode else "async"
    watch.set(0.02, f"submitting ({mode}) · ${price:.2f}")
    watch.publish()

    def work(cancel: CancelCheck) -> TaskHandle:
        prediction = client.submit(request, cancel=cancel)
        final = prediction if prediction.is_terminal else None
        return TaskHandle(
            request_id=prediction.id,
            model=request.model,
            params=request.payload(),
            price_usd=price,
            prediction=final,
        )

    handle = await run_blocking(work, watch=watch)
    state = "done" if handle.prediction is not None else "submitted"
    progress.update(1.0, f"{state} · ${price:.2f} · task {handle.request_id}")
    return handle
