"""A submitted task, as a submit hands it on (to a wait, to ComfyUI's Poll Result node), and its id
as status lines show it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..api.reply_types import Prediction


@dataclass(frozen=True)
class TaskHandle:
    """Everything needed to finish (or later recover) a submitted task. Never holds the API key."""

    request_id: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    price_usd: float = 0.0
    submitted_at: float = field(default_factory=time.time)
    prediction: Prediction | None = None  # set when sync mode already returned the final result

    def __repr__(self) -> str:  # shows up in ComfyUI logs; keep it short
        return f"TaskHandle({self.request_id}, {self.model})"


def short_id(request_id: str) -> str:
    """A task id as status lines show it (its first 8 characters): the full id is in the node's
    outputs, the journal and the error texts."""
    return f"{request_id[:8]}…" if len(request_id) > 9 else request_id
