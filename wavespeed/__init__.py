"""The WaveSpeed layer: everything the node layer uses, by name, in one place (the facade).

Pure Python, no ComfyUI. The work lives in subpackages by job, each importing only those below it:
``core`` (errors, key redaction, shared names) at the bottom; ``settings`` (key, base URL and
the addresses it allows, numbers from the environment, session budget); ``api`` (the API's shapes:
the table of models and body parameters, the Kontext request, replies) and ``images`` (codec, batch plan); ``net`` (HTTP client, uploads,
downloads); ``journal`` (the SQLite task journal, single-flight, history search) and ``limits``
(submit scheduler, poller) at the top. ``nodes/`` imports from here only; tests/tooling/test_layout.py holds both rules. A name loads
its module on first use (PEP 562), so the pack's import stays light: ``requests`` and torch come in
only when a node first needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import body_params as body_params, models as models
    from .api.kontext_request import KontextRequest as KontextRequest
    from .api.prompt_text import (
        BLANKS as BLANKS,
        LINE_BREAK as LINE_BREAK,
        NOT_BLANK as NOT_BLANK,
        prompt_lines as prompt_lines,
    )
    from .api.reply_types import Prediction as Prediction
    from .core import errors as errors
    from .core.errors import CancelledError as CancelledError, InvalidRequestError as InvalidRequestError
    from .core.vocabulary import (
        QUEUED_STATUSES as QUEUED_STATUSES,
        CancelCheck as CancelCheck,
        check_request_id as check_request_id,
    )
    from .images.batch_plan import (
        OutputsTooLargeError as OutputsTooLargeError,
        check_output_count as check_output_count,
        images_to_tensor as images_to_tensor,
        plan_batch as plan_batch,
    )
    from .images.codec import UnsupportedFormatError as UnsupportedFormatError
    from .images.decode_guard import decode_before as decode_before
    from .journal.history_search import Unconfirmed as Unconfirmed, find_submitted as find_submitted
    from .journal.singleflight import (
        LEASES as LEASES,
        STATE_UNCERTAIN as STATE_UNCERTAIN,
        Flights as Flights,
        acquire as acquire,
        clock_text as clock_text,
        interrupted_message as interrupted_message,
        new_intent as new_intent,
        owner_alive as owner_alive,
    )
    from .journal.sqlite_file import journal_failure as journal_failure
    from .journal.task_journal import (
        STATUS_COMPLETED as STATUS_COMPLETED,
        STATUS_EXPIRED as STATUS_EXPIRED,
        STATUS_FAILED as STATUS_FAILED,
        STATUS_IN_FLIGHT as STATUS_IN_FLIGHT,
        Intent as Intent,
        Journal as Journal,
        JournalError as JournalError,
        TaskRecord as TaskRecord,
        TaskTakenError as TaskTakenError,
        default_journal_dir as default_journal_dir,
        params_hash as params_hash,
    )
    from .limits.poll_book import budget_from_env as budget_from_env
    from .limits.poller import Poller as Poller, account_poller as account_poller
    from .limits.scheduler import SubmitScheduler as SubmitScheduler, scheduler_for as scheduler_for
    from .net.api_session import account_tag_for as account_tag_for
    from .net.client import WaveSpeedClient as WaveSpeedClient
    from .net.connection_check import check_connection as check_connection
    from .net.reference_uploads import (
        CACHE as CACHE,
        PreparedImage as PreparedImage,
        batch_size as batch_size,
        check_size as check_size,
        parse_urls as parse_urls,
        prepare as prepare,
    )
    from .settings.config import load_settings as load_settings
    from .settings.env_numbers import positive_float_from_env as positive_float_from_env
    from .settings.session_budget import (
        SessionSpend as SessionSpend,
        session_budget_usd as session_budget_usd,
    )

_WHERE: dict[str, str] = {
    "errors": "core.errors",
    **dict.fromkeys(("CancelledError", "InvalidRequestError"), "core.errors"),
    "body_params": "api.body_params",
    "models": "api.models",
    "KontextRequest": "api.kontext_request",
    **dict.fromkeys(("BLANKS", "LINE_BREAK", "NOT_BLANK", "prompt_lines"), "api.prompt_text"),
    **dict.fromkeys(("Prediction",), "api.reply_types"),
    **dict.fromkeys(("CancelCheck", "QUEUED_STATUSES", "check_request_id"), "core.vocabulary"),
    **dict.fromkeys(
        ("check_output_count", "images_to_tensor", "OutputsTooLargeError", "plan_batch"), "images.batch_plan"
    ),
    "UnsupportedFormatError": "images.codec",
    "decode_before": "images.decode_guard",
    **dict.fromkeys(("find_submitted", "Unconfirmed"), "journal.history_search"),
    **dict.fromkeys(
        (
            "acquire",
            "clock_text",
            "Flights",
            "interrupted_message",
            "LEASES",
            "new_intent",
            "owner_alive",
            "STATE_UNCERTAIN",
        ),
        "journal.singleflight",
    ),
    **dict.fromkeys(("journal_failure",), "journal.sqlite_file"),
    **dict.fromkeys(
        (
            "default_journal_dir",
            "Intent",
            "Journal",
            "JournalError",
            "params_hash",
            "STATUS_COMPLETED",
            "STATUS_EXPIRED",
            "STATUS_FAILED",
            "STATUS_IN_FLIGHT",
            "TaskRecord",
            "TaskTakenError",
        ),
        "journal.task_journal",
    ),
    **dict.fromkeys(("budget_from_env",), "limits.poll_book"),
    **dict.fromkeys(("Poller", "account_poller"), "limits.poller"),
    "account_tag_for": "net.api_session",
    "check_connection": "net.connection_check",
    **dict.fromkeys(("scheduler_for", "SubmitScheduler"), "limits.scheduler"),
    **dict.fromkeys(("WaveSpeedClient",), "net.client"),
    **dict.fromkeys(
        ("batch_size", "CACHE", "check_size", "parse_urls", "prepare", "PreparedImage"),
        "net.reference_uploads",
    ),
    **dict.fromkeys(("load_settings",), "settings.config"),
    **dict.fromkeys(("positive_float_from_env",), "settings.env_numbers"),
    **dict.fromkeys(("session_budget_usd", "SessionSpend"), "settings.session_budget"),
}


def __getattr__(name: str) -> Any:
    """Load the module that holds ``name`` on first use (``from ..wavespeed import X``)."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{where}", __name__)
    value = module if where.rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(_WHERE)
