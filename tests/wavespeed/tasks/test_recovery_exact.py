"""Recovery of an interrupted submit matches exactly or not at all: the intent keeps the payload
that was sent (this submit's uploaded image URLs included), a candidate matches only on those
values, a task journaled for other inputs is never taken, and no journal write replaces another
task's row. The edit nodes against the emulator over real sockets, with its default (least kind)
echo: the history carries the inputs only when asked with ``include_inputs``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator
from tests.support.node_calls import edit, image, restart_pack

pytestmark = pytest.mark.usefixtures("fresh_upload_cache")

PROMPT = "make it night"


def _edit(pack: ModuleType, picture: Any) -> Any:
    task, _ = asyncio.run(edit(PROMPT, image=picture, seed=5, unique_id="9"))
    return task


def _row_identity(pack: ModuleType, request_id: str) -> str:
    record = pack.wavespeed.tasks.journals.current_journal().get(request_id)
    assert record is not None
    return str(record.params_hash)


@pytest.mark.parametrize("restart", [False, True], ids=["same-process", "after-restart"])
def test_an_interrupted_edit_is_never_handed_another_images_task(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, restart: bool
) -> None:
    """Edit X is accepted and its reply lost; Edit Y (same prompt and seed) is paid; re-queuing X
    gets X's own task (not Y's), Y's row keeps Y's identity, and re-queuing Y pays nothing."""
    errors = pack.wavespeed.core.errors
    x, y = image(seed=1), image(seed=2)
    pack_env.inject("submit", "reset_after_accept")
    with pytest.raises(errors.SubmitUncertainError):
        _edit(pack, x)
    (x_task,) = pack_env.history()
    y_first = _edit(pack, y)
    y_identity = _row_identity(pack, y_first.request_id)
    assert pack_env.submissions == 2
    if restart:  # a new process: the image is uploaded again, to a new URL
        restart_pack(pack)
        pack.wavespeed.net.reference_uploads.CACHE.clear()

    again_x = _edit(pack, x)
    assert again_x.request_id == x_task.id and again_x.price_usd == 0.0
    assert _row_identity(pack, y_first.request_id) == y_identity  # Y's row is still Y's
    again_y = _edit(pack, y)
    assert again_y.request_id == y_first.request_id and again_y.price_usd == 0.0
    assert pack_env.submissions == 2
