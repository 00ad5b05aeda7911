"""The WaveSpeed layer: everything the node layer uses, by name, in one place (the facade).

Pure Python, no ComfyUI. The work lives in subpackages by job, each importing only those below it:
``core`` (errors, key redaction, shared names) at the bottom; ``settings`` (key, base URL and
the addresses it allows, numbers from the environment, session budget); ``api`` (the API's shapes:
the Kontext request, replies) and ``images`` (codec, batch plan); ``net`` (HTTP client, uploads,
downloads); ``journal`` (the SQLite task journal, single-flight, history search) and ``limits``
(submit scheduler, poller) at the top. ``nodes/`` imports from here only; tests/tooling/test_layout.py holds both rules. A name loads
its module on first use (PEP 562), so the pack's import stays light: ``requests`` and torch come in
only when a node first needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api.kontext_request import (
        ASPECT_RATIOS as ASPECT_RATIOS,
        DEFAULT_ASPECT_RATIO as DEFAULT_ASPECT_RATIO,
        GUIDANCE_DEFAULT as GUIDANCE_DEFAULT,
        GUIDANCE_MAX as GUIDANCE_MAX,
        GUIDANCE_MIN as GUIDANCE_MIN,
        MAX_REFERENCE_IMAGES as MAX_REFERENCE_IMAGES,
        MODEL_EDIT as MODEL_EDIT,
        MODEL_MULTI as MODEL_MULTI,
        MODEL_TEXT_TO_IMAGE as MODEL_TEXT_TO_IMAGE,
        PRICE_PER_IMAGE_USD as PRICE_PER_IMAGE_USD,
        SEED_MAX as SEED_MAX,
        SEED_MIN as SEED_MIN,
        KontextRequest as KontextRequest,
    )
    from .api.prompt_text import (
        BLANKS as BLANKS,
        LINE_BREAK as LINE_BREAK,
        NOT_BLANK as NOT_BLANK,
        prompt_lines as prompt_lines,
    )
    from .api.reply_types import Prediction as Prediction
    from .core import errors as errors
    from .core.errors import CancelledError as CancelledError, InvalidRequestError as InvalidRequestError
    from .journal.task_journal import (
        STATUS_COMPLETED as STATUS_COMPLETED,
        STATUS_FAILED as STATUS_FAILED,
        STATUS_IN_FLIGHT as STATUS_IN_FLIGHT,
        TaskRecord as TaskRecord,
    )
    from .net.connection_check import check_connection as check_connection
    from .net.reference_uploads import (
        CACHE as CACHE,
        PreparedImage as PreparedImage,
        batch_size as batch_size,
        check_size as check_size,
        parse_urls as parse_urls,
        prepare as prepare,
    )
    from .tasks.accounts import account_client as account_client
    from .tasks.context import CancelLatch as CancelLatch, TaskContext as TaskContext
    from .tasks.handle import TaskHandle as TaskHandle
    from .tasks.journals import current_journal as current_journal
    from .tasks.paid.payment import afford as afford
    from .tasks.paid.submit import submit_task as submit_task
    from .tasks.results import fetch_images as fetch_images, wait_for_task as wait_for_task

_WHERE: dict[str, str] = {
    "ASPECT_RATIOS": "api.kontext_request",
    "DEFAULT_ASPECT_RATIO": "api.kontext_request",
    "GUIDANCE_DEFAULT": "api.kontext_request",
    "GUIDANCE_MAX": "api.kontext_request",
    "GUIDANCE_MIN": "api.kontext_request",
    "KontextRequest": "api.kontext_request",
    "MAX_REFERENCE_IMAGES": "api.kontext_request",
    "MODEL_EDIT": "api.kontext_request",
    "MODEL_MULTI": "api.kontext_request",
    "MODEL_TEXT_TO_IMAGE": "api.kontext_request",
    "PRICE_PER_IMAGE_USD": "api.kontext_request",
    "SEED_MAX": "api.kontext_request",
    "SEED_MIN": "api.kontext_request",
    "BLANKS": "api.prompt_text",
    "LINE_BREAK": "api.prompt_text",
    "NOT_BLANK": "api.prompt_text",
    "prompt_lines": "api.prompt_text",
    "Prediction": "api.reply_types",
    "CancelledError": "core.errors",
    "InvalidRequestError": "core.errors",
    "errors": "core.errors",
    "STATUS_COMPLETED": "journal.task_journal",
    "STATUS_FAILED": "journal.task_journal",
    "STATUS_IN_FLIGHT": "journal.task_journal",
    "TaskRecord": "journal.task_journal",
    "check_connection": "net.connection_check",
    "CACHE": "net.reference_uploads",
    "PreparedImage": "net.reference_uploads",
    "batch_size": "net.reference_uploads",
    "check_size": "net.reference_uploads",
    "parse_urls": "net.reference_uploads",
    "prepare": "net.reference_uploads",
    "account_client": "tasks.accounts",
    "CancelLatch": "tasks.context",
    "TaskContext": "tasks.context",
    "TaskHandle": "tasks.handle",
    "current_journal": "tasks.journals",
    "afford": "tasks.paid.payment",
    "submit_task": "tasks.paid.submit",
    "fetch_images": "tasks.results",
    "wait_for_task": "tasks.results",
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
