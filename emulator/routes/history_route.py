"""The history call (``POST /api/v3/predictions``): its query, read as the docs describe it.

WAVESPEED_API.md 12.1: ``page`` and ``page_size`` (1..100) are required; ``model``, ``status``
("completed", "failed", "processing"), ``created_after`` / ``created_before`` (ISO 8601) filter;
the reply is ``{page, total, items}``, newest first; ``include_inputs: true`` asks for each item's
inputs (13.2: an official CLI revision sent it; what an item then carries is the ``history_echo``
switch). ``strict=False`` keeps the older, kinder
reading (page 1 and 20 items when absent).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..behaviour.model_registry import ValidationError
from .echo import parse_time

PAGE_SIZE_MAX = 100


@dataclass(frozen=True)
class HistoryQuery:
    """What one history call asks for (times as epoch seconds)."""

    page: int
    page_size: int
    model: str | None = None
    status: str | None = None
    after: float | None = None
    before: float | None = None
    include_inputs: bool = False  # items carry their inputs only when asked (the "asked" echo)

    def keeps(self, model: str, status: str, created_s: float) -> bool:
        """Whether an item with these fields is in the filtered list."""
        return (
            (self.model is None or model == self.model)
            and (self.status is None or status == self.status)
            and (self.after is None or created_s >= self.after)
            and (self.before is None or created_s <= self.before)
        )


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_query(body: object, *, strict: bool) -> HistoryQuery:
    """The query of a history call. Raises ValidationError (a 400) naming what is wrong."""
    if not isinstance(body, dict):
        raise ValidationError("request body must be a JSON object")
    if strict and ("page" not in body or "page_size" not in body):
        raise ValidationError("page and page_size are required (page >= 1, page_size 1..100)")
    page, size = body.get("page", 1), body.get("page_size", 20)
    if not _whole(page) or not _whole(size) or page < 1 or not 1 <= size <= PAGE_SIZE_MAX:
        raise ValidationError("page must be >= 1 and page_size between 1 and 100")
    times: dict[str, float | None] = {}
    for name in ("created_after", "created_before"):
        value = body.get(name)
        times[name] = None if value is None else parse_time(value)
        if value is not None and times[name] is None:
            raise ValidationError(f"{name} must be an ISO 8601 time such as 2023-10-01T00:00:00Z")
    model, status = body.get("model"), body.get("status")
    return HistoryQuery(
        page=page,
        page_size=size,
        model=model if isinstance(model, str) and model else None,
        status=status if isinstance(status, str) and status else None,
        after=times["created_after"],
        before=times["created_before"],
        include_inputs=body.get("include_inputs") is True,
    )
