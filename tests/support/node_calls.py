"""Calling the pack's nodes as ComfyUI does, in-process: each node's ``execute`` on a clone of its
class holding the hidden inputs (scripts/pack_loader.py ``run_node``, as ComfyUI 0.33.0 runs a V3
node), the widget values a user leaves at their defaults, and exact 8-bit IMAGE tensors."""

from __future__ import annotations

from collections.abc import Coroutine
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from scripts.pack_loader import call, load_nodes

PROMPT = "a lighthouse at dusk"
GENERATE_ARGS: dict[str, Any] = {"seed": 7, "guidance_scale": 3.5, "aspect_ratio": "1:1", "sync_mode": False}
EDIT_ARGS: dict[str, Any] = {**GENERATE_ARGS, "aspect_ratio": "match input"}


def node(name: str) -> Any:
    """The node class ComfyUI registers under ``name`` (its schema, cache rule and ``execute``)."""
    return load_nodes()[name]


def image(
    height: int = 96, width: int = 128, *, seed: int = 0, batch: int = 1, channels: int = 3
) -> torch.Tensor:
    """An exact 8-bit picture as a ComfyUI IMAGE (values k / 255)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(batch, height, width, channels), dtype=np.uint8)
    return torch.from_numpy(arr.astype(np.float32) / 255.0)


def generate(prompt: str = PROMPT, **kw: Any) -> Coroutine[Any, Any, Any]:
    """Generate's call (a coroutine: ``(task, request_id)``); ``kw`` overrides the widget values."""
    return call("FluxKontextMaxGenerate", prompt, **{**GENERATE_ARGS, **kw})


def edit(prompt: str = "invert it", **kw: Any) -> Coroutine[Any, Any, Any]:
    """Edit's call; pass ``image=`` and/or ``image_url=``."""
    return call("FluxKontextMaxEdit", prompt, **{**EDIT_ARGS, **kw})


def multi(prompt: str = "combine them", **kw: Any) -> Coroutine[Any, Any, Any]:
    """Multi Reference's call; pass ``image_1=`` .. ``image_4=`` and/or ``image_urls=``."""
    return call("FluxKontextMaxMultiReference", prompt, **{**EDIT_ARGS, **kw})


def poll(task: Any, policy: str = "pass through") -> Coroutine[Any, Any, Any]:
    """Poll Result's call on ``task`` with a 60 s timeout."""
    return call("WaveSpeedPollResult", 60, policy, task=task)


async def chain(prompt: str = PROMPT, policy: str = "pass through", **kw: Any) -> Any:
    """Generate then Poll Result, as the shipped example wires them; Poll Result's outputs."""
    task, request_id = await generate(prompt, **kw)
    assert request_id == task.request_id
    return await poll(task, policy)


def restart_pack(pack: ModuleType) -> None:
    """Forget all in-memory state of the pack (session spend, journals, flights, clients), as a new
    ComfyUI process would."""
    pack.wavespeed.tasks.paid.submit.reset_session_state()


def nodes_client(pack: ModuleType) -> Any:
    """The pooled client the nodes use for the current key and base URL (one per account)."""
    return pack.wavespeed.tasks.accounts.account_client(pack.wavespeed.tasks.context.TaskContext())


def capture_status(pack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the status lines the nodes send (comfy_bridge.send_status), in order."""
    seen: list[str] = []
    monkeypatch.setattr(
        pack.nodes.shared.comfy_bridge, "send_status", lambda node_id, text: seen.append(text)
    )
    return seen
