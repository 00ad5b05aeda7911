"""Prompts in ComfyUI's API format for the end-to-end tests: Generate -> Poll Result -> an image
output, and a Batch -> an image output, with the widget values a user leaves at their defaults."""

from __future__ import annotations

from typing import Any


def _output(kind: str, images: list[Any], filename_prefix: str) -> dict[str, Any]:
    """SaveImage (writes files under ``filename_prefix``) or PreviewImage (sends previews only)."""
    inputs: dict[str, Any] = {"images": images}
    if kind == "SaveImage":
        inputs["filename_prefix"] = filename_prefix
    return {"class_type": kind, "inputs": inputs}


def generate_chain(
    prefix: str,
    prompt: str,
    *,
    seed: int = 1,
    aspect_ratio: str = "1:1",
    sync_mode: bool = False,
    force_rerun: bool = False,
    timeout_s: int = 120,
    output: str = "SaveImage",
) -> dict[str, Any]:
    """Generate ``{prefix}g`` -> Poll Result ``{prefix}p`` -> ``output`` ``{prefix}s`` (files under
    e2e/{prefix}); merge two with ``{**a, **b}`` for two chains in one prompt."""
    g, p, s = f"{prefix}g", f"{prefix}p", f"{prefix}s"
    generate = {
        "prompt": prompt,
        "seed": seed,
        "guidance_scale": 3.5,
        "aspect_ratio": aspect_ratio,
        "sync_mode": sync_mode,
        "force_rerun": force_rerun,
    }
    poll = {"task": [g, 0], "timeout_s": timeout_s, "nsfw_policy": "pass through", "request_id": ""}
    return {
        g: {"class_type": "FluxKontextMaxGenerate", "inputs": generate},
        p: {"class_type": "WaveSpeedPollResult", "inputs": poll},
        s: _output(output, [p, 0], f"e2e/{prefix}"),
    }


def batch_graph(
    prompts: str,
    variations: int,
    seed: int,
    *,
    aspect_ratio: str = "1:1",
    timeout_s: int = 600,
    output: str = "SaveImage",
    filename_prefix: str = "e2e/batch",
) -> dict[str, Any]:
    """Batch "1" (seeds counting up from ``seed``, returning what succeeded) -> ``output`` "2"."""
    batch = {
        "prompts": prompts,
        "variations": variations,
        "seed": seed,
        "guidance_scale": 3.5,
        "aspect_ratio": aspect_ratio,
        "on_failure": "return what succeeded",
        "timeout_s": timeout_s,
    }
    return {
        "1": {"class_type": "FluxKontextMaxBatch", "inputs": batch},
        "2": _output(output, ["1", 0], filename_prefix),
    }
