"""The WaveSpeed layer: everything the node layer uses, by name, in one place (the facade).

Pure Python, no ComfyUI. The work lives in subpackages by job, each importing only those below it:
``core`` (errors, key redaction, shared names) at the bottom; ``settings`` (key, base URL and
the addresses it allows, numbers from the environment, session budget); ``api`` (the API's shapes:
the table of models and body parameters, the Kontext request, replies) and ``images`` (codec,
batch plan); ``net`` (HTTP client, uploads, downloads); ``journal`` (the SQLite task journal,
single-flight, history search) and ``limits`` (submit scheduler, poller); ``tasks`` (a submit, a
wait, a fetch: one blocking call each) at the top. ``nodes/`` imports from here only;
tests/tooling/test_layout.py holds both rules.

Each name is written once, in the block below: the type checker reads it as imports, and at run
time ``__getattr__`` reads the same block (by ``ast``) and loads a name's module on its first use
(PEP 562), so the pack's import stays light: ``requests`` and torch come in only when a node first
needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import body_params as body_params, models as models, prompt_text as prompt_text
    from .api.kontext_request import KontextRequest as KontextRequest
    from .api.reply_types import Prediction as Prediction
    from .core import errors as errors
    from .core.errors import CancelledError as CancelledError, InvalidRequestError as InvalidRequestError
    from .journal.task_journal import (
        STATUS_COMPLETED as STATUS_COMPLETED,
        STATUS_FAILED as STATUS_FAILED,
        STATUS_IN_FLIGHT as STATUS_IN_FLIGHT,
        TaskRecord as TaskRecord,
    )
    from .net.reference_uploads import (
        CACHE as CACHE,
        PreparedImage as PreparedImage,
        batch_size as batch_size,
        check_size as check_size,
        parse_urls as parse_urls,
        prepare as prepare,
    )
    from .tasks.accounts import account_client as account_client
    from .tasks.connection_check import check_connection as check_connection
    from .tasks.context import CancelLatch as CancelLatch, TaskContext as TaskContext
    from .tasks.handle import TaskHandle as TaskHandle
    from .tasks.journals import current_journal as current_journal
    from .tasks.paid.payment import afford as afford
    from .tasks.paid.submit import submit_task as submit_task
    from .tasks.results import fetch_images as fetch_images, wait_for_task as wait_for_task


_WHERE: dict[str, tuple[str, str]] = {}


def _names() -> dict[str, tuple[str, str]]:
    """Each name of the block above -> (its module, its name there), read once from this file's
    source on the first name asked for (so the import itself parses nothing)."""
    if not _WHERE:
        import ast

        with open(__file__, encoding="utf-8") as source:
            tree = ast.parse(source.read())
        block = next(node for node in tree.body if isinstance(node, ast.If))
        _WHERE.update(
            (alias.asname or alias.name, (f".{node.module}", alias.name))
            for node in block.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        )
    return _WHERE


def __getattr__(name: str) -> Any:
    """Load the module that holds ``name`` on first use (``from ..wavespeed import X``)."""
    where = _names().get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = where
    module = importlib.import_module(module_name, __name__)
    try:
        value = getattr(module, attribute)
    except AttributeError:  # a submodule its package has not imported yet
        value = importlib.import_module(f"{module_name}.{attribute}", __name__)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(_names())
