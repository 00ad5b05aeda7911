"""The old home of the request and reply types, kept so callers that import it keep working.

The request (model ids, limits, prices, validation) is in kontext_request.py; the typed replies
(Prediction, HistoryItem, UploadReply, Balance) are in reply_types.py. New code imports those;
net/client.py still imports this path (it is being split elsewhere; drop this module after).
"""

from __future__ import annotations

from .kontext_request import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    GUIDANCE_DEFAULT,
    GUIDANCE_MAX,
    GUIDANCE_MIN,
    MAX_PROMPT_CHARS,
    MAX_REFERENCE_IMAGES,
    MODEL_EDIT,
    MODEL_MULTI,
    MODEL_TEXT_TO_IMAGE,
    PRICE_PER_IMAGE_USD,
    PRICES_READ_ON,
    SEED_MAX,
    SEED_MIN,
    KontextRequest,
    price_of,
)
from .reply_types import MODERATION_CODE, SYNC_TIMEOUT_CODE, Balance, HistoryItem, Prediction, UploadReply

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_ASPECT_RATIO",
    "GUIDANCE_DEFAULT",
    "GUIDANCE_MAX",
    "GUIDANCE_MIN",
    "MAX_PROMPT_CHARS",
    "MAX_REFERENCE_IMAGES",
    "MODEL_EDIT",
    "MODEL_MULTI",
    "MODEL_TEXT_TO_IMAGE",
    "MODERATION_CODE",
    "PRICES_READ_ON",
    "PRICE_PER_IMAGE_USD",
    "SEED_MAX",
    "SEED_MIN",
    "SYNC_TIMEOUT_CODE",
    "Balance",
    "HistoryItem",
    "KontextRequest",
    "Prediction",
    "UploadReply",
    "price_of",
]
