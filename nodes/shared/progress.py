"""Turn a task's status and elapsed time into a progress fraction and a status line.

The API reports no percentage, so the bar advances on a time curve that approaches, but never
reaches, 95 % while the task runs; completion and download fill the rest.
"""

from __future__ import annotations

import math

from ...wavespeed import QUEUED_STATUSES, Prediction, short_id

_TYPICAL_INFERENCE_S = 12.0


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
