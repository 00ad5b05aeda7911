"""FLUX.1 Kontext [pro] through the paid path, as data: the same path as [max], its own row of the table.

A [pro] request is POSTed to its own model, journaled at $0.04, booked at $0.04 against the session
budget (and a batch of them priced at $0.04 each before anything is sent), reused by an identical
re-queue without a second charge, and refused before any request when its guidance is outside its
range. The emulator (its own registry, with the [pro] models) answers over real sockets.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulator import Emulator

PRO_T2I = "wavespeed-ai/flux-kontext-pro/text-to-image"
PRO_EDIT = "wavespeed-ai/flux-kontext-pro"


def _request(pack: ModuleType, model: str = PRO_T2I, **values: Any) -> Any:
    return pack.wavespeed.KontextRequest(model, **{"prompt": "a pro fox", "seed": 5, **values})


class _Shown:
    """A status line that keeps every text it was given."""

    def __init__(self) -> None:
        self.request_id: str | None = None
        self.texts: list[str] = []

    def set(self, fraction: float, text: str | None = None) -> None:
        if text:
            self.texts.append(text)


def _submit(pack: ModuleType, request: Any, status: _Shown | None = None) -> Any:
    context = pack.wavespeed.tasks.context.TaskContext(status=status or _Shown())
    return pack.wavespeed.tasks.paid.submit.submit_task(request, context)


def test_a_pro_task_is_posted_to_its_model_and_journaled_and_booked_at_its_price(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = _Shown()
    handle = _submit(pack, _request(pack), status)
    shown = status.texts
    (post,) = [r for r in pack_env.requests if r.route == "submit"]
    assert post.path == f"/api/v3/{PRO_T2I}"
    assert handle.price_usd == 0.04 and handle.model == PRO_T2I
    record = pack.wavespeed.tasks.journals.current_journal().get(handle.request_id)
    assert record is not None and record.price_usd == 0.04 and record.model == PRO_T2I
    assert pack.wavespeed.tasks.paid.payment.SESSION_SPEND.spent_usd == 0.04
    assert any("$0.04" in line and "$0.08" not in line for line in shown), shown

    again = _submit(pack, _request(pack))  # identical inputs, fixed seed: reused, no charge
    assert again.request_id == handle.request_id and again.price_usd == 0.0 and pack_env.submissions == 1
    other = _submit(pack, _request(pack, model="wavespeed-ai/flux-kontext-max/text-to-image"))
    assert other.request_id != handle.request_id and pack_env.submissions == 2  # [max] is another task


def test_the_session_budget_counts_pro_at_its_price(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = pack.wavespeed.core.errors
    monkeypatch.setenv("WAVESPEED_SESSION_BUDGET_USD", "0.10")
    _submit(pack, _request(pack, seed=1))
    _submit(pack, _request(pack, seed=2))  # $0.08 of $0.10: a [max] task would not have fitted
    with pytest.raises(errors.BudgetExceededError) as caught:
        _submit(pack, _request(pack, seed=3))
    assert str(caught.value) == (
        "This task ($0.04) would bring this session's WaveSpeed spend to $0.12, over the $0.10 budget "
        "(WAVESPEED_SESSION_BUDGET_USD): raise the budget or restart ComfyUI to reset it."
    )
    assert pack_env.submissions == 2


def test_a_batch_of_pro_tasks_is_priced_whole_before_anything_is_sent(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    afford = pack.wavespeed.tasks.paid.payment.afford
    requests = [_request(pack, seed=s) for s in (1, 2, 3)]
    assert afford(requests) == pytest.approx(0.12)
    monkeypatch.setenv("WAVESPEED_SESSION_BUDGET_USD", "0.10")
    with pytest.raises(pack.wavespeed.core.errors.BudgetExceededError, match=r"costs \$0.12 \(3 images\)"):
        afford(requests)
    assert pack_env.requests == []


def test_pro_edit_guidance_over_ten_is_refused_before_any_request(
    pack: ModuleType, pack_env: Emulator, journal_dir: Path
) -> None:
    request = _request(pack, PRO_EDIT, guidance_scale=12.0, image="https://cdn.example/a.png")
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as info:
        _submit(pack, request)
    assert str(info.value) == (
        "guidance_scale 12.0 is out of range for FLUX.1 Kontext [pro] edit: use 1.0..10.0 (default 3.5)."
    )
    assert pack_env.requests == [] and pack_env.submissions == 0
