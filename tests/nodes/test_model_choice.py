"""The model choice on Generate, Edit, Multi-Reference and Batch, against the emulator over real sockets.

The ``model`` widget (its options the families' labels in wavespeed/api/models.py) decides where the
node POSTs and what it pays; a node run without it (a workflow saved before it) submits to [max]. A
[pro] edit's guidance outside 1-10 is refused in one line before any upload or request."""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType

import pytest

from emulator import Emulator
from tests.support.node_calls import EDIT_ARGS, call, edit, generate, image, multi

PRO, MAX = "FLUX.1 Kontext [pro]", "FLUX.1 Kontext [max]"


def _posted(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests if r.route == "submit"]


def test_generate_posts_to_the_chosen_model_and_pays_its_price(pack: ModuleType, pack_env: Emulator) -> None:
    task, _ = asyncio.run(generate("a pro lighthouse", model=PRO))
    assert task.model == "wavespeed-ai/flux-kontext-pro/text-to-image" and task.price_usd == 0.04
    task, _ = asyncio.run(generate("a max lighthouse", model=MAX))
    assert task.price_usd == 0.08
    assert _posted(pack_env) == [
        "/api/v3/wavespeed-ai/flux-kontext-pro/text-to-image",
        "/api/v3/wavespeed-ai/flux-kontext-max/text-to-image",
    ]


def test_a_node_run_without_the_model_widget_submits_to_max(pack: ModuleType, pack_env: Emulator) -> None:
    """A workflow saved before the widget existed sends no ``model``: it runs as it always did."""
    task, _ = asyncio.run(generate("an old workflow"))
    assert task.model == "wavespeed-ai/flux-kontext-max/text-to-image" and task.price_usd == 0.08


def test_edit_and_multi_reference_post_to_the_chosen_models(pack: ModuleType, pack_env: Emulator) -> None:
    asyncio.run(edit(image=image(seed=1), model=PRO))
    asyncio.run(multi(image_1=image(seed=2), image_2=image(seed=3), model=PRO))
    assert _posted(pack_env) == [
        "/api/v3/wavespeed-ai/flux-kontext-pro",
        "/api/v3/wavespeed-ai/flux-kontext-pro/multi",
    ]


def test_a_pro_edit_refuses_guidance_over_ten_in_one_line_before_any_upload(
    pack: ModuleType, pack_env: Emulator
) -> None:
    with pytest.raises(pack.wavespeed.core.errors.InvalidRequestError) as info:
        asyncio.run(edit(image=image(seed=4), model=PRO, guidance_scale=12.0))
    assert str(info.value).splitlines() == [
        "guidance_scale 12.0 is out of range for FLUX.1 Kontext [pro] edit: use 1.0..10.0 (default 3.5)."
    ]
    assert pack_env.requests == [] and pack_env.uploads == []
    task, _ = asyncio.run(edit(image=image(seed=4), model=MAX, guidance_scale=12.0))
    assert task.price_usd == 0.08  # [max] takes 1-20


def test_an_unknown_model_is_refused_before_any_request(pack: ModuleType, pack_env: Emulator) -> None:
    with pytest.raises(
        pack.wavespeed.core.errors.InvalidRequestError, match=r"^model '\[ultra\]' is not one of"
    ):
        asyncio.run(generate(model="[ultra]"))
    assert pack_env.requests == []


def test_a_pro_batch_is_priced_and_posted_as_pro(
    pack_env: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wavespeed")
    args = {**EDIT_ARGS, "aspect_ratio": "1:1"}
    del args["sync_mode"]
    images, _urls, ids, failures = asyncio.run(
        call("FluxKontextMaxBatch", "a red fox\na blue jay", 2, timeout_s=60, model=PRO, **args)
    )
    assert images.shape[0] == 4 and failures == "" and len(ids.splitlines()) == 4
    assert "batch of 4 · $0.16" in caplog.text  # the whole price, at [pro]'s, before anything was spent
    assert set(_posted(pack_env)) == {"/api/v3/wavespeed-ai/flux-kontext-pro/text-to-image"}
