"""The pack in a real ComfyUI as the frontend sees it: plain custom nodes, never comfy.org partner nodes.

A partner node (``api_node`` in /object_info) gets a comfy.org sign-in gate before Run in the frontend
and comfy.org credentials as hidden inputs. /object_info of the running server shows neither for any
node of ours, and the server answers the price definition the web extension draws the badge from.
Marked smoke: scripts/test.sh runs it on 0.3.75 too.
"""

from __future__ import annotations

from typing import Any

import pytest

from scripts.comfy_harness import ComfyServer

pytestmark = pytest.mark.smoke

OURS = [
    "FluxKontextMaxGenerate",
    "FluxKontextMaxEdit",
    "FluxKontextMaxMultiReference",
    "FluxKontextMaxBatch",
    "WaveSpeedPollResult",
    "WaveSpeedRecentTasks",
    "WaveSpeedConnectionCheck",
]
COMFY_ORG_INPUTS = {"auth_token_comfy_org", "api_key_comfy_org", "comfy_usage_source"}


def test_object_info_shows_no_partner_node_and_no_comfy_org_input(comfy_object_info: dict[str, Any]) -> None:
    for name in OURS:
        info = comfy_object_info[name]
        assert not info.get("api_node"), name
        assert info.get("price_badge") is None, name
        hidden = set(info["input"].get("hidden", {}))
        assert "unique_id" in hidden and not hidden & COMFY_ORG_INPUTS, (name, hidden)
        assert hidden <= {"unique_id", "prompt", "extra_pnginfo"}, (
            name,
            hidden,
        )  # output nodes: the last two


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_the_server_answers_the_price_definition_of_the_paid_nodes(
    comfy_server: ComfyServer, prefix: str
) -> None:
    prices = comfy_server.get_json(f"{prefix}/wavespeed_kontext/prices")
    assert sorted(prices["nodes"]) == sorted(OURS[:4])
    by_model = {
        "model_input": "model",
        "unit_by_model": {"FLUX.1 Kontext [max]": 0.08, "FLUX.1 Kontext [pro]": 0.04},
    }
    assert prices["nodes"]["FluxKontextMaxBatch"] == {
        "unit_usd": 0.08,
        "per": ["variations", "prompts"],
        **by_model,
    }
    assert prices["nodes"]["FluxKontextMaxGenerate"] == {"unit_usd": 0.08, "per": [], **by_model}
    assert prices["line_break"] and prices["not_blank"]


def test_each_nodes_help_page_is_served_where_the_frontend_looks(
    comfy_server: ComfyServer, comfy_object_info: dict[str, Any]
) -> None:
    """Frontends 1.49+ fetch /extensions/<pack folder>/docs/<node id>.md for a custom node's help."""
    import urllib.request

    for name in OURS:
        pack = comfy_object_info[name]["python_module"].removeprefix("custom_nodes.")
        with urllib.request.urlopen(
            f"{comfy_server.url}/extensions/{pack}/docs/{name}.md", timeout=10
        ) as reply:
            page = reply.read().decode("utf-8")
        assert page.startswith(f"# {comfy_object_info[name]['display_name']}"), name
