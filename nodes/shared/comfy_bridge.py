"""The only place that touches ComfyUI internals: interrupt flag, progress bar, previews, status text.

Every ComfyUI import is lazy and guarded, so the node functions also run outside ComfyUI (tests,
scripts). Outside ComfyUI, ``request_interrupt()`` plays the part of the Cancel button.

Previews (images as they arrive) go through ComfyUI's public V3 progress call,
``ComfyAPISync().execution.set_progress(value, max, node_id, preview_image=...)`` (``comfy_api.latest``:
both supported releases, 0.3.75 and 0.33.0, have it), with an image already within PREVIEW_MAX_PX and
the size limit off: ComfyUI sends it as a preview naming the node, which every supported frontend
(1.32.9, 1.49.6, 1.58.1) asks for. Where a ComfyUI has no such call, or the client did not ask for
previews naming the node (an API script: set_progress would send it none), they go the way KSampler's
do: ``ProgressBar.update_absolute(value, total, ("JPEG", image, None))``. The bar's value stays on
``ProgressBar``: its hook is also where ComfyUI raises Cancel.
The preview is box-filtered straight out of the decoded image into one preview-sized array: no
second full-size copy exists at any time (tests/nodes/shared/test_previews.py measures it).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from ...wavespeed import CancelledError

log = logging.getLogger("wavespeed")

PREVIEW_MAX_PX = 512  # the longer side of a preview; a node shows it at about this size
_local_interrupt = threading.Event()
_epoch_lock = threading.Lock()
_epoch = 0


def _model_management() -> Any:
    try:
        import comfy.model_management as mm
    except Exception:
        return None
    return mm


def request_interrupt() -> None:
    """Outside ComfyUI: behave as if the user pressed Cancel (used by tests and scripts)."""
    _local_interrupt.set()


def clear_interrupt() -> None:
    _local_interrupt.clear()


def current_epoch() -> int:
    """Waits remember the epoch they started in; a Cancel bumps it so every sibling wait stops too
    (ComfyUI clears its flag once the first node raises, which would leave the others running)."""
    return _epoch


def interrupted(since_epoch: int | None = None) -> bool:
    if since_epoch is not None and _epoch != since_epoch:
        return True
    if _local_interrupt.is_set():
        return True
    mm = _model_management()
    return bool(mm is not None and mm.processing_interrupted())


def _bump_epoch() -> None:
    global _epoch
    with _epoch_lock:
        _epoch += 1


def is_interrupt(exc: BaseException) -> bool:
    """True for ComfyUI's InterruptProcessingException (Cancel), wherever it was raised."""
    mm = _model_management()
    interrupt_type = getattr(mm, "InterruptProcessingException", None) if mm is not None else None
    return interrupt_type is not None and isinstance(exc, interrupt_type)


def raise_interrupted(request_id: str | None) -> None:
    """Stop the node the way ComfyUI expects (InterruptProcessingException), naming the task."""
    _bump_epoch()
    hint = (
        f"Cancelled; task {request_id} may still finish and is already paid for: paste this request id "
        "into WaveSpeed Poll Result to fetch it later without a new charge."
        if request_id
        else "Cancelled."
    )
    log.warning("WaveSpeed: %s", hint)
    mm = _model_management()
    if mm is not None and not _local_interrupt.is_set():
        interrupt_type = getattr(mm, "InterruptProcessingException", None)
        if interrupt_type is not None:
            mm.interrupt_current_processing(False)
            raise interrupt_type()
    _local_interrupt.clear()
    raise CancelledError(hint, request_id=request_id)


class NodeProgress:
    """Progress bar and status text of one node; a no-op outside ComfyUI. Call from the event loop."""

    def __init__(self, node_id: str | None, total: int = 100) -> None:
        self.node_id = node_id
        self.total = total
        self._bar: Any = None
        self._last_text: str | None = None
        self._last_value = -1
        if node_id is None:
            return
        try:
            import comfy.utils

            self._bar = comfy.utils.ProgressBar(total, node_id=node_id)
        except Exception:
            self._bar = None

    def update(self, fraction: float, text: str | None = None) -> None:
        value = max(0, min(self.total, int(round(fraction * self.total))))
        # ComfyUI 0.33+ drops an update that follows another (a preview) within 0.1 s and keeps the
        # value it last sent: until that is ours, the same value goes again (the callers repeat it)
        dropped = getattr(self._bar, "_last_sent_value", value) != value
        if self._bar is not None and (value != self._last_value or dropped):
            self._last_value = value
            try:
                self._bar.update_absolute(value, self.total)
            except Exception as exc:
                # ComfyUI's progress hook raises (and clears the flag) when Cancel was pressed:
                # that is the interrupt itself and must propagate. Anything else must never
                # break a paid task.
                if is_interrupt(exc):
                    _bump_epoch()
                    raise
                log.debug("progress bar update failed", exc_info=True)
        if text is not None and text != self._last_text:
            self._last_text = text
            send_status(self.node_id, text)

    def preview(self, image: Any) -> None:
        """Show one decoded image ([H,W,C] or [1,H,W,C], floats in 0..1) on the running node, as
        KSampler shows its steps. A no-op outside ComfyUI; a failure never breaks a paid task,
        but Cancel (raised by ComfyUI's progress hook) propagates as in ``update``."""
        if self._bar is None:
            return
        try:
            picture = preview_image(image)
        except Exception:
            log.debug("preview failed", exc_info=True)
            return
        value = max(0, self._last_value)
        try:
            set_progress = _public_set_progress()
            if set_progress is not None and _client_takes_node_previews():
                set_progress(
                    value, self.total, node_id=self.node_id, preview_image=picture, ignore_size_limit=True
                )
                return
            # max_size None: the picture already fits, and ComfyUI's ImageOps.contain would enlarge it
            self._bar.update_absolute(value, self.total, ("JPEG", picture, None))
        except Exception as exc:
            if is_interrupt(exc):
                _bump_epoch()
                raise
            log.debug("preview update failed", exc_info=True)


_API: list[Any] = []  # ComfyUI's public API (ComfyAPISync), made once


def _public_set_progress() -> Any:
    """``ComfyAPISync().execution.set_progress`` where ComfyUI has it, else None (the fallback path)."""
    if not _API:
        try:
            from comfy_api.latest import ComfyAPISync

            _API.append(ComfyAPISync())
        except Exception:
            _API.append(None)
    execution = getattr(_API[0], "execution", None)
    return getattr(execution, "set_progress", None)


def _client_takes_node_previews() -> bool:
    """Whether the client that queued the prompt asked for previews naming their node (the only kind
    ``set_progress`` sends); False when that cannot be told."""
    try:
        from comfy_api import feature_flags
        from server import PromptServer

        server = PromptServer.instance
        return bool(
            feature_flags.supports_feature(
                server.sockets_metadata, server.client_id, "supports_preview_metadata"
            )
        )
    except Exception:
        return False


def preview_image(image: Any, max_px: int = PREVIEW_MAX_PX) -> Any:
    """A PIL image at most ``max_px`` on its longer side, box-filtered from ``image`` (a torch tensor
    or numpy array [H,W,C] or [1,H,W,C], floats in 0..1; the first three channels are used).

    Sums ``step x step`` strided views of the image (views, not copies) into one preview-sized
    accumulator, so the only new memory is that preview (a 1024x1024 output: 1.5 MB, not 12)."""
    import torch
    from PIL import Image

    pixels = torch.as_tensor(image)  # a numpy array is shared, not copied
    if pixels.ndim == 4:
        pixels = pixels[0]
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise ValueError(f"a preview needs an [H,W,3] image, got shape {tuple(pixels.shape)}")
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    step = max(1, math.ceil(max(height, width) / max_px))
    rows, cols = max(1, height // step), max(1, width // step)
    crop = pixels[: rows * step, : cols * step, :3]
    acc = torch.zeros((rows, cols, 3), dtype=torch.float32)
    for dy in range(min(step, height)):
        for dx in range(min(step, width)):
            acc += crop[dy::step, dx::step]
    acc.mul_(255.0 / (min(step, height) * min(step, width))).clamp_(0, 255).round_()
    return Image.fromarray(acc.to(torch.uint8).numpy(), "RGB")


def send_status(node_id: str | None, text: str) -> None:
    """Status text under the node in the ComfyUI frontend (and a debug log line elsewhere)."""
    log.debug("node %s: %s", node_id, text)
    if node_id is None:
        return
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:
        pass


def user_directory() -> str | None:
    """ComfyUI's user directory (where the task journal lives), or None outside ComfyUI."""
    try:
        import folder_paths

        return str(folder_paths.get_user_directory())
    except Exception:
        return None
