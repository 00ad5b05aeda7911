"""WaveSpeed Recent Tasks: the task journal as a node, to recover paid results after a crash or restart.

Pick a task by position (0 = newest) among those matching ``status_filter``; its request id goes
into WaveSpeed Poll Result's ``request_id`` input, which fetches it without a new charge. The
listing output shows what is in the journal (connect it to any text display node).
"""

from __future__ import annotations

import time
from typing import Any

from ..wavespeed import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_IN_FLIGHT,
    InvalidRequestError,
    TaskRecord,
    current_journal,
)
from .shared import comfy_bridge as bridge
from .shared.runtime import submit_blocking

FILTER_ALL, FILTER_IN_FLIGHT, FILTER_COMPLETED, FILTER_FAILED = "all", "in flight", "completed", "failed"
STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    FILTER_ALL: None,
    FILTER_IN_FLIGHT: (STATUS_IN_FLIGHT,),
    FILTER_COMPLETED: (STATUS_COMPLETED,),
    FILTER_FAILED: (STATUS_FAILED,),
}
MAX_LISTED = 200


def age_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.1f}d ago"


def describe(record: TaskRecord, now: float) -> str:
    """One line: id · status · age · price · prompt snippet (the full id, so it can be copied)."""
    status = record.status.replace("_", " ")
    if record.status == STATUS_IN_FLIGHT and record.server_status:
        status += f" ({record.server_status})"
    price = f"${record.price_usd:.2f}" if record.price_usd else "$0"
    snippet = record.prompt_snippet() or "(no prompt)"
    return f"{record.request_id} · {status} · {age_text(now - record.submitted_at)} · {price} · {snippet}"


def listing(records: list[TaskRecord], selected: int | None, header: str, now: float) -> str:
    lines = [header]
    for i, record in enumerate(records):
        mark = "▶" if i == selected else " "
        lines.append(f"{mark}{i:>3}  {describe(record, now)}")
        if record.status == STATUS_FAILED and record.error:
            lines.append(f"       error: {record.error[:160]}")
    if not records:
        lines.append("  (no tasks)")
    return "\n".join(lines)


class WaveSpeedRecentTasks:
    """The Recent Tasks node's work (declared to ComfyUI in nodes/v3/task_nodes.py)."""

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> Any:
        """The journal changes behind ComfyUI's back: read it on every run."""
        return float("nan")

    async def pick(self, index: int, status_filter: str, unique_id: str | None = None) -> tuple[str, str]:
        if status_filter not in STATUS_FILTERS:
            raise InvalidRequestError(
                f"status_filter {status_filter!r} is not one of {', '.join(STATUS_FILTERS)}."
            )
        journal = current_journal(bridge.user_directory())
        statuses = STATUS_FILTERS[status_filter]
        records = await submit_blocking(journal.recent, MAX_LISTED, statuses)
        now = time.time()
        what = "tasks" if status_filter == FILTER_ALL else f"{status_filter} tasks"
        selected = index if 0 <= index < len(records) else None
        text = listing(records, selected, f"WaveSpeed journal {journal.label}: {len(records)} {what}", now)
        if selected is None:
            bridge.send_status(unique_id, f"no task #{index} ({len(records)} {what})")
            raise InvalidRequestError(
                f"WaveSpeed Recent Tasks: there is no task #{index} among the {len(records)} {what} in "
                f"the journal ({journal.label}): lower index or change status_filter."
            )
        record = records[selected]
        bridge.send_status(unique_id, describe(record, now))
        return (record.request_id, text)
