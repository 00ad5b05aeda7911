"""WaveSpeed Recent Tasks: the task journal as a node, to recover paid results after a crash or restart.

Pick a task by position (0 = newest) among those matching ``status_filter``; its request id goes
into WaveSpeed Poll Result's ``request_id`` input, which fetches it without a new charge. The
listing output shows what is in the journal (connect it to any text display node).
"""

from __future__ import annotations

import time
from typing import Any

from comfy_api.latest import io

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
from .shared.widgets import schema

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


class WaveSpeedRecentTasks(io.ComfyNode):  # type: ignore[misc]  # comfy_api is untyped
    """Free: no price badge."""

    @classmethod
    def define_schema(cls) -> Any:
        return schema(
            "WaveSpeedRecentTasks",
            "WaveSpeed Recent Tasks",
            "List the WaveSpeed tasks this machine submitted (the task journal, kept 7 days like the API's "
            "results) and pick one by position. Connect request_id to WaveSpeed Poll Result to fetch a paid "
            "result again, e.g. after a crash, a restart, a timeout or Cancel: no new charge.",
            [
                io.Int.Input(
                    "index",
                    display_name="pick (0 = newest)",
                    default=0,
                    min=0,
                    max=MAX_LISTED - 1,
                    tooltip="Which task: 0 = the newest matching status_filter, 1 = the one before, and so "
                    "on (see the tasks output).",
                ),
                io.Combo.Input(
                    "status_filter",
                    display_name="show",
                    options=list(STATUS_FILTERS),
                    default=FILTER_ALL,
                    tooltip="'in flight' lists paid tasks whose result was never fetched (interrupted, "
                    "timed out, crashed): the ones to recover.",
                ),
            ],
            [
                io.String.Output(
                    display_name="request_id",
                    tooltip="The chosen task's request id: connect it to WaveSpeed Poll Result's request_id input.",
                ),
                io.String.Output(
                    display_name="tasks",
                    tooltip="The recent tasks, one per line (id · status · age · price · prompt); ▶ marks "
                    "the chosen one.",
                ),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, **_: Any) -> Any:
        """The journal changes behind ComfyUI's back: read it on every run."""
        return float("nan")

    @classmethod
    async def execute(cls, index: int, status_filter: str) -> Any:
        unique_id = cls.hidden.unique_id
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
        return io.NodeOutput(record.request_id, text)
